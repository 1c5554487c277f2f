import type { ServerResponse } from 'node:http';
import { type ProblemCode, problem, problemContentType } from '../errors.ts';

/** Answers with RFC 9457 problem+json; `extra` members (e.g. `errors`) are added beside the standard ones. */
export function sendProblem(
  res: ServerResponse,
  code: ProblemCode,
  detail?: string,
  extra?: Readonly<Record<string, unknown>>,
  headers: Readonly<Record<string, string>> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ ...extra, ...problem(code, detail) });
  res.writeHead(problem(code).status, {
    'content-type': problemContentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(body);
}

export function sendJson(res: ServerResponse, value: unknown, status = 200): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}
