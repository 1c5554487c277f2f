// The benched noAuth route's calls as the handler hands them to analytics (RecordedCall), for the
// analytics micro-benchmarks: distinct request ids, trace ids and latencies, ~12 calls per
// millisecond (the gateway's rate at full load on this machine).
import { randomBytes } from 'node:crypto';
import type { RecordedCall } from '../src/analytics/call.ts';

export function benchedCalls(n: number): RecordedCall[] {
  const rule = { id: 'default/bench#0', template: '/v1/accounts/{id}/orders', pipeline: [] };
  const ctx = { rule, params: { id: '12345' }, identity: null, host: 'api-0042.bench.test' };
  const t0 = Date.now();
  return Array.from(
    { length: n },
    (_, i) =>
      ({
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
      }) as unknown as RecordedCall,
  );
}
