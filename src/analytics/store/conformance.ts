import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createEventIdGenerator } from '../event-id.ts';
import type { ApiEvent } from '../event.ts';
import type { EventStore } from './types.ts';

/** A valid event with these fields changed. */
export function sampleEvent(overrides: Partial<ApiEvent> & { id: string }): ApiEvent {
  return {
    v: 1,
    time: 1_700_000_000_000,
    requestId: overrides.id,
    gateway: 'edge',
    api: 'default/shop',
    route: 'default/shop#0',
    rule: 0,
    consumer: null,
    subject: null,
    client: '127.0.0.1',
    method: 'GET',
    host: 'api.example.com',
    pathTemplate: '/orders/{id}',
    pathParams: ['id'],
    status: 200,
    latencyMs: 1,
    upstreamMs: 0.5,
    gatewayMs: 0.5,
    bytesIn: 0,
    bytesOut: 100,
    authMethod: 'noAuth',
    authResult: 'ok',
    rateLimit: 'none',
    error: null,
    traceId: null,
    completed: true,
    ...overrides,
  };
}

/**
 * The one test suite every EventStore passes (sqlite.ts, postgres.ts): insert-or-ignore by id,
 * aggregates and nearest-rank percentiles, grouping, filters, buckets, top-N and retention.
 * `open` gives a fresh, empty store; the suite closes it.
 */
export function eventStoreConformance(name: string, open: () => Promise<EventStore>): void {
  const nextId = createEventIdGenerator();
  const t0 = 1_700_000_000_000;

  test(`${name}: a re-sent event is stored once`, async () => {
    const store = await open();
    try {
      const a = sampleEvent({ id: nextId(t0) });
      const b = sampleEvent({ id: nextId(t0) });
      assert.deepEqual(await store.insert([a, b], t0), { inserted: 2, duplicates: 0 });
      assert.deepEqual(await store.insert([a, b, sampleEvent({ id: nextId(t0) })], t0), {
        inserted: 1,
        duplicates: 2,
      });
      assert.equal(await store.count(), 3);
      assert.deepEqual(await store.has([a.id, 'nope']), new Set([a.id]));
    } finally {
      await store.close();
    }
  });

  test(`${name}: aggregates, percentiles, groups, filters, buckets and top-N`, async () => {
    const store = await open();
    try {
      const events: ApiEvent[] = [];
      // route #0: latencies 1..100 ms, 200s; route #1: 10 × 500 and 10 × 404 by two consumers.
      for (let i = 1; i <= 100; i++)
        events.push(
          sampleEvent({ id: nextId(t0), time: t0 + i * 1000, latencyMs: i, consumer: i <= 70 ? 'a' : 'b' }),
        );
      for (let i = 0; i < 20; i++)
        events.push(
          sampleEvent({
            id: nextId(t0),
            time: t0 + 120_000 + i,
            route: 'default/shop#1',
            rule: 1,
            status: i < 10 ? 500 : 404,
            latencyMs: 5,
            consumer: i % 2 ? 'a' : null,
          }),
        );
      await store.insert(events, t0);
      const all = await store.aggregate({
        from: t0,
        to: t0 + 600_000,
        intervalMs: null,
        groupBy: ['route'],
        filter: {},
      });
      assert.equal(all.length, 2);
      const r0 = all.find((r) => r.group.route === 'default/shop#0')!;
      assert.deepEqual([r0.requests, r0.errors, r0.p50, r0.p95, r0.p99], [100, 0, 50, 95, 99]);
      assert.equal(r0.avgMs, 50.5);
      const r1 = all.find((r) => r.group.route === 'default/shop#1')!;
      assert.deepEqual([r1.requests, r1.errors, r1.clientErrors, r1.errorRate], [20, 10, 10, 0.5]);

      const byStatus = await store.aggregate({
        from: t0,
        to: t0 + 600_000,
        intervalMs: null,
        groupBy: ['status'],
        filter: { route: 'default/shop#1' },
      });
      assert.deepEqual(byStatus.map((r) => [r.group.status, r.requests]).sort(), [
        [404, 10],
        [500, 10],
      ]);
      const filtered = await store.aggregate({
        from: t0,
        to: t0 + 600_000,
        intervalMs: null,
        groupBy: [],
        filter: { status: '500' },
      });
      assert.equal(filtered[0]!.requests, 10);

      const buckets = await store.aggregate({
        from: t0,
        to: t0 + 180_000,
        intervalMs: 60_000,
        groupBy: [],
        filter: {},
      });
      assert.deepEqual(
        buckets.map((b) => [b.bucket, b.requests]),
        [
          [t0, 59],
          [t0 + 60_000, 41],
          [t0 + 120_000, 20],
        ],
      );
      const top = await store.top({ from: t0, to: t0 + 600_000, by: 'consumer', limit: 2, filter: {} });
      assert.deepEqual(
        top.map((r) => [r.key, r.requests, r.errors]),
        [
          ['a', 80, 5],
          ['b', 30, 0],
        ],
      );
      const topRoutes = await store.top({
        from: t0,
        to: t0 + 600_000,
        by: 'route',
        limit: 10,
        filter: { consumer: 'a' },
      });
      assert.deepEqual(
        topRoutes.map((r) => [r.key, r.requests]),
        [
          ['default/shop#0', 70],
          ['default/shop#1', 10],
        ],
      );
    } finally {
      await store.close();
    }
  });

  test(`${name}: retention deletes what is older than the cut`, async () => {
    const store = await open();
    try {
      await store.insert(
        [sampleEvent({ id: nextId(t0), time: t0 }), sampleEvent({ id: nextId(t0), time: t0 + 10_000 })],
        t0,
      );
      assert.equal(await store.prune(t0 + 5_000), 1);
      assert.equal(await store.count(), 1);
    } finally {
      await store.close();
    }
  });
}
