import type { ServerResponse } from 'node:http';
import { type ProblemCode, problem, problemContentType, problems } from '../errors.ts';

/** Answers with a problem+json body. Closes the connection when the request body was not read. */
export function sendProblem(
  res: ServerResponse,
  code: ProblemCode,
  options: {
    detail?: string;
    requestId?: string;
    headers?: Readonly<Record<string, string>>;
    close?: boolean;
  } = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(problem(code, options.detail, options.requestId));
  const headers: Record<string, string | number> = {
    'content-type': problemContentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...options.headers,
  };
  if (options.requestId) headers['x-request-id'] = options.requestId;
  if (options.close) headers.connection = 'close';
  res.writeHead(problems[code].status, headers);
  res.end(body);
}
