// What only the Redis backend does: fail within its timeout when Redis is gone, survive a script
// cache flush, expire its keys, batch across gateways within the stated bound, and keep one
// decision's keys in one Redis Cluster slot. Real redis-server processes throughout.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { freePort } from '../../test/helpers/process.ts';
import {
  deleteKeys,
  sharedRedis,
  sharedRedisUrl,
  startPrivateRedis,
  uniquePrefix,
} from '../../test/helpers/redis.ts';
import type { RateLimitsSpec } from '../config/schemas/gateway.ts';
import { gcraLimit, remaining } from './gcra.ts';
import { RateLimiterRegistry } from './registry.ts';
import type { RateLimitBackend } from './types.ts';

const redis = await sharedRedis();
const skip = redis.ok ? false : redis.skip;
const prefix = uniquePrefix('redis');

function redisSpec(url: string, overrides: Partial<RateLimitsSpec> = {}, timeout = '2s'): RateLimitsSpec {
  return {
    backend: 'redis',
    redis: { url, timeout, prefix },
    onBackendFailure: 'closed',
    maxKeys: 1000,
    batching: { enabled: false, maxLocal: 10, flushInterval: '100ms' },
    ...overrides,
  };
}

interface LogLine {
  level: string;
  fields: Record<string, unknown>;
  message: string;
}

function registry(lines: LogLine[] = []): RateLimiterRegistry {
  return new RateLimiterRegistry({
    start: true,
    env: {},
    now: Date.now,
    log: (level, fields, message) => lines.push({ level, fields, message }),
  });
}

/** Fails the test instead of hanging when a promise does not settle within `ms`. */
function within<T>(promise: Promise<T> | T, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    Promise.resolve(promise).finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
    }),
  ]);
}

after(async () => {
  if (redis.ok) await deleteKeys(prefix);
});

describe('Redis backend failures', { skip }, () => {
  test('an unreachable Redis: every decision fails within the timeout, counted, logged once', async () => {
    const lines: LogLine[] = [];
    const limiters = registry(lines);
    try {
      const closed = await freePort();
      const backend = limiters.resolve(redisSpec(`redis://127.0.0.1:${closed}`, {}, '200ms'));
      const limit = gcraLimit(10, 1000);
      for (let i = 0; i < 5; i++) {
        const decision = await within(backend.take([`${prefix}{down}`], [limit]), 10_000, 'a decision');
        assert.equal(decision.ok, false);
      }
      assert.equal(limiters.metrics.backendErrors('redis'), 5);
      const decisionLines = lines.filter((l) => l.message.startsWith('rate-limit backend did not decide'));
      assert.equal(decisionLines.length, 1, 'one line for five failures (at most one per 10 s)');
    } finally {
      await limiters.closeAll();
    }
  });

  test('Redis killed while in use: decisions fail at once or at the timeout, never hang', async () => {
    const server = await startPrivateRedis();
    const limiters = registry();
    try {
      const backend = limiters.resolve(redisSpec(server.url, {}, '300ms'));
      const limit = gcraLimit(100, 1000);
      const up = await backend.take([`${prefix}{kill}`], [limit]);
      assert.ok(up.ok && up.allowed);
      await server.stop();
      const decisions = await within(
        Promise.all(Array.from({ length: 20 }, () => backend.take([`${prefix}{kill}`], [limit]))),
        10_000,
        'decisions after the outage',
      );
      assert.ok(decisions.every((d) => !d.ok));
    } finally {
      await limiters.closeAll();
      await server.stop();
    }
  });

  test('decisions that failed during an outage are never sent later (no replay on reconnect)', async () => {
    let server = await startPrivateRedis();
    const limiters = registry();
    try {
      const backend = limiters.resolve(redisSpec(server.url, {}, '200ms'));
      const limit = gcraLimit(100, 3_600_000);
      const key = `${prefix}{replay}`;
      assert.ok((await backend.take([key], [limit])).ok);
      await server.stop();
      const failed = await Promise.all(Array.from({ length: 30 }, () => backend.take([key], [limit])));
      assert.ok(failed.every((d) => !d.ok));
      // Same port, empty (no persistence): whatever the counter holds now was sent after the restart.
      server = await startPrivateRedis(server.port);
      let decision = await backend.take([key], [limit]);
      for (let i = 0; i < 200 && !decision.ok; i++) {
        await new Promise((r) => setTimeout(r, 50));
        decision = await backend.take([key], [limit]);
      }
      assert.ok(decision.ok, 'reconnected');
      assert.equal(remaining(limit, decision.aheadMs[0]!), 99, 'only this decision was counted');
    } finally {
      await limiters.closeAll();
      await server.stop();
    }
  });

  test('the script is loaded again after SCRIPT FLUSH (NOSCRIPT)', async () => {
    const server = await startPrivateRedis();
    const limiters = registry();
    const admin = new Redis(server.url);
    admin.on('error', () => {});
    try {
      const backend = limiters.resolve(redisSpec(server.url));
      const limit = gcraLimit(100, 1000);
      assert.ok((await backend.take(['a'], [limit])).ok);
      await admin.script('FLUSH');
      const again = await backend.take(['a'], [limit]);
      assert.ok(again.ok && again.allowed);
    } finally {
      admin.disconnect();
      await limiters.closeAll();
      await server.stop();
    }
  });
});

describe('Redis backend keys', { skip }, () => {
  test('counters expire once the quota is full again (PX), and use Redis time', async () => {
    const limiters = registry();
    const client = new Redis(sharedRedisUrl);
    client.on('error', () => {});
    try {
      const backend = limiters.resolve(redisSpec(sharedRedisUrl));
      const key = `${prefix}{ttl}`;
      const decision = await backend.take([key], [gcraLimit(10, 2000)]);
      assert.ok(decision.ok && decision.allowed);
      const ttl = await client.pttl(key);
      assert.ok(ttl > 0 && ttl <= 200, `PTTL ${ttl} ms: one emission interval (200 ms)`);
    } finally {
      client.disconnect();
      await limiters.closeAll();
    }
  });

  test('backends with the same connection settings share one connection; closing the last closes it', async () => {
    const limiters = registry();
    const a = limiters.resolve(redisSpec(sharedRedisUrl));
    const b = limiters.resolve(
      redisSpec(sharedRedisUrl, { batching: { enabled: true, maxLocal: 2, flushInterval: '100ms' } }),
    );
    assert.notEqual(a, b);
    assert.equal(limiters.resolve(redisSpec(sharedRedisUrl)), a, 'same spec, same backend');
    await limiters.retainOnly([b]);
    const still = await b.take([`${prefix}{share}`], [gcraLimit(10, 1000)]);
    assert.ok(still.ok, 'the connection stayed open for the backend still in use');
    await limiters.closeAll();
  });
});

describe('Redis backend batching across gateways', { skip }, () => {
  async function drain(backends: RateLimitBackend[], key: string, limit = gcraLimit(20, 3_600_000)) {
    let admitted = 0;
    let refusedInARow = 0;
    // Round robin over the "gateways" until each has been refused three times in a row (bounded).
    for (let i = 0; i < 1000 && refusedInARow < backends.length * 3; i++) {
      const decision = await backends[i % backends.length]!.take([key], [limit]);
      assert.ok(decision.ok);
      if (decision.allowed) {
        admitted++;
        refusedInARow = 0;
      } else refusedInARow++;
    }
    return admitted;
  }

  test('one gateway admits exactly the limit', async () => {
    const limiters = registry();
    try {
      const backend = limiters.resolve(
        redisSpec(sharedRedisUrl, { batching: { enabled: true, maxLocal: 5, flushInterval: '50ms' } }),
      );
      assert.equal(await drain([backend], `${prefix}{batch-one}`), 20);
    } finally {
      await limiters.closeAll();
    }
  });

  test('three gateways admit at most limit + 3 × maxLocal, and the overshoot is charged', async (t) => {
    const registries = [registry(), registry(), registry()];
    const key = `${prefix}{batch-three}`;
    try {
      const spec = redisSpec(sharedRedisUrl, {
        batching: { enabled: true, maxLocal: 5, flushInterval: '50ms' },
      });
      const backends = registries.map((r) => r.resolve(spec));
      // Every gateway first learns the counter with a full quota, so each holds a lease of 5.
      const admitted = await drain(backends, key);
      t.diagnostic(`admitted ${admitted} (limit 20, bound 35)`);
      assert.ok(admitted >= 20 && admitted <= 20 + 3 * 5, `admitted ${admitted} (limit 20, bound 35)`);
      // Reported units are charged even past the limit: an unbatched gateway is refused too.
      for (const r of registries) await r.closeAll();
      const plain = registry();
      registries.push(plain);
      const decision = await plain.resolve(redisSpec(sharedRedisUrl)).take([key], [gcraLimit(20, 3_600_000)]);
      assert.ok(decision.ok && !decision.allowed);
    } finally {
      for (const r of registries) await r.closeAll();
    }
  });
});

// A real three-node Redis Cluster, made here from redis-server processes (no replicas).
describe('Redis Cluster', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-cluster-'));
  const children: Array<ReturnType<typeof spawn>> = [];
  const ports: number[] = [];
  let clusterOk: true | string = 'not started';

  before(async () => {
    for (let i = 0; i < 3; i++) ports.push(await freePort());
    for (const port of ports) {
      const child = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--save',
          '',
          '--appendonly',
          'no',
          '--dir',
          dir,
        ],
        { stdio: 'ignore' },
      );
      children.push(child);
    }
    await new Promise((r) => setTimeout(r, 300));
    const create = spawnSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { encoding: 'utf8', timeout: 20_000 },
    );
    if (create.status !== 0) {
      clusterOk = `redis-cli --cluster create failed: ${create.stdout}${create.stderr}`;
      return;
    }
    for (let i = 0; i < 100; i++) {
      const info = spawnSync('redis-cli', ['-p', String(ports[0]), 'cluster', 'info'], { encoding: 'utf8' });
      if (info.stdout.includes('cluster_state:ok')) {
        clusterOk = true;
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    clusterOk = 'the cluster never reported cluster_state:ok';
  });

  after(() => {
    for (const child of children) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  test('one decision over several keys stays in one slot (no CROSSSLOT), decisions agree across nodes', async () => {
    assert.equal(clusterOk, true);
    const limiters = registry();
    try {
      const backend = limiters.resolve({
        ...redisSpec(''),
        redis: { cluster: { nodes: [`redis://127.0.0.1:${ports[0]}`] }, timeout: '5s', prefix },
      });
      const tight = gcraLimit(3, 3_600_000);
      const loose = gcraLimit(100, 3_600_000);
      // Keys as the rateLimit policy makes them for limits by different keys: one tag, the scope's.
      for (const caller of ['alice', 'bob', 'carol', 'dave']) {
        const keys = [`${prefix}{scope}a:${caller}`, `${prefix}{scope}b:route`];
        const answers = [];
        for (let i = 0; i < 4; i++) answers.push(await backend.take(keys, [tight, loose]));
        assert.ok(
          answers.every((d) => d.ok),
          JSON.stringify(answers),
        );
        assert.deepEqual(
          answers.map((d) => d.ok && d.allowed),
          [true, true, true, false],
        );
      }
      // Single-limit keys carry their own tag, so they spread over the nodes.
      for (let i = 0; i < 20; i++) {
        const decision = await backend.take([`${prefix}{limit:caller-${i}}`], [tight]);
        assert.ok(decision.ok && decision.allowed);
      }
    } finally {
      await limiters.closeAll();
    }
  });
});
