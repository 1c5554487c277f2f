// Tracing end to end: a gateway exporting OTLP/HTTP to a local receiver, W3C traceparent sent to the
// upstream, child spans for the upstream call, a key-set fetch (unknown kid) and introspection.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rmSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { startKeyServer, type TestKeyServer } from './helpers/jwks.ts';
import { httpRequest } from './helpers/http.ts';
import {
  freePort,
  type RunningProcess,
  startGateway,
  tempConfigDir,
  writeConfig,
} from './helpers/process.ts';
import { type EchoUpstream, startEchoUpstream } from './helpers/upstream.ts';

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Array<{ key: string; value: Record<string, unknown> }>;
}

/** A local OTLP/HTTP receiver (JSON): keeps every span posted to /v1/traces. */
async function startOtlpReceiver(): Promise<{
  url: string;
  spans: ExportedSpan[];
  services: Set<string>;
  close(): Promise<void>;
}> {
  const spans: ExportedSpan[] = [];
  const services = new Set<string>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces' && req.method === 'POST') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        for (const rs of body.resourceSpans ?? []) {
          for (const a of rs.resource?.attributes ?? [])
            if (a.key === 'service.name') services.add(a.value.stringValue);
          for (const ss of rs.scopeSpans ?? []) spans.push(...ss.spans);
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`,
    spans,
    services,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

let dir: string;
let upstream: EchoUpstream;
let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
let keys: TestKeyServer;
let introspection: Server;
let gateway: RunningProcess;
let port: number;

before(async () => {
  dir = tempConfigDir('gatehouse-tracing-');
  upstream = await startEchoUpstream();
  otlp = await startOtlpReceiver();
  keys = await startKeyServer();
  introspection = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          active: true,
          sub: 'opaque-user',
          scope: 'read',
          exp: Math.floor(Date.now() / 1000) + 600,
        }),
      );
    });
  });
  await new Promise<void>((r) => introspection.listen(0, '127.0.0.1', r));
  const introspectionUrl = `http://127.0.0.1:${(introspection.address() as AddressInfo).port}/introspect`;
  port = await freePort();
  const config = writeConfig(
    dir,
    'gateway.yaml',
    `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, address: 127.0.0.1, port: ${port} }]
  accessLog: { enabled: false }
  shutdown: { drainTimeout: 1s }
  tracing:
    otlp: { url: "${otlp.url}" }
    exportInterval: 100ms
    sampleRatio: 1
---
apiVersion: gatehouse.dev/v1
kind: IdentityProvider
metadata: { name: corp }
spec:
  issuer: "${keys.issuer}"
  jwksUri: "${keys.jwksUri}"
  algorithms: [ES256]
  audiences: [shop]
  keySet: { minRefetchInterval: 1s }
  introspection: { endpoint: "${introspectionUrl}", clientId: gw, clientSecret: { env: GH_INTROSPECTION_SECRET } }
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: app }
spec:
  targets: [{ url: "${upstream.url}" }]
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: shop }
spec:
  gateway: edge
  upstream: app
  rules:
    - { path: "/orders/{id}", methods: [GET], authenticate: [{ noAuth: {} }] }
    - { path: /jwt, methods: [GET], authenticate: [{ jwt: { provider: corp } }] }
    - { path: /opaque, methods: [GET], authenticate: [{ introspection: { provider: corp } }] }
`,
  );
  gateway = await startGateway([config], ['--no-watch'], { GH_INTROSPECTION_SECRET: 'secret-0123456789' });
});

after(async () => {
  await gateway?.stop();
  await Promise.all([upstream?.close(), otlp?.close(), keys?.close()]);
  await new Promise<void>((r) => (introspection ? introspection.close(() => r()) : r()));
  rmSync(dir, { recursive: true, force: true });
});

const spansOf = (traceId: string) => otlp.spans.filter((s) => s.traceId === traceId);

async function waitForSpans(traceId: string, n: number): Promise<ExportedSpan[]> {
  const until = Date.now() + 15_000;
  while (spansOf(traceId).length < n) {
    if (Date.now() > until)
      throw new Error(
        `only ${spansOf(traceId).length} spans of ${traceId}: ${JSON.stringify(otlp.spans.map((s) => s.name))}`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
  return spansOf(traceId);
}

test('a request continues the caller’s trace; the upstream gets the upstream span as its parent', async () => {
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const callerSpan = '00f067aa0ba902b7';
  const res = await httpRequest(port, '/orders/42', {
    headers: { traceparent: `00-${traceId}-${callerSpan}-01` },
  });
  assert.equal(res.status, 200);
  const seen = upstream.requests.at(-1)!;
  const sent = seen.headers.traceparent as string;
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(sent);
  assert.ok(match, `traceparent upstream: ${sent}`);
  assert.equal(match[1], traceId);
  const spans = await waitForSpans(traceId, 2);
  const server = spans.find((s) => s.kind === 2)!;
  const client = spans.find((s) => s.kind === 3)!;
  assert.equal(server.parentSpanId, callerSpan);
  assert.equal(server.name, 'GET /orders/{id}');
  assert.equal(client.parentSpanId, server.spanId);
  assert.equal(match[2], client.spanId, 'the upstream’s parent is the upstream-call span');
  assert.ok(otlp.services.has('gatehouse-edge'));
});

test('without a traceparent a new trace starts; a malformed one is not forwarded', async () => {
  const res = await httpRequest(port, '/orders/7', { headers: { traceparent: 'garbage' } });
  assert.equal(res.status, 200);
  const sent = upstream.requests.at(-1)!.headers.traceparent as string;
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(sent);
  assert.ok(match);
  const spans = await waitForSpans(match[1]!, 2);
  const server = spans.find((s) => s.kind === 2)!;
  assert.equal(server.parentSpanId ?? '', '');
});

test('a key-set fetch (unknown kid) and an introspection call are child spans of the request', async () => {
  await new Promise((r) => setTimeout(r, 1200)); // past minRefetchInterval since the start-up fetch
  const key = await keys.addKey('ES256'); // a kid the gateway has not seen: fetched during the request
  const token = await keys.sign({ sub: 'u1', aud: 'shop' }, { key });
  const traceId = '11111111111111111111111111111111';
  const res = await httpRequest(port, '/jwt', {
    headers: { authorization: `Bearer ${token}`, traceparent: `00-${traceId}-2222222222222222-01` },
  });
  assert.equal(res.status, 200, `${res.body} ${JSON.stringify([...keys.hits])} ${gateway.stdout()}`);
  const spans = await waitForSpans(traceId, 3);
  const server = spans.find((s) => s.kind === 2)!;
  const fetch = spans.find((s) => s.name === 'key-set fetch');
  assert.ok(fetch, JSON.stringify(spans.map((s) => s.name)));
  assert.equal(fetch.parentSpanId, server.spanId);

  const opaque = '33333333333333333333333333333333';
  const res2 = await httpRequest(port, '/opaque', {
    headers: {
      authorization: 'Bearer opaque-token-value-0123',
      traceparent: `00-${opaque}-4444444444444444-01`,
    },
  });
  assert.equal(res2.status, 200, res2.body);
  const spans2 = await waitForSpans(opaque, 3);
  const server2 = spans2.find((s) => s.kind === 2)!;
  const call = spans2.find((s) => s.name === 'introspection');
  assert.ok(call, JSON.stringify(spans2.map((s) => s.name)));
  assert.equal(call.parentSpanId, server2.spanId);
});

test('a caller’s unsampled trace is propagated but not recorded', async () => {
  const traceId = '55555555555555555555555555555555';
  const res = await httpRequest(port, '/orders/1', {
    headers: { traceparent: `00-${traceId}-6666666666666666-00` },
  });
  assert.equal(res.status, 200);
  const sent = upstream.requests.at(-1)!.headers.traceparent as string;
  assert.match(sent, new RegExp(`^00-${traceId}-[0-9a-f]{16}-00$`));
  await httpRequest(port, '/orders/2'); // a sampled one after it: once it is exported, the other would have been too
  const marker = /^00-([0-9a-f]{32})-/.exec(upstream.requests.at(-1)!.headers.traceparent as string)![1]!;
  await waitForSpans(marker, 2);
  assert.equal(spansOf(traceId).length, 0);
});
