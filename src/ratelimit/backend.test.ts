// One suite for every rate-limit backend (local, Redis, Redis with batching): the same decisions
// whatever holds the counters. Redis runs on 127.0.0.1:6379 (required in CI, see test/helpers/redis.ts).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RateLimitsSpec } from '../config/schemas/gateway.ts';
import { deleteKeys, sharedRedis, sharedRedisUrl, uniquePrefix } from '../../test/helpers/redis.ts';
import { gcraLimit, remaining, retryAfterMs } from './gcra.ts';
import { RateLimiterRegistry } from './registry.ts';
import type { RateDecision, RateLimitBackend } from './types.ts';

const redis = await sharedRedis();
const prefix = uniquePrefix('backend');

function spec(backend: 'local' | 'redis', overrides: Partial<RateLimitsSpec> = {}): RateLimitsSpec {
  return {
    backend,
    onBackendFailure: 'closed',
    maxKeys: 1000,
    batching: { enabled: false, maxLocal: 10, flushInterval: '100ms' },
    ...(backend === 'redis' ? { redis: { url: sharedRedisUrl, timeout: '2s', prefix } } : {}),
    ...overrides,
  };
}

function registry(): RateLimiterRegistry {
  return new RateLimiterRegistry({ start: true, env: {}, now: Date.now, log: () => {} });
}

const implementations: Array<{ name: string; spec: RateLimitsSpec; needsRedis: boolean }> = [
  { name: 'local', spec: spec('local'), needsRedis: false },
  { name: 'redis', spec: spec('redis'), needsRedis: true },
  {
    name: 'redis with batching',
    spec: spec('redis', { batching: { enabled: true, maxLocal: 3, flushInterval: '50ms' } }),
    needsRedis: true,
  },
];

let keyCounter = 0;
const freshKey = (what: string) => `${prefix}{${what}-${keyCounter++}}`;

async function take(backend: RateLimitBackend, keys: string[], limits: ReturnType<typeof gcraLimit>[]) {
  const decision: RateDecision = await backend.take(keys, limits);
  assert.ok(decision.ok, 'the backend decides');
  return decision as Extract<RateDecision, { ok: true }>;
}

after(async () => {
  if (redis.ok) await deleteKeys(prefix);
});

for (const impl of implementations) {
  describe(`rate-limit backend: ${impl.name}`, {
    skip: impl.needsRedis && !redis.ok ? (redis as { skip: string }).skip : false,
  }, () => {
    let limiters: RateLimiterRegistry;
    let backend: RateLimitBackend;
    before(() => {
      limiters = registry();
      backend = limiters.resolve(impl.spec);
    });
    after(() => limiters.closeAll());

    test('admits a burst of `limit`, one less remaining each time, then refuses', async () => {
      const limit = gcraLimit(5, 3_600_000);
      const key = freshKey('burst');
      const left: number[] = [];
      for (let i = 0; i < 5; i++) {
        const d = await take(backend, [key], [limit]);
        assert.equal(d.allowed, true, `request ${i + 1} is admitted`);
        left.push(remaining(limit, d.aheadMs[0]!));
      }
      assert.deepEqual(left, [4, 3, 2, 1, 0]);
      const refused = await take(backend, [key], [limit]);
      assert.equal(refused.allowed, false);
      // One unit comes back every 12 minutes: the wait is about that long, never more.
      const wait = retryAfterMs(limit, refused.aheadMs[0]!);
      assert.ok(wait > 600_000 && wait <= 720_000, `retry after ${wait} ms`);
    });

    test('a refused request consumes nothing', async () => {
      const limit = gcraLimit(2, 3_600_000);
      const key = freshKey('refused');
      await take(backend, [key], [limit]);
      await take(backend, [key], [limit]);
      const first = await take(backend, [key], [limit]);
      for (let i = 0; i < 5; i++) await take(backend, [key], [limit]);
      const later = await take(backend, [key], [limit]);
      assert.equal(later.allowed, false);
      assert.ok(later.aheadMs[0]! <= first.aheadMs[0]!, 'refusals did not push the counter further ahead');
    });

    test('several limits admit together or not at all', async () => {
      const tight = gcraLimit(2, 3_600_000);
      const loose = gcraLimit(10, 3_600_000);
      const a = freshKey('all');
      const b = `${a}:b`;
      for (let i = 0; i < 2; i++) assert.equal((await take(backend, [a, b], [tight, loose])).allowed, true);
      const refused = await take(backend, [a, b], [tight, loose]);
      assert.equal(refused.allowed, false);
      assert.equal(remaining(loose, refused.aheadMs[1]!), 8, 'the loose limit was not charged');
      const alone = await take(backend, [b], [loose]);
      assert.equal(alone.allowed, true);
      assert.equal(remaining(loose, alone.aheadMs[0]!), 7);
    });

    test('counters are independent per key', async () => {
      const limit = gcraLimit(1, 3_600_000);
      const [a, b] = [freshKey('indep'), freshKey('indep')];
      assert.equal((await take(backend, [a], [limit])).allowed, true);
      assert.equal((await take(backend, [a], [limit])).allowed, false);
      assert.equal((await take(backend, [b], [limit])).allowed, true);
    });

    test('a burst smaller than the limit spaces requests out', async () => {
      const limit = gcraLimit(100, 3_600_000, 2);
      const key = freshKey('burst-2');
      assert.equal((await take(backend, [key], [limit])).allowed, true);
      assert.equal((await take(backend, [key], [limit])).allowed, true);
      const refused = await take(backend, [key], [limit]);
      assert.equal(refused.allowed, false);
      assert.ok(retryAfterMs(limit, refused.aheadMs[0]!) <= 36_000, 'back after one emission interval');
    });

    test('the quota comes back as time passes', async () => {
      const limit = gcraLimit(10, 1000);
      const key = freshKey('refill');
      let admitted = 0;
      for (let i = 0; i < 30 && admitted < 10; i++)
        if ((await take(backend, [key], [limit])).allowed) admitted++;
      assert.equal(admitted, 10);
      // One unit every 100 ms: polled (bounded) rather than timed.
      let again = false;
      for (let i = 0; i < 200 && !again; i++) {
        again = (await take(backend, [key], [limit])).allowed;
        if (!again) await new Promise((r) => setTimeout(r, 25));
      }
      assert.ok(again, 'admitted again once a unit came back');
    });
  });
}
