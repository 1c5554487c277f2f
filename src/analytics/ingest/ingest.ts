import type { IncomingMessage, ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { gunzip, zstdDecompress } from 'node:zlib';
import { Counter, type Registry } from 'prom-client';
import { type ProblemCode, problem, problemContentType, problems } from '../../errors.ts';
import { type ApiEvent, eventProblem } from '../event.ts';
import type { EventStore } from '../store/types.ts';
import type { LinkVerifier } from './link-verifier.ts';

const gunzipAsync = promisify(gunzip);
const zstdAsync = promisify(zstdDecompress);
/** Largest output buffer a decompression starts with (it grows past it in further pieces). */
const MAX_DECODE_CHUNK = 8 << 20;

/**
 * Decompression of a body of `bytes`: output past `maxBytes` is refused (a compression bomb is cut off
 * there), into one buffer of ~16× the input (event JSON compresses ~5–10×), not 16 KiB pieces: each
 * piece is a thread-pool round trip, and they cost 4× the CPU of the decompression (bench/RESULTS.md).
 */
export const decodeOptions = (bytes: number, maxBytes: number) => ({
  maxOutputLength: maxBytes,
  chunkSize: Math.min(maxBytes, MAX_DECODE_CHUNK, Math.max(65536, bytes * 16)),
});

export interface IngestLimits {
  readonly maxBodyBytes: number;
  readonly maxDecompressedBytes: number;
  readonly maxEvents: number;
}

/** What one batch came to: 202 with counts, or a problem. */
export type IngestResult =
  | { readonly ok: true; readonly inserted: number; readonly duplicates: number }
  | { readonly ok: false; readonly code: ProblemCode; readonly detail: string };

export interface Ingestion {
  /** Checks, decodes, validates and stores one batch; resolves after it is durable. Never rejects. */
  ingest(
    body: Buffer,
    encoding: string | undefined,
    authorization: string | undefined,
  ): Promise<IngestResult>;
  /** `POST /analytics/v1/events`. */
  handle(req: IncomingMessage, res: ServerResponse): void;
}

export interface IngestionOptions {
  readonly store: EventStore;
  readonly verifier: LinkVerifier;
  readonly limits: IngestLimits;
  readonly registry?: Registry;
  readonly now?: () => number;
  readonly log: (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string) => void;
}

const fail = (code: ProblemCode, detail: string): IngestResult => ({ ok: false, code, detail });

export function createIngestion(options: IngestionOptions): Ingestion {
  const now = options.now ?? Date.now;
  const { limits } = options;
  const metrics = options.registry ? ingestMetrics(options.registry) : null;

  async function decode(body: Buffer, encoding: string | undefined): Promise<Buffer | IngestResult> {
    const bound = decodeOptions(body.length, limits.maxDecompressedBytes);
    try {
      switch ((encoding ?? 'identity').toLowerCase()) {
        case 'identity':
          return body;
        case 'gzip':
          return await gunzipAsync(body, bound);
        case 'zstd':
          return await zstdAsync(body, bound);
        default:
          return fail(
            'analytics_unsupported_encoding',
            `content-encoding ${encoding} (zstd, gzip or identity)`,
          );
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
        return fail(
          'analytics_batch_too_large',
          `more than ${limits.maxDecompressedBytes} bytes decompressed`,
        );
      return fail('analytics_batch_invalid', `body does not decompress as ${encoding}`);
    }
  }

  async function ingest(
    body: Buffer,
    encoding: string | undefined,
    authorization: string | undefined,
  ): Promise<IngestResult> {
    const check = await options.verifier.verify(authorization);
    if (!check.ok) {
      metrics?.refused.labels(check.kind === 'invalid' ? 'unauthenticated' : 'keys_unavailable').inc();
      options.log('warn', { reason: check.reason }, 'analytics batch refused: link token not accepted');
      return check.kind === 'invalid'
        ? fail('invalid_token', check.reason)
        : fail('identity_provider_unavailable', check.reason);
    }
    if (body.length > limits.maxBodyBytes)
      return fail('analytics_batch_too_large', `more than ${limits.maxBodyBytes} bytes`);
    const decoded = await decode(body, encoding);
    if (!Buffer.isBuffer(decoded)) return decoded;
    let batch: unknown;
    try {
      batch = JSON.parse(decoded.toString('utf8'));
    } catch {
      return fail('analytics_batch_invalid', 'not JSON');
    }
    const events = (batch as { events?: unknown }).events;
    if ((batch as { v?: unknown }).v !== 1 || !Array.isArray(events))
      return fail('analytics_batch_invalid', 'expected { "v": 1, "events": [...] }');
    if (events.length > limits.maxEvents)
      return fail('analytics_batch_too_large', `more than ${limits.maxEvents} events`);
    for (let i = 0; i < events.length; i++) {
      const problemText = eventProblem(events[i]);
      if (problemText !== null) {
        metrics?.refused.labels('invalid').inc();
        return fail('analytics_batch_invalid', `events[${i}]: ${problemText}`);
      }
      // A gateway reports for itself only.
      if ((events[i] as ApiEvent).gateway !== check.gateway)
        return fail('analytics_batch_invalid', `events[${i}]: gateway is not ${check.gateway}`);
    }
    try {
      const stored = await options.store.insert(events as ApiEvent[], now());
      metrics?.events.labels('inserted').inc(stored.inserted);
      metrics?.events.labels('duplicate').inc(stored.duplicates);
      return { ok: true, ...stored };
    } catch (err) {
      options.log('error', { err: (err as Error).message }, 'analytics store write failed');
      return fail('analytics_store_unavailable', 'the store did not take the batch');
    }
  }

  return {
    ingest,
    handle(req, res) {
      if (req.method !== 'POST') {
        answer(res, fail('route_not_found', 'POST events here'));
        return;
      }
      const declared = Number(req.headers['content-length'] ?? Number.NaN);
      if (declared > limits.maxBodyBytes) {
        answer(res, fail('analytics_batch_too_large', `more than ${limits.maxBodyBytes} bytes`), true);
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      let over = false;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > limits.maxBodyBytes) over = true;
        else chunks.push(chunk);
      });
      req.on('error', () => res.destroy());
      req.on('end', () => {
        if (over) {
          answer(res, fail('analytics_batch_too_large', `more than ${limits.maxBodyBytes} bytes`), true);
          return;
        }
        const encoding = req.headers['content-encoding'];
        void ingest(Buffer.concat(chunks), encoding, req.headers.authorization).then((result) =>
          answer(res, result),
        );
      });
    },
  };
}

/** 202 only once stored; otherwise the problem (401 carries the Bearer challenge). */
export function answer(res: ServerResponse, result: IngestResult, close = false): void {
  if (res.headersSent || res.destroyed) return;
  if (result.ok) {
    const text = JSON.stringify({ inserted: result.inserted, duplicates: result.duplicates });
    res.writeHead(202, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
    return;
  }
  const text = JSON.stringify(problem(result.code, result.detail));
  const headers: Record<string, string | number> = {
    'content-type': problemContentType,
    'content-length': Buffer.byteLength(text),
  };
  if (problems[result.code].status === 401)
    headers['www-authenticate'] = 'Bearer realm="gatehouse-analytics"';
  if (close) headers.connection = 'close';
  res.writeHead(problems[result.code].status, headers);
  res.end(text);
}

function ingestMetrics(registry: Registry) {
  const events = new Counter({
    name: 'gatehouse_analytics_ingest_events_total',
    help: 'Events received by ingestion, by result (inserted, duplicate: an id already stored, a re-send).',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const refused = new Counter({
    name: 'gatehouse_analytics_ingest_refused_total',
    help: 'Batches refused by ingestion, by reason (unauthenticated, keys_unavailable, invalid).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  return { events, refused };
}
