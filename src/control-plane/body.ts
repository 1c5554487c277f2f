import type { IncomingMessage } from 'node:http';
import { HttpProblem } from './routes.ts';

export const maxBodyBytes = 1024 * 1024;

/** Reads a JSON body of at most `limit` bytes: 415 unless JSON, 413 when larger, 400 when not JSON. */
export async function readJsonBody(req: IncomingMessage, limit = maxBodyBytes): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json' && !/^application\/[a-z0-9.+-]*\+json$/.test(type))
    throw new HttpProblem('unsupported_media_type', 'send the body as application/json');
  const declared = Number(req.headers['content-length'] ?? Number.NaN);
  if (declared > limit) {
    req.resume();
    throw new HttpProblem('payload_too_large', `the body may be at most ${limit} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      req.resume();
      throw new HttpProblem('payload_too_large', `the body may be at most ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new HttpProblem('bad_request', `the body is not JSON: ${(err as Error).message}`);
  }
}
