import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Plan } from '../plan/types.ts';
import { describeInput, type ExplainInput, explain } from './explain.ts';
import { sendProblem } from './respond.ts';

const maxBodyBytes = 64 * 1024;
/** A policy that waits longer than this (an identity provider that hangs) is reported, not awaited. */
const explainTimeoutMs = 30_000;

/**
 * POST /explain on the admin port: `{ method, url, headers?, listener?, peer? }` → the explanation
 * of what the live plan (live key sets) would do with that request. Nothing is forwarded, and
 * limit policies are not run, so no counter moves.
 */
export function serveExplain(req: IncomingMessage, res: ServerResponse, plan: Plan | null): void {
  if (req.method !== 'POST') {
    sendProblem(res, 'bad_request', { detail: 'POST a JSON request description to /explain' });
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > maxBodyBytes) tooLarge = true;
    else chunks.push(chunk);
  });
  req.once('error', () => res.destroy());
  req.once('end', () => {
    if (tooLarge) {
      sendProblem(res, 'payload_too_large', { detail: `limit is ${maxBodyBytes} bytes`, close: true });
      return;
    }
    if (!plan) {
      sendProblem(res, 'shutting_down', { detail: 'no plan is being served' });
      return;
    }
    const input = parseInput(Buffer.concat(chunks).toString('utf8'));
    if (typeof input === 'string') {
      sendProblem(res, 'bad_request', { detail: input });
      return;
    }
    const described = describeInput(plan, input);
    if (!described.ok) {
      sendProblem(res, 'bad_request', { detail: described.message });
      return;
    }
    explain(plan, described.request, { live: true, timeoutMs: explainTimeoutMs }).then(
      (explanation) => {
        const text = JSON.stringify(explanation, null, 2);
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
          'cache-control': 'no-store',
        });
        res.end(text);
      },
      () => sendProblem(res, 'internal_error'),
    );
  });
}

/** The body as an ExplainInput, or what is wrong with it. */
function parseInput(text: string): ExplainInput | string {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return 'the body must be JSON: { "method", "url", "headers"? }';
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return 'the body must be a JSON object';
  const { method, url, headers, listener, peer } = body as Record<string, unknown>;
  if (typeof method !== 'string' || method === '') return '`method` must be a string';
  if (typeof url !== 'string' || url === '') return '`url` must be a string';
  if (listener !== undefined && typeof listener !== 'string') return '`listener` must be a string';
  if (peer !== undefined && typeof peer !== 'string') return '`peer` must be a string';
  const pairs: Array<[string, string]> = [];
  if (Array.isArray(headers)) {
    for (const pair of headers) {
      if (
        !Array.isArray(pair) ||
        pair.length !== 2 ||
        typeof pair[0] !== 'string' ||
        typeof pair[1] !== 'string'
      )
        return '`headers` as an array holds [name, value] string pairs';
      pairs.push([pair[0], pair[1]]);
    }
  } else if (typeof headers === 'object' && headers !== null) {
    for (const [name, value] of Object.entries(headers)) {
      const values = Array.isArray(value) ? value : [value];
      for (const v of values) {
        if (typeof v !== 'string') return `header ${name}: values must be strings`;
        pairs.push([name, v]);
      }
    }
  } else if (headers !== undefined) {
    return '`headers` must be an object ({ name: value | [values] }) or an array of [name, value]';
  }
  return { method, url, headers: pairs, listener, peer };
}
