// CPU per batch of the analytics link's compression, as the shipper and ingestion run it, against
// Node's defaults (level 3 / 6, 16 KiB output pieces: one thread-pool round trip per piece), side by
// side: the variants alternate 12 times and the best of each is reported. The batch is 1000 events
// written by the gateway's own call writer (distinct ids, request ids, trace ids and latencies).
// CPU is the process's (every thread: the compression runs in the thread pool).
//
//   node bench/analytics-compression.ts
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { gunzip, gzip, zstdCompress, zstdDecompress } from 'node:zlib';
import type { RecordedCall } from '../src/analytics/call.ts';
import { createCallWriter } from '../src/analytics/call.ts';
import { decodeOptions } from '../src/analytics/ingest/ingest.ts';
import { gzipOptions, zstdOptions } from '../src/analytics/shipper.ts';

const BATCHES = 40;
const ROUNDS = 12;

function batch(): Buffer {
  const writer = createCallWriter('bench');
  const rule = { id: 'default/bench#0', template: '/v1/accounts/{id}/orders', pipeline: [] };
  const ctx = { rule, params: { id: '12345' }, identity: null, host: 'api-0042.bench.test' };
  const into = { buf: Buffer.allocUnsafe(1 << 20) };
  let at = into.buf.write('{"v":1,"gateway":"bench","events":[');
  const t0 = Date.now();
  for (let i = 0; i < 1000; i++) {
    if (i > 0) into.buf[at++] = 0x2c;
    const call = {
      time: t0 + i / 12,
      requestId: randomBytes(16).toString('hex'),
      ctx,
      method: 'GET',
      client: '127.0.0.1',
      status: 200,
      latencyMs: Math.random() * 3,
      upstreamMs: Math.random() * 2,
      bytesIn: 0,
      bytesOut: 106,
      error: null,
      traceId: randomBytes(16).toString('hex'),
      completed: true,
    } as unknown as RecordedCall;
    at = writer.write(call, into, at);
  }
  at += into.buf.write(']}', at);
  return Buffer.from(into.buf.subarray(0, at));
}

const raw = batch();
const zstdRaw = await promisify(zstdCompress)(raw);
const gzipRaw = await promisify(gzip)(raw);
type Run = () => Promise<unknown>;
const bound = { maxOutputLength: 64 << 20 };
const variants: Record<string, Run> = {
  'zstd, Node defaults': () => promisify(zstdCompress)(raw),
  'zstd, shipper': () => promisify(zstdCompress)(raw, zstdOptions(raw.length)),
  'gzip, Node defaults': () => promisify(gzip)(raw),
  'gzip, shipper': () => promisify(gzip)(raw, gzipOptions(raw.length)),
  'zstd decode, Node defaults': () => promisify(zstdDecompress)(zstdRaw, bound),
  'zstd decode, ingestion': () => promisify(zstdDecompress)(zstdRaw, decodeOptions(zstdRaw.length, 64 << 20)),
  'gzip decode, Node defaults': () => promisify(gunzip)(gzipRaw, bound),
  'gzip decode, ingestion': () => promisify(gunzip)(gzipRaw, decodeOptions(gzipRaw.length, 64 << 20)),
};
const best = new Map<string, number>();
const sizes = new Map<string, number>();
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, run] of Object.entries(variants)) {
    const before = process.cpuUsage();
    let out: unknown;
    for (let i = 0; i < BATCHES; i++) out = await run();
    const used = process.cpuUsage(before);
    const ms = (used.user + used.system) / 1000 / BATCHES;
    best.set(name, Math.min(best.get(name) ?? Number.POSITIVE_INFINITY, ms));
    sizes.set(name, (out as Buffer).length);
  }
}
process.stdout.write(
  `batch: 1000 events, ${raw.length} bytes; CPU ms per batch, best of ${ROUNDS} × ${BATCHES}\n`,
);
for (const [name, ms] of best)
  process.stdout.write(`  ${name.padEnd(28)} ${ms.toFixed(3)} ms  (${sizes.get(name)} bytes out)\n`);
