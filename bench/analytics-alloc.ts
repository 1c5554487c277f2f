// Bytes the JS heap takes per recorded call on the gateway's request path (EventShipper.record: the
// event's id and JSON, appended to the gathered buffer). Deterministic, unlike throughput on a shared
// machine: the young generation is made large enough that no GC runs while it measures, so the heap
// growth over N calls is what they allocated. Run it before and after a change to the serialiser.
//
//   node --expose-gc --min-semi-space-size=128 --max-semi-space-size=128 bench/analytics-alloc.ts
import { getHeapStatistics } from 'node:v8';
import type { RecordedCall } from '../src/analytics/call.ts';
import { EventShipper } from '../src/analytics/shipper.ts';
import type { EventTransport } from '../src/analytics/transport.ts';

const N = 20_000;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  process.stderr.write('run with --expose-gc --min-semi-space-size=128 --max-semi-space-size=128\n');
  process.exit(2);
}

const transport: EventTransport = {
  send: async () => ({ kind: 'delivered' }),
  close: async () => {},
};
const shipper = new EventShipper({
  gateway: 'bench',
  transport,
  credentials: async () => ({}),
  compression: 'none',
  // Nothing is sealed or sent while measuring: only record() runs.
  batchMaxEvents: 1e9,
  batchIntervalMs: 1e9,
  writeIntervalMs: 1e9,
  retryInitialMs: 1000,
  retryMaxMs: 1000,
  queueMaxEvents: 1e9,
  spool: null,
  log: () => {},
});
// The benched noAuth route's call, as the handler hands it over.
const rule = { id: 'default/bench#0', template: '/v1/accounts/:id/orders', pipeline: [] };
const ctx = {
  rule,
  params: { id: '12345' },
  identity: null,
  host: 'api-0042.bench.test',
  client: { address: '127.0.0.1' },
};
const call = (i: number) =>
  ({
    time: Date.now(),
    requestId: `0192f0c4-${i}`,
    ctx,
    method: 'GET',
    client: '127.0.0.1',
    status: 200,
    latencyMs: 1.2345,
    upstreamMs: 0.81234,
    bytesIn: 0,
    bytesOut: 106,
    error: null,
    traceId: null,
    completed: true,
  }) as unknown as RecordedCall;

for (let i = 0; i < 50_000; i++) shipper.record(call(i)); // optimised code first
await new Promise((resolve) => setImmediate(resolve));
const calls = Array.from({ length: N }, (_, i) => call(i));
gc();
const before = getHeapStatistics().used_heap_size;
for (let i = 0; i < N; i++) shipper.record(calls[i]!);
const after = getHeapStatistics().used_heap_size;
process.stdout.write(`record(): ${Math.round((after - before) / N)} bytes of JS heap allocated per call\n`);
process.exit(0);
