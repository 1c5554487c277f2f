// Resilient upstreams end to end: a real `gatehouse gateway` process in front of real HTTP(S) targets
// on loopback. Load balancing (weighted round-robin, least-request, consistent hash), active health
// checks, passive ejection, retries and their budget, circuit breakers, and TLS to the targets
// (verification, SNI, mTLS) with certificates made by the test.

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { makeCA, tmpDir } from './helpers/certs.ts';
import { httpRequest, type SimpleResponse } from './helpers/http.ts';
import {
  freePort,
  type RunningProcess,
  runCli,
  startGateway,
  tempConfigDir,
  writeConfig,
} from './helpers/process.ts';

type Mode = 'ok' | '503' | '500' | 'slow' | 'hang';

/** A target that says who it is, counts what it gets, answers as `mode` says and can stop and start again. */
interface Target {
  readonly name: string;
  readonly url: string;
  mode: Mode;
  /** Requests other than health checks. */
  hits: number;
  healthChecks: number;
  stop(): Promise<void>;
  start(): Promise<void>;
}

async function startTarget(name: string, mode: Mode = 'ok', port = 0): Promise<Target> {
  let server: Server | null = null;
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/health') {
        target.healthChecks++;
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
        return;
      }
      target.hits++;
      const answer = (status: number) => {
        const body = JSON.stringify({ target: name, method: req.method, url: req.url });
        res.writeHead(status, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        });
        res.end(body);
      };
      if (target.mode === 'slow') setTimeout(() => answer(200), 300);
      else if (target.mode === 'hang') setTimeout(() => answer(200), 60_000).unref();
      else answer(target.mode === 'ok' ? 200 : Number(target.mode));
    });
  };
  const listen = async (on: number) => {
    server = createServer(handle);
    await new Promise<void>((resolve) => server!.listen(on, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  };
  const bound = await listen(port);
  const target: Target = {
    name,
    url: `http://127.0.0.1:${bound}`,
    mode,
    hits: 0,
    healthChecks: 0,
    async stop() {
      const s = server;
      server = null;
      if (!s) return;
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
    async start() {
      if (!server) await listen(bound);
    },
  };
  return target;
}

/** The value of one sample in a Prometheus text exposition, or null when absent. */
function sample(text: string, name: string, labels: Record<string, string>): number | null {
  const wanted = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',');
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.indexOf('} ');
    const have = line
      .slice(name.length + 1, close)
      .split(',')
      .sort()
      .join(',');
    if (have === wanted.split(',').sort().join(',')) return Number(line.slice(close + 2));
  }
  return null;
}

/** Polls until `check` holds; fails with `what` after the (generous) deadline. */
async function eventually(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting until ${what}`);
}

async function sequential(
  port: number,
  path: string,
  count: number,
  options = {},
): Promise<SimpleResponse[]> {
  const out: SimpleResponse[] = [];
  for (let i = 0; i < count; i++) out.push(await httpRequest(port, path, options));
  return out;
}

function targetOf(response: SimpleResponse): string {
  assert.equal(response.status, 200, response.body);
  return response.json<{ target: string }>().target;
}

describe('balancing, health, retries and circuits', () => {
  let gateway: RunningProcess;
  let port: number;
  let adminPort: number;
  const t: Record<string, Target> = {};
  const metrics = async () => (await httpRequest(adminPort, '/metrics')).body;
  const healthy = async (upstream: string, target: Target) =>
    sample(await metrics(), 'gatehouse_upstream_target_healthy', {
      upstream: `default/${upstream}`,
      target: target.url,
    });
  const reset = () => {
    for (const target of Object.values(t)) target.hits = 0;
  };

  before(async () => {
    const names: Array<[string, Mode]> = [
      ['a', 'ok'],
      ['b', 'ok'],
      ['slow', 'slow'],
      ['fast', 'ok'],
      ['h1', 'ok'],
      ['h2', 'ok'],
      ['h3', 'ok'],
      ['c1', 'ok'],
      ['c2', 'ok'],
      ['o1', '500'],
      ['o2', 'ok'],
      ['r1', '503'],
      ['r2', 'ok'],
      ['q1', '503'],
      ['q2', 'ok'],
      ['k1', '503'],
      ['k2', 'ok'],
      ['t1', 'hang'],
      ['t2', 'ok'],
      ['d2', 'ok'],
    ];
    for (const [name, mode] of names) t[name] = await startTarget(name, mode);
    port = await freePort();
    adminPort = await freePort();
    const deadUrl = `http://127.0.0.1:${await freePort()}`;
    const upstream = (name: string, targets: string, extra = '') =>
      `---\napiVersion: gatehouse.dev/v1\nkind: Upstream\nmetadata: { name: ${name} }\nspec:\n  targets: ${targets}\n${extra}`;
    const url = (name: string) => t[name]!.url;
    const dir = tempConfigDir();
    writeConfig(
      dir,
      'gateway.yaml',
      `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, address: 127.0.0.1, port: ${port} }]
  admin: { port: ${adminPort} }
${upstream('weighted', `[{ url: ${url('a')}, weight: 3 }, { url: ${url('b')}, weight: 1 }]`)}
${upstream('least', `[{ url: ${url('slow')} }, { url: ${url('fast')} }]`, '  loadBalancer: { algorithm: least-request }\n')}
${upstream(
  'hashed',
  `[{ url: ${url('h1')} }, { url: ${url('h2')} }, { url: ${url('h3')} }]`,
  '  loadBalancer: { algorithm: consistent-hash, hashOn: "header:x-user" }\n',
)}
${upstream(
  'checked',
  `[{ url: ${url('c1')} }, { url: ${url('c2')} }]`,
  '  healthCheck: { path: /health, interval: 100ms, timeout: 2s, healthyThreshold: 2, unhealthyThreshold: 2 }\n',
)}
${upstream(
  'outliers',
  `[{ url: ${url('o1')} }, { url: ${url('o2')} }]`,
  '  outlierDetection: { consecutiveFailures: 3, baseEjectionTime: 10m, maxEjectionTime: 10m }\n',
)}
${upstream('retried', `[{ url: ${url('r1')} }, { url: ${url('r2')} }]`, '  retries: { attempts: 1, on: [503] }\n')}
${upstream(
  'budgeted',
  `[{ url: ${url('q1')} }, { url: ${url('q2')} }]`,
  '  retries: { attempts: 1, on: [503], budget: { ratio: 0.25, minPerSecond: 0 } }\n',
)}
${upstream(
  'breaker',
  `[{ url: ${url('k1')} }, { url: ${url('k2')} }]`,
  '  circuitBreaker: { failureRatio: 0.5, minRequests: 4, window: 1m, openFor: 5s, halfOpenRequests: 1 }\n',
)}
${upstream(
  'timed',
  `[{ url: ${url('t1')} }, { url: ${url('t2')} }]`,
  '  retries: { attempts: 1, on: [timeout], perTryTimeout: 2s }\n',
)}
${upstream('half-dead', `[{ url: ${deadUrl} }, { url: ${url('d2')} }]`, '  retries: {}\n')}
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: balancing }
spec:
  gateway: edge
  upstream: weighted
  rules:
    - { path: /rr, authenticate: [{ noAuth: {} }] }
    - { path: /lr, upstream: least, authenticate: [{ noAuth: {} }] }
    - { path: /hash, upstream: hashed, authenticate: [{ noAuth: {} }] }
    - { path: /hc, upstream: checked, authenticate: [{ noAuth: {} }] }
    - { path: /outlier, upstream: outliers, authenticate: [{ noAuth: {} }] }
    - { path: /retry, upstream: retried, authenticate: [{ noAuth: {} }] }
    - { path: /budget, upstream: budgeted, authenticate: [{ noAuth: {} }] }
    - { path: /circuit, upstream: breaker, authenticate: [{ noAuth: {} }] }
    - { path: /timed, upstream: timed, authenticate: [{ noAuth: {} }] }
    - { path: /half-dead, upstream: half-dead, authenticate: [{ noAuth: {} }] }
`,
    );
    gateway = await startGateway([dir]);
  });

  after(async () => {
    await gateway?.stop();
    await Promise.all(Object.values(t).map((target) => target.stop()));
  });

  test('round-robin follows the weights', async () => {
    reset();
    const seen = (await sequential(port, '/rr', 40)).map(targetOf);
    assert.equal(seen.filter((n) => n === 'a').length, 30);
    assert.equal(seen.filter((n) => n === 'b').length, 10);
  });

  test('least-request sends fewer requests to a slow target', async () => {
    reset();
    const workers = Array.from({ length: 6 }, async () => (await sequential(port, '/lr', 6)).map(targetOf));
    const seen = (await Promise.all(workers)).flat();
    assert.equal(seen.length, 36);
    assert.ok(t.slow!.hits < t.fast!.hits, `slow ${t.slow!.hits}, fast ${t.fast!.hits}`);
  });

  test('consistent hash: the same key goes to the same target', async () => {
    reset();
    const placement = new Map<string, string>();
    for (let i = 0; i < 30; i++) {
      const user = `user-${i}`;
      placement.set(user, targetOf(await httpRequest(port, '/hash', { headers: { 'x-user': user } })));
    }
    for (const [user, first] of placement) {
      const again = targetOf(await httpRequest(port, '/hash', { headers: { 'x-user': user } }));
      assert.equal(again, first, `${user} moved`);
    }
    assert.ok(new Set(placement.values()).size >= 2, 'keys spread over the targets');
    // Without the key a request is still served (balanced round-robin).
    assert.equal((await httpRequest(port, '/hash')).status, 200);
  });

  test('health checks take a stopped target out and bring it back; none healthy is a 503', async () => {
    const c1 = t.c1!;
    const c2 = t.c2!;
    await eventually('both checked targets are reported healthy', async () => {
      return (await healthy('checked', c1)) === 1 && (await healthy('checked', c2)) === 1;
    });
    assert.ok(c1.healthChecks > 0 && c2.healthChecks > 0);
    reset();
    assert.deepEqual(new Set((await sequential(port, '/hc', 4)).map(targetOf)), new Set(['c1', 'c2']));

    await c1.stop();
    await eventually('c1 is unhealthy', async () => (await healthy('checked', c1)) === 0);
    reset();
    const whileDown = (await sequential(port, '/hc', 10)).map(targetOf);
    assert.deepEqual(new Set(whileDown), new Set(['c2']));

    await c2.stop();
    await eventually('c2 is unhealthy', async () => (await healthy('checked', c2)) === 0);
    const none = await httpRequest(port, '/hc');
    assert.equal(none.status, 503);
    assert.equal(none.json().code, 'upstream_unavailable');
    assert.equal(none.json().detail, 'no healthy target');
    // Readiness does not depend on upstream health.
    assert.equal((await httpRequest(adminPort, '/readyz')).status, 200);

    await c1.start();
    await eventually('c1 is healthy again', async () => (await healthy('checked', c1)) === 1);
    reset();
    assert.deepEqual(new Set((await sequential(port, '/hc', 6)).map(targetOf)), new Set(['c1']));
    await c2.start();
    await eventually('c2 is healthy again', async () => (await healthy('checked', c2)) === 1);
    reset();
    assert.deepEqual(new Set((await sequential(port, '/hc', 6)).map(targetOf)), new Set(['c1', 'c2']));
  });

  test('passive outlier detection ejects a target that keeps failing', async () => {
    reset();
    const statuses = (await sequential(port, '/outlier', 20)).map((r) => r.status);
    // Round-robin: o1 answers 500 three times in a row (its calls alternate with o2's), then is out.
    assert.equal(t.o1!.hits, 3);
    assert.equal(statuses.filter((s) => s === 500).length, 3);
    assert.deepEqual(statuses.slice(6), Array(14).fill(200));
    assert.equal(await healthy('outliers', t.o1!), 0);
    assert.equal(await healthy('outliers', t.o2!), 1);
  });

  test('a 503 is retried on the other target; a POST is not', async () => {
    reset();
    const gets = await sequential(port, '/retry', 10);
    for (const response of gets) assert.equal(targetOf(response), 'r2');
    assert.ok(t.r1!.hits >= 1);
    const retried = sample(await metrics(), 'gatehouse_upstream_retries_total', {
      upstream: 'default/retried',
      reason: '503',
    });
    assert.equal(retried, t.r1!.hits, 'every 503 from r1 was retried');

    reset();
    const posts = [
      ...(await sequential(port, '/retry', 3, { method: 'POST', body: '{"order":1}' })),
      ...(await sequential(port, '/retry', 3, { method: 'POST' })),
    ];
    const refused = posts.filter((r) => r.status === 503).length;
    assert.ok(refused >= 1);
    assert.equal(refused, t.r1!.hits, 'a POST that reached r1 got its 503');
    assert.equal(posts.length - refused, t.r2!.hits);
    const after = sample(await metrics(), 'gatehouse_upstream_retries_total', {
      upstream: 'default/retried',
      reason: '503',
    });
    assert.equal(after, retried, 'no POST was retried');
  });

  test('connection failures and tries that time out are retried on another target', async () => {
    reset();
    for (const response of await sequential(port, '/half-dead', 4)) assert.equal(targetOf(response), 'd2');
    const text = await metrics();
    assert.equal(
      sample(text, 'gatehouse_upstream_retries_total', {
        upstream: 'default/half-dead',
        reason: 'connect-failure',
      }),
      2,
    );
    const timed = await sequential(port, '/timed', 2);
    for (const response of timed) assert.equal(targetOf(response), 't2');
    assert.equal(t.t1!.hits, 1, 'the first try went to the target that does not answer');
    assert.equal(
      sample(await metrics(), 'gatehouse_upstream_retries_total', {
        upstream: 'default/timed',
        reason: 'timeout',
      }),
      1,
    );
  });

  test('the retry budget caps retries', async () => {
    reset();
    const responses = await sequential(port, '/budget', 40);
    const text = await metrics();
    const retried =
      sample(text, 'gatehouse_upstream_retries_total', { upstream: 'default/budgeted', reason: '503' }) ?? 0;
    const exhausted =
      sample(text, 'gatehouse_upstream_retry_budget_exhausted_total', { upstream: 'default/budgeted' }) ?? 0;
    assert.ok(retried >= 1, 'some retries were made');
    assert.ok(exhausted >= 1, 'the budget ran out');
    assert.ok(retried <= 40 * 0.25, `at most a quarter of the requests were retried (${retried})`);
    // Every 503 from q1 was either retried (and answered by q2) or, past the budget, answered as is.
    assert.equal(retried + exhausted, t.q1!.hits);
    assert.equal(responses.filter((r) => r.status === 503).length, exhausted);
    assert.equal(responses.filter((r) => r.status === 200).length, 40 - exhausted);
  });

  test('a circuit opens on failures, then half-opens and closes on a successful probe', async () => {
    const k1 = t.k1!;
    const state = async () =>
      sample(await metrics(), 'gatehouse_upstream_circuit_state', {
        upstream: 'default/breaker',
        target: k1.url,
      });
    assert.equal(await state(), 0);
    reset();
    await sequential(port, '/circuit', 8);
    assert.equal(k1.hits, 4);
    assert.equal(await state(), 1, 'open after 4 failures out of 4');

    const whileOpen = await sequential(port, '/circuit', 6);
    // Asserted only while the circuit is still open (openFor is 5 s; a very slow machine may pass it).
    if ((await state()) === 1) {
      assert.equal(k1.hits, 4, 'no traffic to an open circuit');
      for (const response of whileOpen) assert.equal(targetOf(response), 'k2');
    }

    k1.mode = 'ok';
    await eventually('the circuit is half-open', async () => (await state()) === 2);
    const before = k1.hits;
    for (let i = 0; i < 6 && k1.hits === before; i++)
      assert.equal((await httpRequest(port, '/circuit')).status, 200);
    assert.equal(k1.hits, before + 1, 'one probe reached k1');
    assert.equal(await state(), 0, 'closed after a successful probe');
  });
});

describe('TLS to the targets', () => {
  let dir: string;
  let gateway: RunningProcess;
  let port: number;
  const servers: Server[] = [];
  const seenClients: string[] = [];
  let rogueHits = 0;

  before(async () => {
    dir = tmpDir('gatehouse-upstream-tls-');
    const ca = makeCA(dir, 'Upstream Test Root');
    const rogue = makeCA(dir, 'Rogue Root');
    const serverCert = ca.issue({ cn: 'orders.internal', dns: ['orders.internal'], ips: ['127.0.0.1'] });
    const rogueCert = rogue.issue({ cn: 'rogue', dns: ['rogue.internal'], ips: ['127.0.0.1'] });
    const clientCert = ca.issue({ cn: 'gatehouse-edge', client: true });

    // Requires a client certificate from the test CA.
    const mtls = createHttpsServer(
      {
        cert: serverCert.cert,
        key: serverCert.key,
        ca: ca.cert,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        const cn = String((req.socket as TLSSocket).getPeerCertificate().subject?.CN ?? '');
        seenClients.push(cn);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ client: cn }));
      },
    );
    // Serves a certificate from a CA the gateway does not trust.
    const rogueServer = createHttpsServer({ cert: rogueCert.cert, key: rogueCert.key }, (_req, res) => {
      rogueHits++;
      res.writeHead(200).end('rogue');
    });
    for (const server of [mtls, rogueServer]) {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      servers.push(server);
    }
    const mtlsUrl = `https://127.0.0.1:${(mtls.address() as AddressInfo).port}`;
    const rogueUrl = `https://127.0.0.1:${(rogueServer.address() as AddressInfo).port}`;
    const rel = (p: string) => JSON.stringify(relative(dir, p));
    const clientTls = `clientCert: { cert: ${rel(clientCert.certPath)}, key: ${rel(clientCert.keyPath)} }`;
    port = await freePort();
    const upstream = (name: string, url: string, tls: string) =>
      `---\napiVersion: gatehouse.dev/v1\nkind: Upstream\nmetadata: { name: ${name} }\nspec:\n  targets: [{ url: ${url} }]\n  tls: { ${tls} }\n`;
    writeConfig(
      dir,
      'gateway.yaml',
      `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, address: 127.0.0.1, port: ${port} }]
${upstream('with-cert', mtlsUrl, `caCerts: ${rel(ca.certPath)}, ${clientTls}`)}
${upstream('by-name', mtlsUrl, `caCerts: ${rel(ca.certPath)}, serverName: orders.internal, ${clientTls}`)}
${upstream('wrong-name', mtlsUrl, `caCerts: ${rel(ca.certPath)}, serverName: other.internal, ${clientTls}`)}
${upstream('without-cert', mtlsUrl, `caCerts: ${rel(ca.certPath)}`)}
${upstream('rogue', rogueUrl, `caCerts: ${rel(ca.certPath)}, ${clientTls}`)}
${upstream('rogue-unverified', rogueUrl, 'insecureSkipVerify: true')}
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: tls }
spec:
  gateway: edge
  upstream: with-cert
  rules:
    - { path: /with-cert, authenticate: [{ noAuth: {} }] }
    - { path: /by-name, upstream: by-name, authenticate: [{ noAuth: {} }] }
    - { path: /wrong-name, upstream: wrong-name, authenticate: [{ noAuth: {} }] }
    - { path: /without-cert, upstream: without-cert, authenticate: [{ noAuth: {} }] }
    - { path: /rogue, upstream: rogue, authenticate: [{ noAuth: {} }] }
    - { path: /rogue-unverified, upstream: rogue-unverified, authenticate: [{ noAuth: {} }] }
`,
    );
    gateway = await startGateway([join(dir, 'gateway.yaml')]);
  });

  after(async () => {
    await gateway?.stop();
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test('mTLS to the target: with the client certificate 200, without it refused', async () => {
    const ok = await httpRequest(port, '/with-cert');
    assert.equal(ok.status, 200, ok.body);
    assert.equal(ok.json().client, 'gatehouse-edge');
    const byName = await httpRequest(port, '/by-name');
    assert.equal(byName.status, 200, byName.body);
    const without = await httpRequest(port, '/without-cert');
    assert.ok([502, 503].includes(without.status), `${without.status} ${without.body}`);
    assert.deepEqual(new Set(seenClients), new Set(['gatehouse-edge']));
  });

  test('verification is on: an untrusted CA or a name the certificate lacks is refused', async () => {
    const rogue = await httpRequest(port, '/rogue');
    assert.equal(rogue.status, 503, rogue.body);
    assert.equal(rogue.json().code, 'upstream_unavailable');
    assert.equal(rogueHits, 0, 'no request reached the untrusted target');
    const wrongName = await httpRequest(port, '/wrong-name');
    assert.equal(wrongName.status, 503, wrongName.body);
    // insecureSkipVerify turns verification off (tests only).
    const unverified = await httpRequest(port, '/rogue-unverified');
    assert.equal(unverified.status, 200);
    assert.equal(rogueHits, 1);
  });

  test('TLS files are read when the config loads; a missing one is an error at its field', async () => {
    const bad = tempConfigDir();
    writeConfig(
      bad,
      'bad.yaml',
      `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, port: 8080 }]
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: secure }
spec:
  targets: [{ url: "https://127.0.0.1:9" }, { url: "https://127.0.0.2:9/other" }]
  loadBalancer: { algorithm: consistent-hash }
  tls:
    caCerts: certs/missing-ca.pem
    clientCert: { cert: certs/client.pem, key: certs/client-key.pem }
`,
    );
    const proc = runCli(['validate', bad]);
    const { code } = await proc.exited;
    assert.equal(code, 1);
    const stderr = proc.stderr();
    assert.match(stderr, /bad\.yaml:14:\d+: spec\.tls\.caCerts: cannot read .*missing-ca\.pem: ENOENT/);
    assert.match(stderr, /spec\.tls\.clientCert\.cert: cannot read/);
    assert.match(stderr, /spec\.targets\[1\]\.url: every target must have the same path/);
    assert.match(stderr, /spec\.loadBalancer\.hashOn: required with algorithm consistent-hash/);
  });
});
