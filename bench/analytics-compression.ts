// CPU per batch of the analytics link's compression, as the shipper and ingestion run it, against
// Node's defaults (level 3 / 6, 16 KiB output pieces: one thread-pool round trip per piece), side by
// side: the variants alternate 12 times and the best of each is reported. The batch is 1000 events
// written by the gateway's own call writer (distinct ids, request ids, trace ids and latencies).
// CPU is the process's (every thread: the compression runs in the thread pool).
//
//   node bench/analytics-compression.ts
import { promisify } from 'node:util';
import { gunzip, gzip, zstdCompress, zstdDecompress } from 'node:zlib';
import { createCallWriter } from '../src/analytics/call.ts';
import { decodeOptions } from '../src/analytics/ingest/ingest.ts';
import { gzipOptions, zstdOptions } from '../src/analytics/shipper.ts';
import { benchedCalls } from './benched-calls.ts';

const BATCHES = 40;
const ROUNDS = 12;

function batch(): Buffer {
  const writer = createCallWriter('bench');
  const into = { buf: Buffer.allocUnsafe(1 << 20) };
  let at = into.buf.write('{"v":1,"gateway":"bench","events":[');
  for (const [i, call] of benchedCalls(1000).entries()) {
    if (i > 0) into.buf[at++] = 0x2c;
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
