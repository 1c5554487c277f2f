// Rate limits end to end: real gateway processes over loopback, real Redis (127.0.0.1:6379, required
// in CI) and private redis-server processes for outages. See docs/rate-limits.md.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { httpRequest, type SimpleResponse } from './helpers/http.ts';
import {
  freePort,
  type RunningProcess,
  startGateway,
  tempConfigDir,
  writeConfig,
} from './helpers/process.ts';
import {
  deleteKeys,
  type PrivateRedis,
  sharedRedis,
  sharedRedisUrl,
  startPrivateRedis,
  uniquePrefix,
} from './helpers/redis.ts';
import { type EchoUpstream, startEchoUpstream } from './helpers/upstream.ts';

const redis = await sharedRedis();
const skipRedis = redis.ok ? false : redis.skip;
const prefix = uniquePrefix('rate-limit');
const sha256 = (key: string) => createHash('sha256').update(key).digest('hex');

let upstream: EchoUpstream;
const gateways: RunningProcess[] = [];

before(async () => {
  upstream = await startEchoUpstream();
});

after(async () => {
  await Promise.all(gateways.map((g) => g.stop()));
  await upstream.close();
  if (redis.ok) await deleteKeys(prefix);
});

interface Gateway {
  proc: RunningProcess;
  port: number;
  admin: number;
}

/** Starts a gateway with these `rateLimits` and rules (YAML list items under `rules:`). */
async function gateway(rateLimits: string, rules: string, extra = ''): Promise<Gateway> {
  const [port, admin] = [await freePort(), await freePort()];
  const dir = tempConfigDir('gatehouse-rl-');
  writeConfig(
    dir,
    'gateway.yaml',
    `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, address: 127.0.0.1, port: ${port} }]
  admin: { port: ${admin} }
  trustedProxies: [127.0.0.1/32]
  accessLog: { enabled: false }
  rateLimits: ${rateLimits}
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: echo }
spec: { targets: [{ url: ${upstream.url} }] }
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: api }
spec:
  gateway: edge
  upstream: echo
  rules:
${rules}
${extra}`,
  );
  const proc = await startGateway([dir]);
  gateways.push(proc);
  return { proc, port, admin };
}

const get = (g: Gateway, path: string, headers: Record<string, string> = {}) =>
  httpRequest(g.port, path, { headers });

async function metric(g: Gateway, pattern: RegExp): Promise<number> {
  const text = (await httpRequest(g.admin, '/metrics')).body;
  return text
    .split('\n')
    .filter((line) => pattern.test(line))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

function statuses(responses: SimpleResponse[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const r of responses) counts[r.status] = (counts[r.status] ?? 0) + 1;
  return counts;
}

describe('rate limits, local backend', () => {
  let g: Gateway;
  const keys = { a: 'key-of-partner-a', b: 'key-of-partner-b' };

  before(async () => {
    g = await gateway(
      '{ backend: local }',
      `    - path: /limited
      authenticate: [{ noAuth: {} }]
      rateLimit: [{ limit: 3, window: 1h, key: client, name: default }, { limit: 1000, window: 1m, key: route }]
    - path: /tenants/{tenant}/items
      authenticate: [{ noAuth: {} }]
      rateLimit: [{ limit: 2, window: 1h, key: path:tenant }]
    - path: /by-header
      authenticate: [{ noAuth: {} }]
      rateLimit: [{ limit: 2, window: 1h, key: header:x-tenant }]
    - path: /partner
      authenticate: [{ apiKey: {} }]
      rateLimit: [{ limit: 2, window: 1h, key: consumer }]
    - path: /free
      authenticate: [{ noAuth: {} }]`,
      `---
apiVersion: gatehouse.dev/v1
kind: Consumer
metadata: { name: partner-a }
spec: { apiKeys: [{ sha256: ${sha256(keys.a)}, name: main }] }
---
apiVersion: gatehouse.dev/v1
kind: Consumer
metadata: { name: partner-b }
spec: { apiKeys: [{ sha256: ${sha256(keys.b)}, name: main }] }
`,
    );
  });

  test('headers on every answer; the fourth request is a 429 problem with Retry-After', async () => {
    const responses: SimpleResponse[] = [];
    for (let i = 0; i < 4; i++)
      responses.push(await get(g, '/limited', { 'x-forwarded-for': '198.51.100.1' }));
    assert.deepEqual(
      responses.map((r) => r.status),
      [200, 200, 200, 429],
    );
    for (const r of responses)
      assert.equal(r.headers['ratelimit-policy'], '"default";q=3;w=3600, "route-1000-per-1m";q=1000;w=60');
    assert.deepEqual(
      responses.map((r) => r.headers.ratelimit),
      ['"default";r=2;t=1200', '"default";r=1;t=1200', '"default";r=0;t=1200', '"default";r=0;t=1200'],
    );
    const refused = responses[3]!;
    assert.equal(refused.headers['content-type'], 'application/problem+json');
    assert.equal(refused.json().code, 'rate_limited');
    assert.equal(refused.json().status, 429);
    const retryAfter = Number(refused.headers['retry-after']);
    assert.ok(
      retryAfter > 1100 && retryAfter <= 1200,
      `Retry-After ${retryAfter}: one emission interval, 20 min`,
    );
    assert.equal(responses[0]!.json().url, '/limited', 'admitted requests reached the upstream');
  });

  test('key client: each client address (behind a trusted proxy) has its own counter', async () => {
    for (let i = 0; i < 3; i++)
      assert.equal((await get(g, '/limited', { 'x-forwarded-for': '198.51.100.2' })).status, 200);
    assert.equal((await get(g, '/limited', { 'x-forwarded-for': '198.51.100.2' })).status, 429);
    assert.equal((await get(g, '/limited', { 'x-forwarded-for': '198.51.100.3' })).status, 200);
  });

  test('key path:<param>: one counter per tenant in the path', async () => {
    const answers = [];
    for (const tenant of ['acme', 'acme', 'acme', 'globex'])
      answers.push((await get(g, `/tenants/${tenant}/items`)).status);
    assert.deepEqual(answers, [200, 200, 429, 200]);
  });

  test('key header:<name>: one counter per value; without the header, per client address', async () => {
    const answers = [];
    for (const tenant of ['acme', 'acme', 'acme', 'globex'])
      answers.push(
        (await get(g, '/by-header', { 'x-tenant': tenant, 'x-forwarded-for': '198.51.100.4' })).status,
      );
    assert.deepEqual(answers, [200, 200, 429, 200]);
    const without = [];
    for (const client of ['198.51.100.5', '198.51.100.5', '198.51.100.5', '198.51.100.6'])
      without.push((await get(g, '/by-header', { 'x-forwarded-for': client })).status);
    assert.deepEqual(without, [200, 200, 429, 200]);
  });

  test('key consumer: the Consumer of the API key, whatever address it comes from', async () => {
    const answers = [];
    for (const [key, client] of [
      [keys.a, '203.0.113.1'],
      [keys.a, '203.0.113.2'],
      [keys.a, '203.0.113.3'],
      [keys.b, '203.0.113.1'],
    ] as const)
      answers.push((await get(g, '/partner', { 'x-api-key': key, 'x-forwarded-for': client })).status);
    assert.deepEqual(answers, [200, 200, 429, 200]);
  });

  test('a reload keeps the counters: the limiter outlives plans', async () => {
    const client = { 'x-forwarded-for': '198.51.100.77' };
    for (let i = 0; i < 3; i++) assert.equal((await get(g, '/limited', client)).status, 200);
    const reloaded = () => g.proc.logs().filter((l) => l.msg === 'config reloaded').length;
    const before = reloaded();
    g.proc.child.kill('SIGHUP');
    for (let i = 0; i < 200 && reloaded() === before; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(reloaded(), before + 1);
    assert.equal((await get(g, '/limited', client)).status, 429);
  });

  test('a rule without limits has no headers; decisions are counted by rule and result', async () => {
    const free = await get(g, '/free');
    assert.equal(free.status, 200);
    assert.equal(free.headers.ratelimit, undefined);
    assert.equal(free.headers['ratelimit-policy'], undefined);
    assert.ok(
      (await metric(g, /^gatehouse_ratelimit_decisions_total\{route="default\/api#0",result="allowed"\}/)) >=
        4,
    );
    assert.ok(
      (await metric(g, /^gatehouse_ratelimit_decisions_total\{route="default\/api#0",result="limited"\}/)) >=
        2,
    );
  });
});

describe('rate limits, three gateways sharing Redis', { skip: skipRedis }, () => {
  const shared: Gateway[] = [];
  const section = `{ backend: redis, redis: { url: "${sharedRedisUrl}", timeout: 5s, prefix: "${prefix}shared:" } }`;

  before(async () => {
    const rules = `    - path: /exact
      authenticate: [{ noAuth: {} }]
      rateLimit: [{ limit: 30, window: 1h, key: route }]
    - path: /window
      authenticate: [{ noAuth: {} }]
      rateLimit: [{ limit: 30, window: 2s, key: route }]`;
    shared.push(
      ...(await Promise.all([gateway(section, rules), gateway(section, rules), gateway(section, rules)])),
    );
  });

  /** 90 requests at once, 30 through each gateway. */
  const burst = (path: string) =>
    Promise.all(shared.flatMap((g) => Array.from({ length: 30 }, () => get(g, path))));

  test('exactly the limit is admitted across the three: tolerance 0', async () => {
    // Window 1 h: a unit comes back every 2 min, far longer than the burst takes, so nothing refills
    // during it and the count is exact. Each decision is one atomic script run in Redis, so
    // concurrent gateways cannot both take the last unit.
    const counts = statuses(await burst('/exact'));
    assert.deepEqual(counts, { 200: 30, 429: 60 });
  });

  test('limit 30 per 2 s: the limit per window, plus only what refilled while the burst lasted', async (t) => {
    const clock = new Redis(sharedRedisUrl);
    clock.on('error', () => {});
    const redisMs = async () => {
      const [seconds, micros] = await clock.time();
      return Number(seconds) * 1000 + Number(micros) / 1000;
    };
    try {
      for (let round = 0; round < 2; round++) {
        // GCRA refills continuously, one unit every 2000 / 30 ms: a burst that lasts E ms on Redis'
        // clock (the clock the script decides by) admits 30 plus at most floor(E / 66.7) more.
        const start = await redisMs();
        const responses = await burst('/window');
        const elapsed = (await redisMs()) - start;
        const admitted = statuses(responses)[200] ?? 0;
        const bound = 30 + Math.floor(elapsed / (2000 / 30));
        t.diagnostic(
          `round ${round + 1}: ${admitted} of 90 admitted in ${Math.round(elapsed)} ms (bound ${bound})`,
        );
        assert.ok(admitted >= 30 && admitted <= bound, `admitted ${admitted}, expected 30…${bound}`);
        // Wait as long as the 429s say, then the counter is full again (bounded: a whole window).
        const retry = Math.max(
          ...responses.filter((r) => r.status === 429).map((r) => Number(r.headers['retry-after'])),
        );
        assert.ok(retry >= 1 && retry <= 2, `Retry-After ${retry}`);
        await new Promise((r) => setTimeout(r, 2100));
      }
    } finally {
      clock.disconnect();
    }
  });
});

describe('rate limits when Redis fails', { skip: skipRedis }, () => {
  let server: PrivateRedis;
  let closed: Gateway;
  let open: Gateway;
  let neverUp: Gateway;
  const rules = `    - path: /limited
      authenticate: [{ noAuth: {} }]
      rateLimit: [{ limit: 1000, window: 1s, key: client }]`;

  before(async () => {
    server = await startPrivateRedis();
    const section = (mode: string, url: string) =>
      `{ backend: redis, onBackendFailure: ${mode}, redis: { url: "${url}", timeout: 300ms, prefix: "${prefix}outage:" } }`;
    const deadPort = await freePort();
    [closed, open, neverUp] = await Promise.all([
      gateway(section('closed', server.url), rules),
      gateway(section('open', server.url), rules),
      gateway(section('closed', `redis://127.0.0.1:${deadPort}`), rules),
    ]);
  });

  after(() => server.stop());

  test('Redis on a port nobody listens on: fail closed is a 503 rate_limit_unavailable', async () => {
    const r = await get(neverUp, '/limited');
    assert.equal(r.status, 503);
    assert.equal(r.json().code, 'rate_limit_unavailable');
    assert.equal(r.headers['retry-after'], '1');
    assert.ok((await metric(neverUp, /^gatehouse_ratelimit_backend_errors_total\{backend="redis"/)) >= 1);
  });

  test('Redis killed: closed answers 503, open lets requests through; both count and log (throttled)', async () => {
    assert.equal((await get(closed, '/limited')).status, 200);
    assert.equal((await get(open, '/limited')).status, 200);
    await server.stop();
    for (let i = 0; i < 5; i++) {
      const refused = await get(closed, '/limited');
      assert.equal(refused.status, 503);
      assert.equal(refused.json().code, 'rate_limit_unavailable');
      const admitted = await get(open, '/limited');
      assert.equal(admitted.status, 200);
      assert.equal(admitted.json().url, '/limited');
    }
    assert.ok((await metric(closed, /^gatehouse_ratelimit_backend_errors_total\{backend="redis"/)) >= 5);
    assert.ok((await metric(open, /^gatehouse_ratelimit_backend_errors_total\{backend="redis"/)) >= 5);
    assert.equal(
      await metric(
        closed,
        /^gatehouse_ratelimit_decisions_total\{route="default\/api#0",result="failed_closed"\}/,
      ),
      5,
    );
    assert.equal(
      await metric(
        open,
        /^gatehouse_ratelimit_decisions_total\{route="default\/api#0",result="failed_open"\}/,
      ),
      5,
    );
    await closed.proc.waitFor(/rate-limit backend did not decide/);
    const logged = closed.proc
      .logs()
      .filter((l) => String(l.msg).startsWith('rate-limit backend did not decide'));
    assert.equal(logged.length, 1, 'five failures, one log line (at most one per 10 s)');
  });
});

describe('rate limits with batching, three gateways', { skip: skipRedis }, () => {
  const batched: Gateway[] = [];

  before(async () => {
    const section = `{ backend: redis, redis: { url: "${sharedRedisUrl}", timeout: 5s, prefix: "${prefix}batch:" }, batching: { enabled: true, maxLocal: 5, flushInterval: 50ms } }`;
    const rules = `    - path: /batched
      authenticate: [{ noAuth: {} }]
      rateLimit: [{ limit: 30, window: 1h, key: route }]`;
    batched.push(
      ...(await Promise.all([gateway(section, rules), gateway(section, rules), gateway(section, rules)])),
    );
  });

  test('at most limit + gateways × maxLocal admitted; the overshoot is charged, so then all refuse', async (t) => {
    // One request through each gateway first: each then holds a lease of 5 units it may admit
    // without asking Redis, the situation in which gateways overshoot the most.
    let admitted = 0;
    for (const g of batched) if ((await get(g, '/batched')).status === 200) admitted++;
    assert.equal(admitted, 3);
    const responses = await Promise.all(
      batched.flatMap((g) => Array.from({ length: 40 }, () => get(g, '/batched'))),
    );
    admitted += statuses(responses)[200] ?? 0;
    t.diagnostic(`${admitted} of 123 admitted (limit 30, bound 30 + 3 × 5 = 45)`);
    assert.ok(admitted >= 30 && admitted <= 45, `admitted ${admitted}`);
    // Each gateway's local units reach Redis within a flush interval; then every gateway refuses.
    for (const g of batched) {
      let refused = false;
      for (let i = 0; i < 50 && !refused; i++) {
        refused = (await get(g, '/batched')).status === 429;
        if (!refused) await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(refused);
    }
  });
});
