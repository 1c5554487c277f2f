// Analytics end to end with real processes: a gateway (`gatehouse gateway`) shipping API events to
// standalone ingestion (`gatehouse analytics-ingest`, SQLite store) over HTTP with its own link JWT.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { importJWK, SignJWT } from 'jose';
import { Pool } from 'undici';
import { eventJson } from '../src/analytics/event.ts';
import { createEventIdGenerator } from '../src/analytics/event-id.ts';
import {
  metricValue,
  sha256,
  startIngest,
  storedEvents,
  type IngestProcess,
  waitFor,
} from './helpers/analytics.ts';
import { newTestKey } from './helpers/jwks.ts';
import {
  freePort,
  type RunningProcess,
  runCli,
  startGateway,
  tempConfigDir,
  writeConfig,
} from './helpers/process.ts';
import { type EchoUpstream, startEchoUpstream } from './helpers/upstream.ts';

const keys = { a: 'key-partner-a-0123456789', b: 'key-partner-b-0123456789' };

describe('analytics: gateway → ingestion', () => {
  let dir: string;
  let upstream: EchoUpstream;
  let ingest: IngestProcess;
  let gateway: RunningProcess;
  let port: number;
  let adminPort: number;
  let ingestPort: number;
  let configPath: string;

  before(async () => {
    dir = tempConfigDir('gatehouse-analytics-');
    upstream = await startEchoUpstream((req, res) => {
      if (!req.url.startsWith('/fail')) return false;
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('boom');
      return true;
    });
    [port, adminPort, ingestPort] = [await freePort(), await freePort(), await freePort()];
    configPath = writeConfig(
      dir,
      'gateway.yaml',
      `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, address: 127.0.0.1, port: ${port} }]
  admin: { port: ${adminPort} }
  accessLog: { enabled: false }
  shutdown: { drainTimeout: 1s }
  tokens: { keys: { dir: keys } }
  analytics:
    http: { url: "http://127.0.0.1:${ingestPort}/analytics/v1/events", timeout: 2s }
    batch: { maxEvents: 200, interval: 100ms }
    retry: { initialDelay: 50ms, maxDelay: 400ms }
    spool: { dir: spool, fsyncInterval: 100ms }
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: app }
spec:
  targets: [{ url: "${upstream.url}" }]
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: app-retried }
spec:
  targets: [{ url: "${upstream.url}" }]
  retries: { attempts: 1, on: [503] }
---
apiVersion: gatehouse.dev/v1
kind: Consumer
metadata: { name: partner-a }
spec:
  apiKeys: [{ sha256: ${sha256(keys.a)}, name: main }]
---
apiVersion: gatehouse.dev/v1
kind: Consumer
metadata: { name: partner-b }
spec:
  apiKeys: [{ sha256: ${sha256(keys.b)}, name: main }]
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: shop }
spec:
  gateway: edge
  upstream: app
  rules:
    - { path: /ok, methods: [GET], authenticate: [{ noAuth: {} }] }
    - { path: "/items/{id}", methods: [GET], authenticate: [{ apiKey: {} }] }
    - { path: /fail, methods: [GET], authenticate: [{ noAuth: {} }] }
    - { path: /retried, methods: [GET], authenticate: [{ noAuth: {} }], upstream: app-retried }
`,
    );
    ingest = await startIngest(dir, { port: ingestPort, adminPort });
    gateway = await startGateway([configPath], ['--no-watch']);
  });

  after(async () => {
    await gateway?.stop();
    await ingest?.proc.stop();
    await upstream?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Sends requests on a keep-alive pool; returns the request ids of the answers received. */
  async function send(
    requests: Array<{ path: string; headers?: Record<string, string> }>,
    connections = 4,
  ): Promise<string[]> {
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections });
    const ids: string[] = [];
    let next = 0;
    const worker = async () => {
      while (next < requests.length) {
        const r = requests[next++]!;
        const answer = await pool.request({ method: 'GET', path: r.path, headers: r.headers ?? {} });
        await answer.body.dump();
        ids.push(answer.headers['x-request-id'] as string);
      }
    };
    await Promise.all(Array.from({ length: connections }, worker));
    await pool.close();
    return ids;
  }

  const query = async (path: string) => {
    const res = await fetch(`${ingest.url}${path}`, {
      headers: { authorization: `Bearer ${ingest.queryToken}` },
    });
    assert.equal(res.status, 200, await res.clone().text());
    return (await res.json()) as { rows: Array<Record<string, unknown>> };
  };

  test('N requests → exactly N events stored; queries aggregate the known traffic mix', async () => {
    const mix = [
      ...Array.from({ length: 60 }, () => ({ path: '/ok' })),
      ...Array.from({ length: 25 }, (_, i) => ({ path: `/items/${i}`, headers: { 'x-api-key': keys.a } })),
      ...Array.from({ length: 10 }, (_, i) => ({ path: `/items/${i}`, headers: { 'x-api-key': keys.b } })),
      ...Array.from({ length: 5 }, () => ({
        path: '/items/1',
        headers: { 'x-api-key': 'wrong-key-000000' },
      })),
      ...Array.from({ length: 15 }, () => ({ path: '/fail' })),
      ...Array.from({ length: 5 }, () => ({ path: '/nowhere' })),
    ];
    const ids = await send(mix);
    assert.equal(ids.length, 120);
    const wanted = new Set(ids);
    const rows = await waitFor(
      'all 120 events stored',
      () => storedEvents(ingest.dataDir).filter((r) => wanted.has(r.request_id)),
      (r) => r.length >= 120,
    );
    assert.equal(rows.length, 120, 'exactly N events');
    assert.equal(new Set(rows.map((r) => r.id)).size, 120, 'ids are unique');

    const byRoute = await query('/api/v1/analytics/requests?from=-10m&groupBy=route,status');
    const count = (route: string | null, status: number) =>
      byRoute.rows.find((r) => {
        const g = r.group as Record<string, unknown>;
        return g.route === route && g.status === status;
      })?.requests ?? 0;
    assert.equal(count('default/shop#0', 200), 60);
    assert.equal(count('default/shop#1', 200), 35);
    assert.equal(count('default/shop#1', 401), 5);
    assert.equal(count('default/shop#2', 500), 15);
    assert.equal(count(null, 404), 5);
    const fail = byRoute.rows.find((r) => (r.group as Record<string, unknown>).route === 'default/shop#2')!;
    assert.equal(fail.errorRate, 1);
    assert.ok((fail.p50 as number) > 0 && (fail.p99 as number) >= (fail.p50 as number));

    const top = await query('/api/v1/analytics/top?by=consumer&from=-10m&route=default/shop%231');
    assert.deepEqual(
      top.rows.map((r) => [r.key, r.requests]),
      [
        ['partner-a', 25],
        ['partner-b', 10],
        [null, 5],
      ],
    );
    const overTime = await query('/api/v1/analytics/requests?from=-10m&interval=1m&route=default/shop%230');
    assert.equal(
      overTime.rows.reduce((s, r) => s + (r.requests as number), 0),
      60,
    );

    const cli = runCli(
      [
        'analytics',
        'top',
        '--url',
        ingest.url,
        '--token-env',
        'GH_Q',
        '--by',
        'consumer',
        '--from=-10m',
        '--route',
        'default/shop#1',
      ],
      { GH_Q: ingest.queryToken },
    );
    const exit = await cli.exited;
    assert.equal(exit.code, 0, cli.stderr());
    assert.match(
      cli.stdout(),
      /^key\s+requests\s+errors\npartner-a\s+25\s+0\npartner-b\s+10\s+0\n-\s+5\s+0\n$/,
    );

    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    assert.equal(metricValue(metrics, 'gatehouse_analytics_events_dropped_total'), 0);
    assert.ok(metricValue(metrics, 'gatehouse_analytics_events_sent_total') >= 120);
  });

  test('ingestion down for a while: events wait in the spool and arrive after it returns', async () => {
    await ingest.proc.stop();
    const ids = await send(Array.from({ length: 150 }, () => ({ path: '/ok' })));
    const metrics = await waitFor(
      'the gateway to hold the events',
      async () => (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text(),
      (m) => metricValue(m, 'gatehouse_analytics_spool_events') >= 150,
    );
    assert.equal(metricValue(metrics, 'gatehouse_analytics_events_dropped_total'), 0);
    await new Promise((r) => setTimeout(r, 800)); // a few failed uploads and backoff steps
    ingest = await startIngest(dir, { port: ingestPort, adminPort });
    const wanted = new Set(ids);
    const rows = await waitFor(
      'the spooled events to arrive',
      () => storedEvents(ingest.dataDir).filter((r) => wanted.has(r.request_id)),
      (r) => r.length >= 150,
    );
    assert.equal(rows.length, 150);
    await waitFor(
      'the spool to be acknowledged',
      async () =>
        metricValue(
          await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text(),
          'gatehouse_analytics_spool_events',
        ),
      (n) => n === 0,
    );
  });

  test('gateway killed with SIGKILL mid-load and restarted: the answered requests’ events arrive once', async () => {
    const before = storedEvents(ingest.dataDir).length;
    const answered: string[] = [];
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 8 });
    let killed = false;
    const connections = 8;
    const worker = async () => {
      for (let i = 0; i < 400 && !killed; i++) {
        try {
          // Relayed answers (one try, and with retries), the gateway's own problem answers from the
          // pipeline and from admission.
          const path = ['/ok', '/retried', '/ok', '/items/1', '/nowhere'][i % 5]!;
          const answer = await pool.request({ method: 'GET', path });
          await answer.body.text(); // the whole answer received (a cut-off one rejects)
          answered.push(answer.headers['x-request-id'] as string);
        } catch {
          return; // the gateway is gone
        }
      }
    };
    const load = Promise.all(Array.from({ length: connections }, worker));
    await waitFor(
      'some load',
      () => answered.length,
      (n) => n >= 600,
      60_000,
    );
    gateway.child.kill('SIGKILL');
    killed = true;
    await gateway.exited;
    await load;
    await pool.destroy();
    assert.ok(answered.length >= 600);
    gateway = await startGateway([configPath], ['--no-watch']);
    // What was not acknowledged at the kill is replayed from the spool and sent again.
    const replay = JSON.parse(await gateway.waitFor(/analytics spool replayed/)) as { events: number };
    assert.ok(replay.events > 0);
    const wanted = new Set(answered);
    // Everything the spool held is sent again; wait until the gateway has nothing left.
    await waitFor(
      'the restarted gateway to deliver its spool',
      async () => {
        const m = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
        return (
          metricValue(m, 'gatehouse_analytics_spool_events') +
          metricValue(m, 'gatehouse_analytics_queue_events')
        );
      },
      (n) => n === 0,
    );
    const rows = storedEvents(ingest.dataDir);
    const stored = rows.filter((r) => wanted.has(r.request_id));
    const perRequest = new Map<string, number>();
    for (const r of stored) perRequest.set(r.request_id, (perRequest.get(r.request_id) ?? 0) + 1);
    assert.equal([...perRequest.values()].filter((n) => n > 1).length, 0, 'no event stored twice');
    const missing = answered.filter((id) => !perRequest.has(id));
    // docs/analytics.md: a response's last bytes leave only once its event is in the spool file
    // (group commit), so every answer the client fully received has its event — stored exactly once.
    assert.deepEqual(
      missing,
      [],
      `${missing.length} answered requests have no event; stored ${rows.length - before}`,
    );
    assert.equal(perRequest.size, answered.length);
    const ingestMetrics = await (await fetch(`${ingest.url}/metrics`)).text();
    process.stdout.write(
      `# SIGKILL: ${answered.length} answered, ${missing.length} without an event, ${replay.events} replayed, ` +
        `${metricValue(ingestMetrics, 'gatehouse_analytics_ingest_events_total', 'duplicate')} duplicates ignored\n`,
    );
  });

  test('a forged or expired link JWT is refused; the gateway’s own key, fresh, is accepted; a compression bomb is a 413', async () => {
    const url = `${ingest.url}/analytics/v1/events`;
    const nextId = createEventIdGenerator();
    const event = (requestId: string) =>
      eventJson({
        v: 1,
        id: nextId(Date.now()),
        time: Date.now(),
        requestId,
        gateway: 'edge',
        api: 'default/shop',
        route: 'default/shop#0',
        rule: 0,
        consumer: null,
        subject: null,
        client: '127.0.0.1',
        method: 'GET',
        host: '127.0.0.1',
        pathTemplate: '/ok',
        pathParams: [],
        status: 200,
        latencyMs: 1,
        upstreamMs: 0.5,
        gatewayMs: 0.5,
        bytesIn: 0,
        bytesOut: 10,
        authMethod: 'noAuth',
        authResult: 'ok',
        rateLimit: 'none',
        error: null,
        traceId: null,
        completed: true,
      });
    const post = (token: string, requestId: string) =>
      fetch(url, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-encoding': 'gzip',
          'content-type': 'application/json',
        },
        body: gzipSync(`{"v":1,"gateway":"edge","events":[${event(requestId)}]}`),
      });
    const now = Math.floor(Date.now() / 1000);
    // The gateway's real signing key, read from its keys dir (what an attacker must not have).
    const keyFile = readdirSync(join(dir, 'keys')).find((f) => f.endsWith('.jwk.json'))!;
    const jwk = JSON.parse(readFileSync(join(dir, 'keys', keyFile), 'utf8'));
    const realKey = await importJWK(jwk, 'ES256');
    const sign = (key: Parameters<SignJWT['sign']>[0], kid: string, iat: number, exp: number) =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
        .setIssuer('gatehouse://edge')
        .setSubject('edge')
        .setAudience('gatehouse:analytics')
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .sign(key);

    const forgedKey = await newTestKey('ES256', jwk.kid);
    const forged = await post(await sign(forgedKey.privateKey, jwk.kid, now, now + 300), 'forged-1');
    assert.equal(forged.status, 401);
    assert.equal(((await forged.json()) as { code: string }).code, 'invalid_token');

    const expired = await post(await sign(realKey, jwk.kid, now - 900, now - 600), 'expired-1');
    assert.equal(expired.status, 401);
    assert.equal(((await expired.json()) as { code: string }).code, 'invalid_token');

    const none = await fetch(url, { method: 'POST', body: '{}' });
    assert.equal(none.status, 401);

    const fresh = await post(await sign(realKey, jwk.kid, now, now + 300), 'fresh-1');
    assert.equal(fresh.status, 202, await fresh.clone().text());
    const stored = storedEvents(ingest.dataDir).map((r) => r.request_id);
    assert.ok(stored.includes('fresh-1'));
    assert.ok(!stored.includes('forged-1') && !stored.includes('expired-1'));

    // A compression bomb with a good token: decompression stops at maxDecompressedBytes (64 MiB),
    // whatever the output buffer ingestion decompresses into; the answer is a 413 problem.
    const token = await sign(realKey, jwk.kid, now, now + 300);
    const bomb = Buffer.alloc(65 << 20, 0x20);
    for (const [encoding, body] of [
      ['zstd', zstdCompressSync(bomb)],
      ['gzip', gzipSync(bomb)],
    ] as const) {
      const refused = await fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-encoding': encoding },
        body,
      });
      assert.equal(refused.status, 413, `${encoding}: ${await refused.clone().text()}`);
      assert.equal(refused.headers.get('content-type'), 'application/problem+json');
      const problem = (await refused.json()) as { code: string; detail: string };
      assert.equal(problem.code, 'analytics_batch_too_large');
      assert.match(problem.detail, /decompressed/);
    }
  });
});
