// The egress gateway over real processes: named routes to an https "external" API with the
// credentials the gateway holds (an API key from the environment, an OAuth client-credentials
// token from a real OpenID provider), and the forward proxy (absolute-form and CONNECT) with its
// allow-list and its refusal of non-public addresses. Every "external" server is on loopback, and
// no test sends traffic anywhere else: refused addresses are refused before any connection.

import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import { ProxyAgent, request as undiciRequest } from 'undici';
import { hashApiKey } from '../src/identity/consumers.ts';
import { makeCA, type Pem, tmpDir } from './helpers/certs.ts';
import { httpRequest, parseRaw, rawRequest } from './helpers/http.ts';
import { startTestIdp, type TestIdp } from './helpers/idp.ts';
import {
  freePort,
  type RunningProcess,
  repoRoot,
  runCli,
  startGateway,
  tempConfigDir,
  writeConfig,
} from './helpers/process.ts';
import { type EchoUpstream, type SeenRequest, startEchoUpstream } from './helpers/upstream.ts';

const egressKey = 'billing-egress-demo-key'; // the example Consumer's key (examples/egress/README.md)
const stripeKey = 'sk_test_gatehouse_example';

interface HttpsEcho {
  port: number;
  requests: SeenRequest[];
  close(): Promise<void>;
}

/** An "external API": https on 127.0.0.1 with a certificate for localhost, answering what it saw. */
async function startHttpsEcho(pem: Pem): Promise<HttpsEcho> {
  const requests: SeenRequest[] = [];
  const server: HttpsServer = createHttpsServer({ cert: pem.cert, key: pem.key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks),
      };
      requests.push(seen);
      const body = JSON.stringify({ url: seen.url, headers: seen.headers });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Replaces `from` with `to` in the example, failing loudly when the example no longer has it. */
function rewrite(yaml: string, from: string, to: string): string {
  assert.notEqual(yaml.indexOf(from), -1, `the example still has ${JSON.stringify(from)}`);
  return yaml.replace(from, to);
}

/** An absolute-form request written by hand, as an HTTP proxy client sends it. */
async function proxied(gateway: number, url: string, headers: Record<string, string> = {}) {
  const host = new URL(url).host;
  let head = `GET ${url} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  const raw = parseRaw(await rawRequest(gateway, `${head}\r\n`));
  return { ...raw, json: () => JSON.parse(raw.body) as Record<string, unknown> };
}

/** A CONNECT the gateway refuses: its answer, read until it closes the connection. */
async function refusedConnect(gateway: number, target: string, headers: Record<string, string> = {}) {
  let head = `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  const raw = parseRaw(await rawRequest(gateway, `${head}\r\n`));
  return { ...raw, json: () => JSON.parse(raw.body) as Record<string, unknown> };
}

async function metrics(admin: number): Promise<string> {
  return (await httpRequest(admin, '/metrics')).body;
}

let certDir: string;
let server: Pem;
let caPath: string;
let external: HttpsEcho;
let plainExternal: EchoUpstream;
let idp: TestIdp;
const tokenHits = () => idp.hits.get('/token') ?? 0;

before(async () => {
  certDir = tmpDir('gatehouse-egress-certs-');
  const ca = makeCA(certDir, 'Gatehouse Egress Test Root');
  caPath = ca.certPath;
  server = ca.issue({ cn: 'localhost', dns: ['localhost'], ips: ['127.0.0.1'] });
  external = await startHttpsEcho(server);
  plainExternal = await startEchoUpstream();
  idp = await startTestIdp();
});
after(async () => {
  await external?.close();
  await plainExternal?.close();
  await idp?.close();
  rmSync(certDir, { recursive: true, force: true });
});

test('examples/egress validates', async () => {
  const proc = runCli(['validate', join(repoRoot, 'examples/egress')]);
  assert.equal((await proc.exited).code, 0, proc.stderr());
});

describe('examples/egress: named routes and the forward proxy', () => {
  let gw: RunningProcess;
  let port: number;
  let admin: number;
  let closed: number;

  before(async () => {
    port = await freePort();
    admin = await freePort();
    closed = await freePort();
    let yaml = readFileSync(join(repoRoot, 'examples/egress/gateway.yaml'), 'utf8');
    yaml = rewrite(yaml, 'port: 8080', `port: ${port}, address: 127.0.0.1`);
    yaml = rewrite(yaml, 'port: 9901', `port: ${admin}`);
    // The "internet" of this test is loopback: allowed on purpose, and only here.
    yaml = rewrite(
      yaml,
      '    allow:                           # host:port; no port = 80 and 443; *.x = any name under x\n',
      `    allowAddresses: [127.0.0.1/32]\n    allow:\n      - localhost:${external.port}\n      - localhost:${plainExternal.port}\n      - localhost:${closed}\n`,
    );
    const tls = `\n  tls: { caCerts: ${caPath} }`;
    yaml = rewrite(
      yaml,
      'targets: [{ url: https://api.stripe.com }]',
      `targets: [{ url: https://localhost:${external.port} }]${tls}`,
    );
    yaml = rewrite(
      yaml,
      'tokenUrl: https://auth.partner.example/oauth/token',
      `tokenUrl: ${idp.issuer}/token`,
    );
    yaml = rewrite(yaml, 'clientId: gatehouse-egress', `clientId: ${idp.clients.app.id}`);
    yaml = rewrite(yaml, 'resource: https://api.partner.example', `resource: ${idp.jwtResource}`);
    yaml = rewrite(
      yaml,
      'targets: [{ url: https://api.partner.example }]',
      `targets: [{ url: https://localhost:${external.port} }]${tls}`,
    );
    const dir = tempConfigDir();
    writeConfig(dir, 'gateway.yaml', yaml);
    gw = await startGateway([dir], [], {
      STRIPE_API_KEY: stripeKey,
      PARTNER_CLIENT_SECRET: idp.clients.app.secret,
    });
  });
  after(async () => {
    await gw?.stop();
  });

  test('named route: the API key from the environment goes upstream over verified TLS, not the caller’s', async () => {
    const before = external.requests.length;
    const res = await httpRequest(port, '/stripe/v1/charges?limit=3', {
      host: 'egress-gw',
      headers: { 'x-egress-key': egressKey, authorization: 'Bearer internal-token' },
    });
    assert.equal(res.status, 200, res.body);
    const seen = external.requests.slice(before);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.url, '/v1/charges?limit=3');
    assert.equal(seen[0]!.headers.authorization, `Bearer ${stripeKey}`);
    assert.equal(seen[0]!.headers['x-egress-key'], undefined, 'the internal credential stays inside');
    assert.equal(seen[0]!.headers.host, `localhost:${external.port}`);
  });

  test('named route without the internal credential: 401, nothing sent', async () => {
    const before = external.requests.length;
    const res = await httpRequest(port, '/stripe/v1/charges', { host: 'egress-gw' });
    assert.equal(res.status, 401);
    assert.equal(external.requests.length, before);
  });

  test('client credentials: one token for many requests, as Bearer, the caller’s Authorization gone', async () => {
    const hitsBefore = tokenHits();
    const before = external.requests.length;
    for (let i = 0; i < 3; i++) {
      const res = await httpRequest(port, `/partner/orders/${i}`, {
        headers: { 'x-egress-key': egressKey, authorization: 'Bearer internal-token' },
      });
      assert.equal(res.status, 200, res.body);
    }
    assert.equal(tokenHits() - hitsBefore, 1, 'the token endpoint was asked once');
    const seen = external.requests.slice(before);
    assert.deepEqual(
      seen.map((r) => r.url),
      ['/orders/0', '/orders/1', '/orders/2'],
    );
    const tokens = new Set(seen.map((r) => r.headers.authorization));
    assert.equal(tokens.size, 1, 'the same token every time');
    const authorization = String([...tokens][0]);
    assert.match(authorization, /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    const claims = decodeJwt(authorization.slice(7));
    assert.equal(claims.iss, idp.issuer);
    assert.equal(claims.aud, idp.jwtResource);
    assert.equal(claims.client_id, idp.clients.app.id);
  });

  test('while the token endpoint is down, the cached token keeps serving', async () => {
    const hitsBefore = tokenHits();
    idp.setDown(true);
    try {
      const res = await httpRequest(port, '/partner/still-cached', {
        headers: { 'x-egress-key': egressKey },
      });
      assert.equal(res.status, 200, res.body);
    } finally {
      idp.setDown(false);
    }
    assert.equal(tokenHits(), hitsBefore);
  });

  test('forward proxy, absolute-form: forwarded with Via and X-Forwarded-For, hop-by-hop and the proxy credential stripped', async () => {
    const before = plainExternal.requests.length;
    const res = await proxied(port, `http://localhost:${plainExternal.port}/hello?x=1`, {
      'X-Egress-Key': egressKey,
      'Proxy-Connection': 'keep-alive',
      'Proxy-Authorization': 'Basic c2VjcmV0',
      Connection: 'close, X-Hop',
      'X-Hop': 'dropped',
      'X-Kept': 'yes',
    });
    assert.equal(res.status, 200, res.body);
    assert.match(res.head, /\r\nvia: 1\.1 gatehouse\r\n/i);
    const seen = plainExternal.requests.slice(before);
    assert.equal(seen.length, 1);
    const { url, headers } = seen[0]!;
    assert.equal(url, '/hello?x=1');
    assert.equal(headers.host, `localhost:${plainExternal.port}`);
    assert.equal(headers.via, '1.1 gatehouse');
    assert.equal(headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(headers['x-kept'], 'yes');
    for (const name of ['x-egress-key', 'proxy-connection', 'proxy-authorization', 'x-hop'])
      assert.equal(headers[name], undefined, `${name} is not forwarded`);
  });

  test('forward proxy, CONNECT: a tunnel to the allowed host, TLS end to end', async () => {
    const before = external.requests.length;
    const agent = new ProxyAgent({
      uri: `http://127.0.0.1:${port}`,
      headers: { 'x-egress-key': egressKey },
      requestTls: { ca: readFileSync(caPath, 'utf8') },
    });
    try {
      const res = await undiciRequest(`https://localhost:${external.port}/through/the/tunnel`, {
        dispatcher: agent,
      });
      assert.equal(res.statusCode, 200);
      await res.body.text();
    } finally {
      await agent.close();
    }
    const seen = external.requests.slice(before);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.url, '/through/the/tunnel');
    assert.equal(seen[0]!.headers['x-egress-key'], undefined, 'CONNECT headers stay with the proxy');
    // One access-log line per tunnel, written when it closes.
    const line = JSON.parse(await gw.waitFor(/"route":"forward-proxy","method":"CONNECT".*"status":200/));
    assert.equal(line.host, `localhost:${external.port}`);
    assert.ok(line.bytesIn > 0 && line.bytesOut > 0);
  });

  test('forward proxy: not on the allow-list → 403 egress_denied, by either form', async () => {
    const absolute = await proxied(port, 'http://example.com/', { 'X-Egress-Key': egressKey });
    assert.equal(absolute.status, 403);
    assert.equal(absolute.json().code, 'egress_denied');
    assert.match(absolute.head, /content-type: application\/problem\+json/);
    const tunnel = await refusedConnect(port, 'example.com:443', { 'X-Egress-Key': egressKey });
    assert.equal(tunnel.status, 403);
    assert.equal(tunnel.json().code, 'egress_denied');
    // Another port of an allowed host is another destination.
    const otherPort = await refusedConnect(port, `localhost:${plainExternal.port + 1}`, {
      'X-Egress-Key': egressKey,
    });
    assert.equal(otherPort.status, 403);
  });

  test('forward proxy: an allowed destination that does not answer → 503, by either form', async () => {
    const tunnel = await refusedConnect(port, `localhost:${closed}`, { 'X-Egress-Key': egressKey });
    assert.equal(tunnel.status, 503);
    assert.equal(tunnel.json().code, 'upstream_unavailable');
    const absolute = await proxied(port, `http://localhost:${closed}/`, { 'X-Egress-Key': egressKey });
    assert.equal(absolute.status, 503);
    assert.equal(absolute.json().code, 'upstream_unavailable');
  });

  test('forward proxy: callers authenticate (401 without the key), https:// absolute-form is refused', async () => {
    const tunnel = await refusedConnect(port, `localhost:${external.port}`);
    assert.equal(tunnel.status, 401);
    assert.equal(tunnel.json().code, 'unauthenticated');
    const absolute = await proxied(port, `http://localhost:${plainExternal.port}/`);
    assert.equal(absolute.status, 401);
    const https = await proxied(port, `https://localhost:${external.port}/`, { 'X-Egress-Key': egressKey });
    assert.equal(https.status, 400);
    assert.equal(https.json().code, 'bad_target');
  });

  test('gatehouse_egress_requests_total counts by allow-listed destination and result', async () => {
    const text = await metrics(admin);
    const count = (destination: string, result: string) =>
      Number(
        new RegExp(
          `gatehouse_egress_requests_total\\{destination="${destination}",result="${result}"\\} (\\d+)`,
        ).exec(text)?.[1] ?? 0,
      );
    assert.ok(count(`localhost:${plainExternal.port}`, 'forwarded') >= 1, text);
    assert.ok(count(`localhost:${external.port}`, 'forwarded') >= 1, text);
    assert.ok(count('other', 'denied') >= 2, text);
    assert.ok(count(`localhost:${external.port}`, 'rejected') >= 1, text);
    assert.doesNotMatch(text, /destination="example\.com/, 'only allow-listed destinations are labels');
  });
});

describe('forward proxy without allowAddresses: non-public destinations are refused', () => {
  let gw: RunningProcess;
  let port: number;

  before(async () => {
    port = await freePort();
    const dir = tempConfigDir();
    const config = writeConfig(
      dir,
      'gateway.yaml',
      `
apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: strict }
spec:
  mode: egress
  listeners: [{ name: internal, address: 127.0.0.1, port: ${port} }]
  forwardProxy:
    enabled: true
    allow: [localhost:${external.port}, localhost:${plainExternal.port}, 10.0.0.1:80, 169.254.169.254:80, "[fd00:ec2::254]:80", 127.0.0.1:${plainExternal.port}, 10.0.0.2:80, 10.0.0.3:80]
    authenticate: [{ noAuth: {} }]
    rateLimit: [{ limit: 2, window: 60s, key: "path:destination", name: per-destination }]
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: partner }
spec: { targets: [{ url: https://localhost:${external.port} }], tls: { caCerts: ${caPath} } }
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: no-ca }
spec: { targets: [{ url: https://localhost:${external.port} }] }
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: partner }
spec:
  gateway: strict
  upstream: partner
  rules:
    - path: /no-ca
      upstream: no-ca
      authenticate: [{ noAuth: {} }]
    - path: /partner-write/{**}
      authenticate: [{ noAuth: {} }]
      mutate:
        clientCredentials:
          tokenUrl: ${idp.issuer}/token
          clientId: ${idp.clients.app.id}
          clientSecret: { env: PARTNER_CLIENT_SECRET }
          scope: write
          resource: ${idp.jwtResource}
`,
    );
    gw = await startGateway([config], [], { PARTNER_CLIENT_SECRET: idp.clients.app.secret });
  });
  after(async () => {
    await gw?.stop();
  });

  test('a name that resolves to 127.0.0.1 → 403, by CONNECT and by absolute-form', async () => {
    const tunnel = await refusedConnect(port, `localhost:${external.port}`);
    assert.equal(tunnel.status, 403);
    assert.equal(tunnel.json().code, 'egress_denied');
    assert.equal(tunnel.json().detail, 'destination resolves to a loopback address');
    const before = plainExternal.requests.length;
    const absolute = await proxied(port, `http://localhost:${plainExternal.port}/`);
    assert.equal(absolute.status, 403);
    const literal = await proxied(port, `http://127.0.0.1:${plainExternal.port}/`);
    assert.equal(literal.status, 403);
    assert.equal(plainExternal.requests.length, before, 'nothing reached the server');
  });

  test('private and metadata addresses → 403 before any connection', async () => {
    // Allow-listed on purpose: the address check alone refuses them, with no connection attempted
    // (a connection to 10.0.0.1 would hang until the connect timeout, far past the answer).
    const cases: Array<[string, string]> = [
      ['http://10.0.0.1/', 'private'],
      ['http://169.254.169.254/latest/meta-data/', 'metadata'],
      ['http://[fd00:ec2::254]/latest/meta-data/', 'metadata'],
    ];
    for (const [url, kind] of cases) {
      const res = await proxied(port, url);
      assert.equal(res.status, 403, url);
      assert.equal(res.json().code, 'egress_denied');
      assert.equal(res.json().detail, `destination resolves to a ${kind} address`);
    }
    for (const target of ['10.0.0.1:80', '169.254.169.254:80']) {
      const res = await refusedConnect(port, target);
      assert.equal(res.status, 403, target);
      assert.equal(res.json().code, 'egress_denied');
    }
    assert.equal(gw.logs().filter((l) => l.msg === 'forward proxy call failed').length, 0);
  });

  test('named routes verify TLS: a certificate from a CA the upstream does not trust is refused', async () => {
    const before = external.requests.length;
    const res = await httpRequest(port, '/no-ca');
    // How a failed handshake is reported (502 or 503) is the forwarder's call; it is never forwarded.
    assert.ok(res.status === 502 || res.status === 503, `status ${res.status}`);
    assert.match(String(res.json().code), /^upstream_/);
    assert.equal(external.requests.length, before);
  });

  test('forwardProxy.rateLimit by path:destination counts each allow-listed destination apart', async () => {
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await proxied(port, 'http://10.0.0.2/')).status);
    assert.deepEqual(statuses, [403, 403, 429]);
    const limited = await refusedConnect(port, '10.0.0.2:80');
    assert.equal(limited.status, 429);
    assert.equal(limited.json().code, 'rate_limited');
    assert.match(limited.head, /\r\nretry-after: \d+/i);
    // Another destination has its own counter.
    assert.equal((await proxied(port, 'http://10.0.0.3/')).status, 403);
  });

  test('client credentials with the token endpoint down and no token cached → 503, then recovers', async () => {
    const hitsBefore = tokenHits();
    idp.setDown(true);
    let down: Awaited<ReturnType<typeof httpRequest>>;
    try {
      down = await httpRequest(port, '/partner-write/x');
    } finally {
      idp.setDown(false);
    }
    assert.equal(down.status, 503);
    assert.equal(down.json().code, 'upstream_credential_unavailable');
    assert.doesNotMatch(down.body, /secret|token endpoint/i);
    assert.equal(tokenHits() - hitsBefore, 1);
    // Failures are remembered for a second; then the next request fetches a token.
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = (await httpRequest(port, '/partner-write/x')).status;
    }
    assert.equal(status, 200);
  });
});

describe('an ingress gateway is no forward proxy', () => {
  let gw: RunningProcess;
  let port: number;

  before(async () => {
    port = await freePort();
    const dir = tempConfigDir();
    const config = writeConfig(
      dir,
      'gateway.yaml',
      `
apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, address: 127.0.0.1, port: ${port} }]
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: echo }
spec: { targets: [{ url: ${plainExternal.url} }] }
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: all }
spec:
  gateway: edge
  upstream: echo
  rules: [{ path: "/{**}", authenticate: [{ noAuth: {} }] }]
`,
    );
    gw = await startGateway([config]);
  });
  after(async () => {
    await gw?.stop();
  });

  test('absolute-form → 400 bad_target; CONNECT → 400 bad_target; nothing forwarded', async () => {
    const before = plainExternal.requests.length;
    const absolute = await proxied(port, `http://127.0.0.1:${plainExternal.port}/x`);
    assert.equal(absolute.status, 400);
    assert.equal(absolute.json().code, 'bad_target');
    const tunnel = await refusedConnect(port, `127.0.0.1:${plainExternal.port}`);
    assert.equal(tunnel.status, 400);
    assert.equal(tunnel.json().code, 'bad_target');
    assert.equal(plainExternal.requests.length, before);
    // Origin-form still works.
    assert.equal((await httpRequest(port, '/x')).status, 200);
  });

  test('forwardProxy on a non-egress gateway is a config error', async () => {
    const dir = tempConfigDir();
    writeConfig(
      dir,
      'gateway.yaml',
      `
apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, port: 8080 }]
  forwardProxy: { enabled: true, allow: [api.example.com:443], authenticate: [{ noAuth: {} }] }
`,
    );
    const proc = runCli(['validate', dir]);
    assert.equal((await proc.exited).code, 1);
    assert.match(proc.stderr() + proc.stdout(), /spec\.forwardProxy\.enabled.*mode: egress/);
  });

  test('an enabled forward proxy must say how callers authenticate', async () => {
    const dir = tempConfigDir();
    writeConfig(
      dir,
      'gateway.yaml',
      `
apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: egress }
spec:
  mode: egress
  listeners: [{ name: internal, port: 8080 }]
  forwardProxy: { enabled: true, allow: ["*.example.com"], allowAddresses: [10.0.0.0/99] }
`,
    );
    const proc = runCli(['validate', dir]);
    assert.equal((await proc.exited).code, 1);
    const out = proc.stderr() + proc.stdout();
    assert.match(out, /authenticate is required/);
    assert.match(out, /allowAddresses.*not a CIDR: 10\.0\.0\.0\/99/);
  });
});

test('the example’s demo key is the Consumer’s', () => {
  assert.match(
    readFileSync(join(repoRoot, 'examples/egress/gateway.yaml'), 'utf8'),
    new RegExp(hashApiKey(egressKey)),
  );
});
