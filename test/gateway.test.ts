import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { httpRequest, parseRaw, rawRequest } from './helpers/http.ts';
import {
  freePort,
  type RunningProcess,
  startGateway,
  tempConfigDir,
  writeConfig,
} from './helpers/process.ts';
import { type EchoUpstream, startEchoUpstream } from './helpers/upstream.ts';

let upstream: EchoUpstream;
let wsServer: WebSocketServer;
let gateway: RunningProcess;
let port: number;
let adminPort: number;
let deadPort: number;

function config(opts: {
  port: number;
  admin: number;
  upstream: string;
  ws: string;
  dead: string;
  trusted?: string;
}) {
  return `
apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, address: 127.0.0.1, port: ${opts.port} }]
  admin: { port: ${opts.admin} }
  trustedProxies: [${opts.trusted ?? ''}]
  limits: { maxHeaderBytes: 4096, maxBodyBytes: 1000, requestTimeout: 2s }
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: echo }
spec:
  targets: [{ url: ${opts.upstream} }]
  timeouts: { connect: 1s, response: 5s }
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: dead }
spec: { targets: [{ url: ${opts.dead} }], timeouts: { connect: 1s } }
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: sockets }
spec: { targets: [{ url: ${opts.ws} }] }
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: shop }
spec:
  gateway: edge
  upstream: echo
  rules:
    - { path: /hello, methods: [GET], authenticate: [{ noAuth: {} }] }
    - { path: '/users/{id}', methods: [GET], authenticate: [{ noAuth: {} }] }
    - { path: /users/me, methods: [GET], authenticate: [{ noAuth: {} }] }
    - { path: '/files/{**}', authenticate: [{ noAuth: {} }] }
    - { path: '/api/{**}', stripPrefix: /api, authenticate: [{ noAuth: {} }] }
    - { path: /slow, timeout: 300ms, authenticate: [{ noAuth: {} }] }
    - { path: /reset, authenticate: [{ noAuth: {} }] }
    - { path: /big, authenticate: [{ noAuth: {} }] }
    - { path: /upload, methods: [POST], authenticate: [{ noAuth: {} }] }
    - { path: /down, upstream: dead, authenticate: [{ noAuth: {} }] }
    - { path: /ws, upstream: sockets, authenticate: [{ noAuth: {} }] }
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: hosted }
spec:
  gateway: edge
  upstream: echo
  hosts: [api.test, "*.wild.test"]
  rules:
    - { path: /only-host, methods: [GET], authenticate: [{ noAuth: {} }] }
`;
}

before(async () => {
  upstream = await startEchoUpstream((req, res) => {
    if (req.url === '/slow') {
      setTimeout(() => res.end('late'), 3000).unref();
      return true;
    }
    if (req.url === '/reset') {
      res.socket?.destroy();
      return true;
    }
    if (req.url === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 'x');
      for (let i = 0; i < 80; i++) res.write(chunk);
      res.end();
      return true;
    }
    return undefined;
  });
  wsServer = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  wsServer.on('connection', (socket, req) => {
    socket.on('message', (data) => socket.send(`echo:${data}|path:${req.url}`));
  });
  await new Promise<void>((r) => wsServer.once('listening', () => r()));
  port = await freePort();
  adminPort = await freePort();
  deadPort = await freePort();
  const dir = tempConfigDir();
  const wsPort = (wsServer.address() as { port: number }).port;
  writeConfig(
    dir,
    'gateway.yaml',
    config({
      port,
      admin: adminPort,
      upstream: upstream.url,
      ws: `http://127.0.0.1:${wsPort}`,
      dead: `http://127.0.0.1:${deadPort}`,
    }),
  );
  gateway = await startGateway([dir], ['--no-watch']);
});

after(async () => {
  await gateway?.stop();
  await upstream?.close();
  wsServer?.close();
});

function lastSeen() {
  return upstream.requests.at(-1)!;
}

describe('routing', () => {
  test('a matching rule is forwarded and the response relayed with a request id', async () => {
    const res = await httpRequest(port, '/hello');
    assert.equal(res.status, 200);
    assert.equal(res.json().url, '/hello');
    assert.match(String(res.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    assert.equal(res.headers['x-request-id'], lastSeen().headers['x-request-id']);
  });

  test('no matching path, method or host is a 404 problem', async () => {
    for (const [path, method, host] of [
      ['/nothing', 'GET', undefined],
      ['/hello', 'POST', undefined],
      ['/only-host', 'GET', 'other.test'],
      ['/only-host', 'GET', 'wild.test'],
    ] as const) {
      const res = await httpRequest(port, path, { method, host });
      assert.equal(res.status, 404, `${method} ${host} ${path}`);
      assert.equal(res.headers['content-type'], 'application/problem+json');
      const problem = res.json();
      assert.equal(problem.code, 'route_not_found');
      assert.equal(problem.status, 404);
    }
  });

  test('host rules match exact and wildcard hosts, any port', async () => {
    assert.equal((await httpRequest(port, '/only-host', { host: 'api.test' })).status, 200);
    assert.equal((await httpRequest(port, '/only-host', { host: 'API.test:8443' })).status, 200);
    assert.equal((await httpRequest(port, '/only-host', { host: 'a.b.wild.test' })).status, 200);
  });

  test('literal segments win over parameters, {**} takes the rest', async () => {
    const before = upstream.requests.length;
    assert.equal((await httpRequest(port, '/users/me')).status, 200);
    assert.equal((await httpRequest(port, '/users/42')).status, 200);
    assert.equal((await httpRequest(port, '/users/42/x')).status, 404);
    assert.equal((await httpRequest(port, '/files/a/b/c.txt')).status, 200);
    assert.deepEqual(
      upstream.requests.slice(before).map((r) => r.url),
      ['/users/me', '/users/42', '/files/a/b/c.txt'],
    );
  });

  test('stripPrefix removes the prefix before forwarding; the query is kept as sent', async () => {
    const res = await httpRequest(port, '/api/orders/7?expand=items&a[]=1');
    assert.equal(res.status, 200);
    assert.equal(res.json().url, '/orders/7?expand=items&a[]=1');
  });
});

describe('canonical request', () => {
  test('dot-segments, duplicate slashes and unreserved encodings are normalised before routing', async () => {
    for (const [sent, forwarded] of [
      ['/files/a/../b', '/files/b'],
      ['//files///x', '/files/x'],
      ['/%66iles/%7Euser', '/files/~user'],
      ['/files/a%3ab', '/files/a%3Ab'],
      ['/users/me/./', '/users/me/'],
    ]) {
      const res = await httpRequest(port, sent!);
      if (forwarded === '/users/me/') {
        assert.equal(res.status, 404, 'trailing slash is a different path');
        continue;
      }
      assert.equal(res.status, 200, sent);
      assert.equal(res.json().url, forwarded, sent);
    }
  });

  test('encoded slashes, backslashes, NUL and bad encodings are rejected with 400', async () => {
    for (const path of [
      '/files/a%2Fb',
      '/files/..%2f..%2fetc',
      '/files/a%5Cb',
      '/files/a%00',
      '/files/%zz',
      '/files/%4',
    ]) {
      const res = await httpRequest(port, path);
      assert.equal(res.status, 400, path);
      assert.equal(res.json().code, 'bad_path', path);
    }
    const resolved = await httpRequest(port, '/files/%2e%2e/hello');
    assert.equal(resolved.status, 200, '%2e%2e is resolved, so this is /hello');
    assert.equal(resolved.json().url, '/hello');
  });

  test('absolute-form targets, duplicate Host and Authorization, ambiguous framing are rejected', async () => {
    const cases: Array<[string, string]> = [
      [`GET http://evil.test/hello HTTP/1.1\r\nHost: evil.test\r\n\r\n`, 'bad_target'],
      [`GET /hello HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n`, 'duplicate_header'],
      [
        `GET /hello HTTP/1.1\r\nHost: a.test\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n`,
        'duplicate_header',
      ],
      [
        `POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
        'bad_framing',
      ],
      [
        `POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
        'bad_framing',
      ],
      [`POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`, ''],
      [`GET /he\u0001llo HTTP/1.1\r\nHost: a\r\n\r\n`, ''],
      [`GET /hello HTTP/1.1\r\nHost: a b\r\n\r\n`, 'bad_host'],
      [`GET /hello HTTP/1.1\r\nHost: user@a\r\n\r\n`, 'bad_host'],
    ];
    const before = upstream.requests.length;
    for (const [bytes, code] of cases) {
      const { status, head, body } = parseRaw(await rawRequest(port, bytes));
      assert.equal(status, 400, JSON.stringify(bytes));
      assert.match(head, /content-type: application\/problem\+json/i);
      if (code) assert.equal(JSON.parse(body).code, code, JSON.stringify(bytes));
    }
    assert.equal(upstream.requests.length, before, 'nothing rejected reached the upstream');
  });
});

describe('headers', () => {
  test('hop-by-hop and Connection-nominated headers are stripped; forwarding headers replaced for an untrusted peer', async () => {
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    await httpRequest(port, '/hello', {
      headers: {
        connection: 'close, x-secret',
        'x-secret': 'internal',
        'keep-alive': 'timeout=5',
        te: 'trailers',
        'proxy-authorization': 'Basic Zm9v',
        'x-forwarded-for': '6.6.6.6',
        'x-forwarded-host': 'evil.test',
        'x-forwarded-proto': 'https',
        forwarded: 'for=6.6.6.6',
        'x-request-id': 'attacker-chosen',
        traceparent,
        'x-custom': 'kept',
      },
      host: 'example.test:8080',
    });
    const seen = lastSeen().headers;
    for (const name of ['x-secret', 'keep-alive', 'te', 'proxy-authorization'])
      assert.equal(seen[name], undefined, name);
    assert.equal(seen['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen['x-forwarded-host'], 'example.test:8080');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.equal(seen.forwarded, 'for=127.0.0.1;host="example.test:8080";proto=http');
    assert.notEqual(seen['x-request-id'], 'attacker-chosen');
    assert.equal(seen.traceparent, traceparent);
    assert.equal(seen['x-custom'], 'kept');
    assert.equal(seen.host, `127.0.0.1:${upstream.port}`, 'Host is rewritten to the target by default');
  });

  test('a malformed traceparent is dropped', async () => {
    await httpRequest(port, '/hello', { headers: { traceparent: 'garbage' } });
    assert.equal(lastSeen().headers.traceparent, undefined);
  });
});

describe('limits', () => {
  test('headers over maxHeaderBytes get 431 problem+json', async () => {
    const { status, head, body } = parseRaw(
      await rawRequest(port, `GET /hello HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(5000)}\r\n\r\n`),
    );
    assert.equal(status, 431);
    assert.match(head, /application\/problem\+json/);
    assert.equal(JSON.parse(body).code, 'header_too_large');
  });

  test('a body over maxBodyBytes gets 413, by Content-Length or while streaming chunks', async () => {
    const before = upstream.requests.length;
    const declared = await httpRequest(port, '/upload', { method: 'POST', body: 'x'.repeat(1001) });
    assert.equal(declared.status, 413);
    assert.equal(declared.json().code, 'payload_too_large');
    const chunks = Array.from({ length: 5 }, () => `12c\r\n${'y'.repeat(300)}\r\n`).join('');
    const { status, body } = parseRaw(
      await rawRequest(
        port,
        `POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}0\r\n\r\n`,
      ),
    );
    assert.equal(status, 413);
    assert.equal(JSON.parse(body).code, 'payload_too_large');
    const fullBodiesSeen = upstream.requests.slice(before).filter((r) => r.body.length > 1000);
    assert.equal(fullBodiesSeen.length, 0, 'an oversized body never reaches the upstream whole');
  });

  test('bodies within the limit are streamed to the upstream, chunked or not', async () => {
    const sized = await httpRequest(port, '/upload', { method: 'POST', body: 'z'.repeat(900) });
    assert.equal(sized.json().bodyBytes, 900);
    const { status, body } = parseRaw(
      await rawRequest(
        port,
        `POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n`,
      ),
    );
    assert.equal(status, 200);
    assert.match(body, /"bodyBytes":8/);
  });

  test('a request not received within requestTimeout gets 408', async () => {
    const { status, body } = parseRaw(await rawRequest(port, 'GET /hello HTTP/1.1\r\nHost: a\r\n'));
    assert.equal(status, 408);
    assert.equal(JSON.parse(body).code, 'request_timeout');
  });

  test('a large response is streamed through whole', async () => {
    const res = await httpRequest(port, '/big');
    assert.equal(res.status, 200);
    assert.equal(res.body.length, 80 * 64 * 1024);
  });
});

describe('upstream failures', () => {
  test('connection refused → 503, no headers in time → 504, connection reset → 502; no internals leak', async () => {
    for (const [path, status, code] of [
      ['/down', 503, 'upstream_unavailable'],
      ['/slow', 504, 'upstream_timeout'],
      ['/reset', 502, 'upstream_reset'],
    ] as const) {
      const res = await httpRequest(port, path);
      assert.equal(res.status, status, path);
      assert.equal(res.json().code, code, path);
      assert.doesNotMatch(res.body, /127\.0\.0\.1|ECONN|at .*\.ts/, 'no address or stack in the answer');
    }
  });
});

describe('websocket', () => {
  test('upgrade requests are routed and joined to the upstream', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?x=1`);
    const reply = await new Promise<string>((resolve, reject) => {
      ws.once('open', () => ws.send('ping'));
      ws.once('message', (data) => resolve(String(data)));
      ws.once('error', reject);
    });
    ws.close();
    assert.equal(reply, 'echo:ping|path:/ws?x=1');
  });

  test('an upgrade to an unknown route is refused with 404', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/nope`);
    const status = await new Promise<number>((resolve) => {
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.once('error', () => resolve(-1));
    });
    assert.equal(status, 404);
  });
});

describe('admin', () => {
  test('health, readiness, plan and metrics', async () => {
    assert.equal((await httpRequest(adminPort, '/healthz')).status, 200);
    const ready = await httpRequest(adminPort, '/readyz');
    assert.equal(ready.status, 200);
    const plan = (await httpRequest(adminPort, '/plan')).json<{ version: string; routes: unknown[] }>();
    assert.equal(ready.json().planVersion, plan.version);
    assert.equal(plan.routes.length, 13, '11 rules on any host, 1 rule on 2 hosts');
    const metrics = (await httpRequest(adminPort, '/metrics')).body;
    assert.match(
      metrics,
      /gatehouse_requests_total\{route="default\/shop#0",method="GET",status_class="2xx"\} \d+/,
    );
    assert.match(metrics, /gatehouse_request_duration_seconds_bucket/);
    assert.match(metrics, /gatehouse_upstream_errors_total\{upstream="default\/dead",kind="connect"\} \d+/);
    assert.match(metrics, new RegExp(`gatehouse_plan_info\\{version="${plan.version}"\\} 1`));
    // The process's own metrics, under their standard names (docs/analytics.md).
    const value = (name: string) =>
      Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(metrics)?.[1]);
    assert.ok(value('process_cpu_seconds_total') > 0);
    assert.ok(value('process_resident_memory_bytes') > 1e6);
    assert.ok(value('nodejs_heap_size_used_bytes') > 1e6);
    assert.ok(value('nodejs_eventloop_lag_p99_seconds') >= 0);
    assert.match(metrics, /^nodejs_gc_duration_seconds_count\{kind="(minor|major|incremental)"\} \d+$/m);
  });
});

describe('access log', () => {
  test('one JSON line per request, without credentials', async () => {
    await httpRequest(port, '/hello?token=secret', {
      headers: { authorization: 'Bearer very-secret', cookie: 'sid=also-secret' },
    });
    await new Promise((r) => setTimeout(r, 300));
    const line = gateway
      .logs()
      .filter((l) => l.type === 'access' && l.path === '/hello')
      .at(-1);
    assert.ok(line, 'access line written');
    for (const field of ['requestId', 'route', 'status', 'ms', 'bytesIn', 'bytesOut', 'client'])
      assert.ok(field in line, field);
    assert.doesNotMatch(gateway.stdout(), /very-secret|also-secret|token=secret/);
  });
});

describe('trusted proxies', () => {
  test('from a trusted peer, forwarding headers are appended to and the request id kept', async () => {
    const dir = tempConfigDir();
    const trustedPort = await freePort();
    writeConfig(
      dir,
      'gateway.yaml',
      config({
        port: trustedPort,
        admin: await freePort(),
        upstream: upstream.url,
        ws: upstream.url,
        dead: upstream.url,
        trusted: '127.0.0.0/8',
      }),
    );
    const trusted = await startGateway([dir], ['--no-watch']);
    try {
      await httpRequest(trustedPort, '/hello', {
        headers: {
          'x-forwarded-for': '203.0.113.9',
          'x-request-id': 'edge-123',
          'x-forwarded-proto': 'https',
          forwarded: 'for=203.0.113.9',
        },
      });
      const seen = lastSeen().headers;
      assert.equal(seen['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
      assert.equal(seen['x-request-id'], 'edge-123');
      assert.equal(seen['x-forwarded-proto'], 'https');
      assert.match(String(seen.forwarded), /^for=203\.0\.113\.9, for=127\.0\.0\.1;/);
    } finally {
      await trusted.stop();
    }
  });
});

describe('client going away', () => {
  test('aborts the upstream call at once (no upstream work for nobody)', async () => {
    let upstreamClosed = false;
    const slow = createServer((req, res) => {
      req.socket.once('close', () => {
        upstreamClosed = true;
      });
      setTimeout(() => res.end('late'), 5000).unref();
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    const dir = tempConfigDir();
    const gwPort = await freePort();
    writeConfig(
      dir,
      'gateway.yaml',
      `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: g }
spec: { listeners: [{ name: p, address: 127.0.0.1, port: ${gwPort} }] }
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: slow }
spec: { targets: [{ url: 'http://127.0.0.1:${(slow.address() as { port: number }).port}' }] }
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: r }
spec: { gateway: g, upstream: slow, rules: [{ path: /slow, authenticate: [{ noAuth: {} }] }] }
`,
    );
    const gw = await startGateway([dir], ['--no-watch']);
    try {
      const req = request({ host: '127.0.0.1', port: gwPort, path: '/slow', agent: false });
      req.on('error', () => {});
      req.end();
      await new Promise((r) => setTimeout(r, 200));
      req.destroy();
      const deadline = Date.now() + 4000;
      while (!upstreamClosed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.ok(upstreamClosed, 'the upstream connection was closed before the upstream answered');
    } finally {
      await gw.stop();
      slow.closeAllConnections();
      slow.close();
    }
  });
});
