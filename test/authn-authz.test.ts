// API keys, client certificates, anonymous access and the authorize stage end to end: a real
// `gatehouse gateway` process on loopback with an http and an mTLS listener, Consumers with
// hashed keys, certificates made by the test, a real OpenID provider for a JWT case.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeCA, type Pem, tmpDir } from './helpers/certs.ts';
import { httpRequest, type SimpleResponse } from './helpers/http.ts';
import { startTestIdp, type TestIdp } from './helpers/idp.ts';
import {
  cliPath,
  freePort,
  type RunningProcess,
  runCli,
  startGateway,
  writeConfig,
} from './helpers/process.ts';
import { type EchoUpstream, startEchoUpstream } from './helpers/upstream.ts';

const sha256 = (key: string) => createHash('sha256').update(key).digest('hex');
const newKey = () => randomBytes(24).toString('base64url');
const keys = { partnerA: newKey(), partnerB: newKey(), ops: newKey(), suspended: newKey() };

let dir: string;
let upstream: EchoUpstream;
let idp: TestIdp;
let gateway: RunningProcess;
let httpPort: number;
let httpsPort: number;
let ca: Pem;
let server: Pem;
const clients: Record<'orders' | 'billing' | 'legacy', Pem> = {} as never;

function gatewayConfig(): string {
  const rel = (p: string) => JSON.stringify(relative(dir, p));
  return `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners:
    - { name: public, address: 127.0.0.1, port: ${httpPort} }
    - name: secure
      address: 127.0.0.1
      port: ${httpsPort}
      protocol: https
      tls:
        certificates: [{ cert: ${rel(server.certPath)}, key: ${rel(server.keyPath)} }]
        clientAuth: { mode: optional, caCerts: ${rel(ca.certPath)} }
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: echo }
spec: { targets: [{ url: ${upstream.url} }] }
---
apiVersion: gatehouse.dev/v1
kind: IdentityProvider
metadata: { name: corp }
spec:
  issuer: ${idp.issuer}
  audiences: [${idp.jwtResource}]
  algorithms: [ES256]
---
apiVersion: gatehouse.dev/v1
kind: Consumer
metadata: { name: partner-a }
spec:
  apiKeys: [{ sha256: ${sha256(keys.partnerA)}, name: main }]
  groups: [partners]
  metadata: { tenant: acme }
---
apiVersion: gatehouse.dev/v1
kind: Consumer
metadata: { name: partner-b }
spec:
  apiKeys: [{ sha256: ${sha256(keys.partnerB)}, name: main }]
  groups: [partners]
  metadata: { tenant: globex }
---
apiVersion: gatehouse.dev/v1
kind: Consumer
metadata: { name: ops }
spec:
  apiKeys: [{ sha256: ${sha256(keys.ops)}, name: laptop }]
  groups: [admins]
---
apiVersion: gatehouse.dev/v1
kind: Consumer
metadata: { name: ops-suspended }
spec:
  apiKeys: [{ sha256: ${sha256(keys.suspended)}, name: laptop }]
  groups: [admins]
  metadata: { status: suspended }
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: api }
spec:
  gateway: edge
  upstream: echo
  rules:
    - path: /tenants/{tenant}/items
      authenticate: [{ apiKey: {} }]
      authorize:
        groups: [partners]
        claims: [{ claim: tenant, equals: '{path.tenant}' }]
    - path: /by-query
      authenticate: [{ apiKey: { from: { query: api_key } } }]
    - path: /maybe-anonymous
      authenticate: [{ apiKey: {} }, { anonymous: {} }]
    - path: /admin
      authenticate: [{ apiKey: {} }]
      authorize:
        allow: [{ group: admins }]
        deny: [{ claim: status, equals: suspended }]
    - path: /service/{**}
      authenticate: [{ mtls: {} }]
      authorize:
        certificates: [{ spiffeId: 'spiffe://corp.test/ns/*/sa/orders' }]
    - path: /whoever
      authenticate: [{ mtls: {} }, { apiKey: {} }]
    - path: /public-but-authorized
      authenticate: [{ noAuth: {} }]
      authorize: { allow: [{ group: admins }] }
    - path: /scoped
      authenticate: [{ jwt: { provider: corp } }]
      authorize:
        requiredScopes: [orders.write]
        audiences: [${idp.jwtResource}]
        claims: [{ claim: client_id, equals: app }]
`;
}

before(async () => {
  dir = tmpDir('gatehouse-authn-');
  const certs = join(dir, 'certs');
  mkdirSync(certs);
  const root = makeCA(certs, 'Authn Test Root');
  ca = root;
  server = root.issue({ cn: 'server.test', dns: ['server.test'], ips: ['127.0.0.1'] });
  clients.orders = root.issue({ cn: 'orders', client: true, uris: ['spiffe://corp.test/ns/shop/sa/orders'] });
  clients.billing = root.issue({
    cn: 'billing',
    client: true,
    uris: ['spiffe://corp.test/ns/shop/sa/billing'],
  });
  clients.legacy = root.issue({ cn: 'legacy-client', client: true });
  upstream = await startEchoUpstream();
  idp = await startTestIdp();
  httpPort = await freePort();
  httpsPort = await freePort();
  const config = writeConfig(dir, 'gateway.yaml', gatewayConfig());
  gateway = await startGateway([config], ['--no-watch']);
});

after(async () => {
  await gateway?.stop();
  await upstream?.close();
  await idp?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function get(path: string, headers: Record<string, string> = {}): Promise<SimpleResponse> {
  return httpRequest(httpPort, path, { headers });
}

/** One GET over a fresh TLS connection, with or without a client certificate. */
function getTls(
  path: string,
  client?: Pem,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1',
      port: httpsPort,
      path,
      servername: '',
      ca: ca.cert,
      ...(client ? { cert: client.cert, key: client.key } : {}),
      headers: { connection: 'close' },
      agent: false,
      timeout: 15_000,
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** What the echo upstream received, from its answer. */
function seen(res: SimpleResponse): { url: string; headers: Record<string, string> } {
  assert.equal(res.status, 200, res.body);
  return res.json();
}

function problemCode(res: { status: number; body: string }): string {
  return (JSON.parse(res.body) as { code: string }).code;
}

describe('API keys', () => {
  test('a known key identifies the consumer, and is not forwarded upstream', async () => {
    const res = await get('/tenants/acme/items', { 'x-api-key': keys.partnerA, 'x-keep': 'yes' });
    const received = seen(res);
    assert.equal(received.headers['x-api-key'], undefined);
    assert.equal(received.headers['x-keep'], 'yes');
  });

  test('no key: 401 unauthenticated; unknown key: 401 invalid_api_key with a challenge', async () => {
    const none = await get('/tenants/acme/items');
    assert.equal(none.status, 401);
    assert.equal(problemCode(none), 'unauthenticated');
    assert.equal(none.headers['www-authenticate'], 'ApiKey header="x-api-key"', 'the 401 says what to send');
    const unknown = await get('/tenants/acme/items', { 'x-api-key': 'not-a-known-key' });
    assert.equal(unknown.status, 401);
    assert.equal(problemCode(unknown), 'invalid_api_key');
    assert.equal(unknown.headers['www-authenticate'], 'ApiKey header="x-api-key"');
    assert.ok(!unknown.body.includes('not-a-known-key'), 'the key is never echoed');
  });

  test('a key in the query is removed from the query sent upstream', async () => {
    const res = await get(`/by-query?x=1&api_key=${encodeURIComponent(keys.partnerB)}&y=%2F`);
    assert.equal(seen(res).url, '/by-query?x=1&y=%2F');
    const bad = await get('/by-query?api_key=nope');
    assert.equal(bad.status, 401);
    assert.equal(bad.headers['www-authenticate'], 'ApiKey query="api_key"');
  });
});

describe('anonymous', () => {
  test('no credential: through as anonymous; a valid key still identifies', async () => {
    assert.equal((await get('/maybe-anonymous')).status, 200);
    assert.equal((await get('/maybe-anonymous', { 'x-api-key': keys.ops })).status, 200);
  });

  test('an invalid credential is refused, not treated as none', async () => {
    const bad = await get('/maybe-anonymous', { 'x-api-key': 'wrong' });
    assert.equal(bad.status, 401);
    assert.equal(problemCode(bad), 'invalid_api_key');
    const bearer = await get('/maybe-anonymous', { authorization: 'Bearer something' });
    assert.equal(bearer.status, 401);
    assert.equal(problemCode(bearer), 'unauthenticated');
  });
});

describe('authorize', () => {
  test('groups and claims from consumer metadata against the path', async () => {
    assert.equal((await get('/tenants/globex/items', { 'x-api-key': keys.partnerB })).status, 200);
    const otherTenant = await get('/tenants/globex/items', { 'x-api-key': keys.partnerA });
    assert.equal(otherTenant.status, 403);
    assert.equal(problemCode(otherTenant), 'forbidden');
    const notPartner = await get('/tenants/acme/items', { 'x-api-key': keys.ops });
    assert.equal(notPartner.status, 403);
  });

  test('deny wins over allow; no matching allow is a deny', async () => {
    assert.equal((await get('/admin', { 'x-api-key': keys.ops })).status, 200);
    const suspended = await get('/admin', { 'x-api-key': keys.suspended });
    assert.equal(suspended.status, 403);
    assert.match((JSON.parse(suspended.body) as { detail: string }).detail, /deny/);
    const partner = await get('/admin', { 'x-api-key': keys.partnerA });
    assert.equal(partner.status, 403);
    assert.match((JSON.parse(partner.body) as { detail: string }).detail, /allow/);
  });

  test('a public route fails closed when it asks for authorization', async () => {
    const res = await get('/public-but-authorized', { 'x-api-key': keys.ops });
    assert.equal(res.status, 403);
  });

  test('JWT scopes, audience and claims; a missing scope is 403 insufficient_scope', async () => {
    const readOnly = await idp.token({ scope: 'orders.read' });
    const denied = await get('/scoped', { authorization: `Bearer ${readOnly}` });
    assert.equal(denied.status, 403, denied.body);
    assert.equal(problemCode(denied), 'insufficient_scope');
    assert.equal(
      denied.headers['www-authenticate'],
      'Bearer error="insufficient_scope", scope="orders.write"',
    );
    const readWrite = await idp.token({ scope: 'orders.read orders.write' });
    assert.equal((await get('/scoped', { authorization: `Bearer ${readWrite}` })).status, 200);
  });
});

describe('mtls', () => {
  test('the client certificate identifies the caller; certificates picks which ones pass', async () => {
    assert.equal((await getTls('/service/orders', clients.orders)).status, 200);
    const billing = await getTls('/service/orders', clients.billing);
    assert.equal(billing.status, 403);
    assert.equal(problemCode(billing), 'forbidden');
  });

  test('no certificate: the method steps aside', async () => {
    const tlsOnly = await getTls('/service/orders');
    assert.equal(tlsOnly.status, 401);
    assert.equal(problemCode(tlsOnly), 'unauthenticated');
    assert.equal((await get('/service/orders')).status, 401);
  });

  test('methods chain: a certificate (named by CN) or an API key', async () => {
    assert.equal((await getTls('/whoever', clients.legacy)).status, 200);
    assert.equal((await get('/whoever', { 'x-api-key': keys.partnerA })).status, 200);
    assert.equal((await getTls('/whoever')).status, 401);
  });
});

describe('secrets stay out of logs', () => {
  test('no API key appears in the gateway output', () => {
    const output = gateway.stdout() + gateway.stderr();
    for (const key of Object.values(keys)) assert.ok(!output.includes(key));
  });
});

describe('configuration errors', () => {
  test('duplicate key hashes, misplaced anonymous and bad conditions are compile errors', async () => {
    const configDir = tmpDir('gatehouse-authn-bad-');
    try {
      const hash = sha256('shared');
      writeConfig(
        configDir,
        'bad.yaml',
        `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec: { listeners: [{ name: public, port: 8080 }] }
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: echo }
spec: { targets: [{ url: http://127.0.0.1:1 }] }
---
apiVersion: gatehouse.dev/v1
kind: Consumer
metadata: { name: first }
spec: { apiKeys: [{ sha256: ${hash}, name: a }] }
---
apiVersion: gatehouse.dev/v1
kind: Consumer
metadata: { name: second }
spec: { apiKeys: [{ sha256: ${hash.toUpperCase()}, name: b }] }
---
apiVersion: gatehouse.dev/v1
kind: Consumer
metadata: { name: elsewhere, namespace: other }
spec: { apiKeys: [{ sha256: ${hash}, name: c }] }
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: api }
spec:
  gateway: edge
  upstream: echo
  rules:
    - path: /a
      authenticate: [{ anonymous: {} }, { apiKey: {} }]
    - path: /b
      authenticate: [{ apiKey: {} }]
      authorize: { claims: [{ claim: tenant, equals: '{paths.tenant}' }] }
    - path: /c
      authenticate: [{ apiKey: {} }]
      authorize: { deny: [{ claim: tenant, pattern: '(' }] }
`,
      );
      const proc = runCli(['validate', configDir]);
      const { code } = await proc.exited;
      const errors = proc.stderr();
      assert.equal(code, 1, errors);
      assert.match(
        errors,
        /bad\.yaml:\d+:\d+: spec\.apiKeys\[0\]\.sha256: .*Consumer default\/second .*Consumer default\/first/,
      );
      assert.doesNotMatch(errors, /Consumer other\//, 'namespaces do not share keys');
      assert.match(errors, /anonymous must be the last entry of authenticate/);
      assert.match(errors, /\{paths\.tenant\}/);
      assert.match(errors, /not a valid regular expression/);
      assert.match(errors, /4 problem\(s\) found/);
    } finally {
      rmSync(configDir, { recursive: true, force: true });
    }
  });
});

describe('gatehouse hash-key', () => {
  function hashKey(args: string[], input: string): Promise<{ code: number | null; stdout: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [cliPath, 'hash-key', ...args], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        stdout += d;
      });
      child.on('error', reject);
      child.on('exit', (code) => resolve({ code, stdout }));
      child.stdin.end(input);
    });
  }

  test('prints the sha256 of the key on stdin (without its trailing newline)', async () => {
    const out = await hashKey([], 'my-secret-key\n');
    assert.equal(out.code, 0);
    assert.equal(out.stdout, `${sha256('my-secret-key')}\n`);
    assert.equal((await hashKey([], '')).code, 2);
  });

  test('--generate prints a new key once, with its sha256', async () => {
    const out = await hashKey(['--generate'], '');
    assert.equal(out.code, 0);
    const match = /^key: (\S+)\nsha256: ([0-9a-f]{64})\n$/.exec(out.stdout);
    assert.ok(match, out.stdout);
    assert.ok(match[1]!.length >= 40);
    assert.equal(match[2], sha256(match[1]!));
  });
});
