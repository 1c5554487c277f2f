// The `request` stage on a real gateway process: IP allow/deny by CIDR behind trustedProxies, CORS
// (preflights answered by the gateway, headers on every answer, credentials rules) and the per-rule
// body size limit.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { httpRequest, parseRaw, rawRequest } from './helpers/http.ts';
import {
  freePort,
  type RunningProcess,
  runCli,
  startGateway,
  tempConfigDir,
  writeConfig,
} from './helpers/process.ts';
import { type EchoUpstream, startEchoUpstream } from './helpers/upstream.ts';

const apiKey = 'request-policies-test-key';
const sha256 = (key: string) => createHash('sha256').update(key).digest('hex');

let upstream: EchoUpstream;
/** Trusts 127.0.0.1 as a proxy: tests pose as other clients through X-Forwarded-For. */
let gateway: RunningProcess;
let port: number;
/** Trusts another address only: from 127.0.0.1, X-Forwarded-For must be ignored. */
let untrusting: RunningProcess;
let untrustingPort: number;

function gatewayConfig(port: number, upstreamUrl: string): string {
  return `
apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, address: 127.0.0.1, port: ${port} }]
  trustedProxies: [127.0.0.1/32]
  limits: { maxBodyBytes: 1000 }
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: echo }
spec: { targets: [{ url: ${upstreamUrl} }] }
---
apiVersion: gatehouse.dev/v1
kind: Consumer
metadata: { name: web }
spec:
  apiKeys: [{ sha256: ${sha256(apiKey)}, name: main }]
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: ip }
spec:
  gateway: edge
  upstream: echo
  rules:
    - path: /ip/deny
      methods: [GET]
      request: { ipDeny: [203.0.113.0/24, "2001:db8::/32"] }
      authenticate: [{ noAuth: {} }]
    - path: /ip/allow
      methods: [GET]
      request: { ipAllow: [198.51.100.0/24] }
      authenticate: [{ noAuth: {} }]
    - path: /ip/both
      methods: [GET]
      request: { ipAllow: [198.51.100.0/24], ipDeny: [198.51.100.7/32] }
      authenticate: [{ noAuth: {} }]
    - path: /ip/scoped
      methods: [GET]
      request: { ipAllow: [198.51.100.0/25] }
      authenticate: [{ noAuth: {} }]
---
apiVersion: gatehouse.dev/v1
kind: Policy
metadata: { name: office }
spec:
  targetRef: { kind: APIRule, name: ip, rule: 3 }
  request: { ipAllow: [198.51.100.0/24, 192.0.2.0/24] }
---
apiVersion: gatehouse.dev/v1
kind: Policy
metadata: { name: trial }
spec:
  targetRef: { kind: APIRule, name: ip, rule: 3 }
  mode: shadow
  request: { ipDeny: [198.51.100.64/26] }
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: web }
spec:
  gateway: edge
  upstream: echo
  rules:
    - path: /cors
      methods: [GET, PUT, DELETE]
      request:
        cors:
          allowOrigins: [https://app.example.com, "https://*.example.org"]
          allowMethods: [GET, PUT]
          allowHeaders: [Authorization, Content-Type, X-API-Key]
          exposeHeaders: [X-Request-Id]
          allowCredentials: true
          maxAge: 300s
      authenticate: [{ apiKey: {} }]
    - path: /items
      methods: [GET]
      request: { cors: { allowOrigins: [https://app.example.com] } }
      authenticate: [{ noAuth: {} }]
    - path: /items
      methods: [POST]
      maxBodyBytes: 10
      request: { cors: { allowOrigins: [https://admin.example.com] } }
      authenticate: [{ noAuth: {} }]
    - path: /open
      methods: [GET]
      request: { cors: { allowOrigins: ["*"] } }
      authenticate: [{ noAuth: {} }]
    - path: /plain
      methods: [GET]
      authenticate: [{ noAuth: {} }]
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: uploads }
spec:
  gateway: edge
  upstream: echo
  rules:
    - { path: /upload/small, methods: [POST], maxBodyBytes: 100, authenticate: [{ noAuth: {} }] }
    - { path: /upload/big, methods: [POST], maxBodyBytes: 5000, authenticate: [{ noAuth: {} }] }
    - { path: /upload/default, methods: [POST], authenticate: [{ noAuth: {} }] }
`;
}

function untrustingConfig(port: number, upstreamUrl: string): string {
  return `
apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, address: 127.0.0.1, port: ${port} }]
  trustedProxies: [192.0.2.1/32]
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: echo }
spec: { targets: [{ url: ${upstreamUrl} }] }
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: ip }
spec:
  gateway: edge
  upstream: echo
  rules:
    - { path: /local-only, methods: [GET], request: { ipAllow: [127.0.0.1/32] }, authenticate: [{ noAuth: {} }] }
    - { path: /no-local, methods: [GET], request: { ipDeny: [127.0.0.0/8] }, authenticate: [{ noAuth: {} }] }
`;
}

before(async () => {
  upstream = await startEchoUpstream((req, res) => {
    // An upstream that speaks CORS itself, too generously: the gateway's policy must win.
    if (req.url === '/items') {
      res.writeHead(200, {
        'access-control-allow-origin': '*',
        'access-control-allow-credentials': 'true',
        vary: 'Accept-Encoding',
        'content-type': 'text/plain',
      });
      res.end('items');
      return true;
    }
    return undefined;
  });
  port = await freePort();
  untrustingPort = await freePort();
  const dir = tempConfigDir();
  writeConfig(dir, 'gateway.yaml', gatewayConfig(port, upstream.url));
  const otherDir = tempConfigDir();
  writeConfig(otherDir, 'gateway.yaml', untrustingConfig(untrustingPort, upstream.url));
  [gateway, untrusting] = await Promise.all([
    startGateway([dir], ['--no-watch']),
    startGateway([otherDir], ['--no-watch']),
  ]);
});

after(async () => {
  await Promise.all([gateway?.stop(), untrusting?.stop()]);
  await upstream?.close();
});

/** A GET posing as `client` behind the trusted proxy 127.0.0.1 (no header: the peer itself). */
function from(path: string, forwardedFor?: string, p = port) {
  return httpRequest(p, path, { headers: forwardedFor ? { 'x-forwarded-for': forwardedFor } : {} });
}

async function expectRefused(path: string, forwardedFor: string | undefined, detail: RegExp, p = port) {
  const before = upstream.requests.length;
  const res = await from(path, forwardedFor, p);
  assert.equal(res.status, 403, `${path} from ${forwardedFor}`);
  assert.equal(res.json().code, 'ip_not_allowed');
  assert.match(String(res.json().detail), detail);
  assert.equal(upstream.requests.length, before, 'a refused request is not forwarded');
}

describe('IP allow and deny lists', () => {
  test('ipDeny refuses the client address behind the trusted proxy, whatever else is in X-Forwarded-For', async () => {
    await expectRefused('/ip/deny', '203.0.113.9', /denied range/);
    await expectRefused('/ip/deny', '2001:db8::5', /denied range/);
    // Hops the trusted proxy (127.0.0.1) added are skipped: the first untrusted hop is the client.
    await expectRefused('/ip/deny', '203.0.113.9, 127.0.0.1', /denied range/);
    assert.equal((await from('/ip/deny', '198.51.100.1')).status, 200);
    assert.equal((await from('/ip/deny')).status, 200, 'the peer itself, 127.0.0.1, is not denied');
    // What a client wrote in front of the hop its proxy added cannot frame someone else.
    assert.equal((await from('/ip/deny', '203.0.113.9, 198.51.100.1')).status, 200);
  });

  test('ipAllow lets only addresses in its ranges through', async () => {
    assert.equal((await from('/ip/allow', '198.51.100.9')).status, 200);
    await expectRefused('/ip/allow', undefined, /none of the allowed ranges/);
    await expectRefused('/ip/allow', '192.0.2.1', /none of the allowed ranges/);
    await expectRefused('/ip/allow', 'unknown', /not an IP address/);
  });

  test('a denied range wins over an allowed one', async () => {
    await expectRefused('/ip/both', '198.51.100.7', /denied range/);
    assert.equal((await from('/ip/both', '198.51.100.8')).status, 200);
  });

  test('ipAllow of a Policy and of the rule must both hold; a shadow ipDeny only records', async () => {
    assert.equal((await from('/ip/scoped', '198.51.100.5')).status, 200);
    await expectRefused('/ip/scoped', '198.51.100.200', /none of the allowed ranges/); // the rule’s /25
    await expectRefused('/ip/scoped', '192.0.2.1', /none of the allowed ranges/); // the Policy’s only
    const res = await from('/ip/scoped', '198.51.100.70');
    assert.equal(res.status, 200, 'shadow mode does not refuse');
    const requestId = res.headers['x-request-id'];
    await gateway.waitFor(/"msg":"shadow deny"/, 15_000);
    const line = gateway.logs().find((l) => l.msg === 'shadow deny' && l.requestId === requestId);
    assert.ok(line, 'a shadow deny line for the request');
    assert.equal(line.policy, 'default/trial');
    assert.equal(line.code, 'ip_not_allowed');
  });

  test('from a peer that is not a trusted proxy, X-Forwarded-For is ignored', async () => {
    // The peer is 127.0.0.1; this gateway trusts only 192.0.2.1.
    assert.equal((await from('/local-only', '198.51.100.9', untrustingPort)).status, 200);
    await expectRefused('/no-local', '198.51.100.9', /denied range/, untrustingPort);
  });
});

function preflight(path: string, origin: string, method: string, requestHeaders?: string) {
  return httpRequest(port, path, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': method,
      ...(requestHeaders ? { 'access-control-request-headers': requestHeaders } : {}),
    },
  });
}

describe('CORS', () => {
  test('a preflight is answered 204 by the gateway, before authentication, and never forwarded', async () => {
    const before = upstream.requests.length;
    // The rule leaves OPTIONS out and requires an API key the preflight does not carry.
    const res = await preflight('/cors', 'https://app.example.com', 'PUT', 'content-type, x-api-key');
    assert.equal(res.status, 204);
    assert.equal(res.body, '');
    assert.equal(res.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.equal(res.headers['access-control-allow-credentials'], 'true');
    assert.equal(res.headers['access-control-allow-methods'], 'GET, PUT');
    assert.equal(res.headers['access-control-allow-headers'], 'Authorization, Content-Type, X-API-Key');
    assert.equal(res.headers['access-control-max-age'], '300');
    assert.match(String(res.headers.vary), /^Origin\b/);
    assert.equal(typeof res.headers['x-request-id'], 'string');
    const pattern = await preflight('/cors', 'https://shop.eu.example.org', 'GET');
    assert.equal(pattern.status, 204);
    assert.equal(pattern.headers['access-control-allow-origin'], 'https://shop.eu.example.org');
    assert.equal(upstream.requests.length, before, 'no preflight reached the upstream');
  });

  test('a preflight for an origin, method or header not allowed gets 403 without CORS headers', async () => {
    const cases: Array<[string, string, string | undefined, RegExp]> = [
      ['https://evil.test', 'GET', undefined, /origin/],
      ['https://example.org', 'GET', undefined, /origin/],
      ['https://app.example.com', 'DELETE', undefined, /method/],
      ['https://app.example.com', 'PUT', 'content-type, x-secret', /x-secret/],
    ];
    for (const [origin, method, headers, why] of cases) {
      const res = await preflight('/cors', origin, method, headers);
      assert.equal(res.status, 403, `${origin} ${method} ${headers}`);
      assert.equal(res.json().code, 'cors_rejected');
      assert.match(String(res.json().detail), why);
      assert.equal(res.headers['access-control-allow-origin'], undefined);
      assert.equal(res.headers['access-control-allow-methods'], undefined);
    }
  });

  test('a preflight is judged by the rule serving the method it asks about', async () => {
    // GET /items and POST /items are two rules with their own CORS policies.
    const get = await preflight('/items', 'https://app.example.com', 'GET');
    assert.equal(get.status, 204);
    assert.equal(get.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.equal((await preflight('/items', 'https://app.example.com', 'POST')).status, 403);
    const post = await preflight('/items', 'https://admin.example.com', 'POST');
    assert.equal(post.status, 204);
    assert.equal(post.headers['access-control-allow-origin'], 'https://admin.example.com');
  });

  test('without a CORS policy, or when not a preflight, OPTIONS is routed as before', async () => {
    assert.equal((await preflight('/plain', 'https://app.example.com', 'GET')).status, 404);
    assert.equal((await preflight('/nowhere', 'https://app.example.com', 'GET')).status, 404);
    // A method no rule serves at the path: no rule to judge the preflight.
    assert.equal((await preflight('/cors', 'https://app.example.com', 'PATCH')).status, 404);
    const plainOptions = await httpRequest(port, '/cors', {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example.com' },
    });
    assert.equal(plainOptions.status, 404, 'the rule’s methods are not widened');
  });

  test('an allowed origin gets the CORS headers on the forwarded answer', async () => {
    const res = await httpRequest(port, '/cors', {
      headers: { origin: 'https://app.example.com', 'x-api-key': apiKey },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.equal(res.headers['access-control-allow-credentials'], 'true');
    assert.equal(res.headers['access-control-expose-headers'], 'X-Request-Id');
    assert.equal(res.headers.vary, 'Origin');
  });

  test('and on errors, so the page can read them: a 401 carries CORS headers and its challenge', async () => {
    const res = await httpRequest(port, '/cors', { headers: { origin: 'https://app.example.com' } });
    assert.equal(res.status, 401);
    assert.match(String(res.headers['www-authenticate']), /^ApiKey/);
    assert.equal(res.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.equal(res.headers['access-control-allow-credentials'], 'true');
    assert.equal(res.headers.vary, 'Origin');
  });

  test('errors made while forwarding (a 413 here) carry the CORS headers too', async () => {
    const res = await httpRequest(port, '/items', {
      method: 'POST',
      headers: { origin: 'https://admin.example.com' },
      body: 'x'.repeat(100),
    });
    assert.equal(res.status, 413);
    assert.equal(res.headers['access-control-allow-origin'], 'https://admin.example.com');
  });

  test('another origin gets no CORS headers, and is not refused: CORS is no access control', async () => {
    const res = await httpRequest(port, '/cors', {
      headers: { origin: 'https://evil.test', 'x-api-key': apiKey },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers['access-control-allow-origin'], undefined);
    assert.equal(res.headers['access-control-allow-credentials'], undefined);
    assert.equal(res.headers.vary, 'Origin');
  });

  test('the gateway alone speaks CORS: the upstream’s own CORS headers are dropped, its Vary kept', async () => {
    const other = await httpRequest(port, '/items', { headers: { origin: 'https://evil.test' } });
    assert.equal(other.status, 200);
    assert.equal(other.body, 'items');
    assert.equal(other.headers['access-control-allow-origin'], undefined);
    assert.equal(other.headers['access-control-allow-credentials'], undefined);
    assert.equal(other.headers.vary, 'Accept-Encoding, Origin');
    const allowed = await httpRequest(port, '/items', { headers: { origin: 'https://app.example.com' } });
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.equal(allowed.headers['access-control-allow-credentials'], undefined);
  });

  test('every origin allowed, no credentials: `*`, the same answer for everyone', async () => {
    const res = await httpRequest(port, '/open', { headers: { origin: 'https://anyone.test' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers['access-control-allow-origin'], '*');
    assert.equal(res.headers.vary, undefined);
    const pre = await preflight('/open', 'https://anyone.test', 'GET');
    assert.equal(pre.status, 204);
    assert.equal(pre.headers['access-control-allow-origin'], '*');
  });
});

describe('CORS credentials rules (gatehouse validate)', () => {
  test('credentials with every origin, and CORS in a shadow Policy, are compile errors', async () => {
    const dir = tempConfigDir();
    writeConfig(
      dir,
      'bad.yaml',
      `
apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, port: 8080 }]
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: echo }
spec: { targets: [{ url: http://127.0.0.1:9 }] }
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: web }
spec:
  gateway: edge
  upstream: echo
  rules:
    - path: /a
      request: { cors: { allowOrigins: ["*"], allowCredentials: true } }
      authenticate: [{ noAuth: {} }]
    - path: /b
      request: { cors: { allowOrigins: [https://app.example.com], allowHeaders: ["*"], allowCredentials: true } }
      authenticate: [{ noAuth: {} }]
    - path: /c
      request: { ipAllow: [10.0.0.0/33] }
      authenticate: [{ noAuth: {} }]
---
apiVersion: gatehouse.dev/v1
kind: Policy
metadata: { name: try-cors }
spec:
  targetRef: { kind: Gateway, name: edge }
  mode: shadow
  request: { ipDeny: [10.0.0.0/8], cors: { allowOrigins: [https://app.example.com] } }
`,
    );
    const proc = runCli(['validate', dir]);
    const { code } = await proc.exited;
    assert.equal(code, 1);
    const stderr = proc.stderr();
    assert.match(
      stderr,
      /bad\.yaml:\d+:\d+: spec\.rules\[0\]\.request\.cors: allowCredentials: true needs exact origins/,
    );
    assert.match(stderr, /spec\.rules\[1\]\.request\.cors: allowCredentials: true: `\*` in allowHeaders/);
    assert.match(stderr, /spec\.rules\[2\]\.request\.ipAllow: not a CIDR or IP address: 10\.0\.0\.0\/33/);
    assert.match(stderr, /spec\.request\.cors: not allowed in shadow mode/);
    assert.doesNotMatch(stderr, /spec\.request\.ipDeny/, 'ip lists may be tried in shadow mode');
    assert.match(stderr, /4 problem\(s\) found/);
  });
});

describe('request body size per rule', () => {
  const chunked = (path: string, size: number) => {
    const chunks = Array.from({ length: Math.ceil(size / 50) }, () => `32\r\n${'c'.repeat(50)}\r\n`).join('');
    return rawRequest(
      port,
      `POST ${path} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunks}0\r\n\r\n`,
    ).then(parseRaw);
  };

  test('a rule’s smaller limit gives 413, by Content-Length or while streaming chunks', async () => {
    const within = await httpRequest(port, '/upload/small', { method: 'POST', body: 'x'.repeat(100) });
    assert.equal(within.status, 200);
    assert.equal(within.json().bodyBytes, 100);
    const sized = await httpRequest(port, '/upload/small', { method: 'POST', body: 'x'.repeat(150) });
    assert.equal(sized.status, 413);
    assert.equal(sized.json().code, 'payload_too_large');
    assert.match(String(sized.json().detail), /100 bytes/);
    const streamed = await chunked('/upload/small', 150);
    assert.equal(streamed.status, 413);
    assert.equal(JSON.parse(streamed.body).code, 'payload_too_large');
  });

  test('a rule’s larger limit lets through what the Gateway’s would refuse', async () => {
    const sized = await httpRequest(port, '/upload/big', { method: 'POST', body: 'x'.repeat(2000) });
    assert.equal(sized.status, 200);
    assert.equal(sized.json().bodyBytes, 2000);
    const streamed = await chunked('/upload/big', 2000);
    assert.equal(streamed.status, 200);
    assert.match(streamed.body, /"bodyBytes":2000/);
    assert.equal(
      (await httpRequest(port, '/upload/big', { method: 'POST', body: 'x'.repeat(6000) })).status,
      413,
    );
    // Without a rule limit, the Gateway's applies.
    assert.equal(
      (await httpRequest(port, '/upload/default', { method: 'POST', body: 'x'.repeat(2000) })).status,
      413,
    );
  });
});
