// How a forwarded answer's body travels (src/gateway/response-relay.ts): a slow client holds the
// upstream back instead of the gateway buffering, an upstream that breaks off mid-body breaks the
// client's response off and is counted, and a client that leaves mid-body stops the upstream.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, request, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import {
  freePort,
  type RunningProcess,
  startGateway,
  tempConfigDir,
  writeConfig,
} from './helpers/process.ts';

const bigChunk = Buffer.alloc(64 * 1024, 'y');
const bigChunks = 512; // 32 MiB: far more than loopback socket buffers hold

let upstream: Server;
let gateway: RunningProcess;
let port: number;
let adminPort: number;
let sawBackpressure = false;
let streamClosed: (() => void) | null = null;

before(async () => {
  upstream = createServer((req, res) => {
    if (req.url === '/big') {
      res.writeHead(200, { 'content-length': String(bigChunk.length * bigChunks) });
      let sent = 0;
      const more = () => {
        while (sent < bigChunks) {
          sent++;
          if (!res.write(bigChunk)) {
            sawBackpressure = true;
            res.once('drain', more);
            return;
          }
        }
        res.end();
      };
      more();
    } else if (req.url === '/break') {
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(1000, 'z'), () => setTimeout(() => res.socket?.destroy(), 50));
    } else if (req.url === '/stream') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const timer = setInterval(() => res.write('tick\n'), 20);
      res.once('close', () => {
        clearInterval(timer);
        streamClosed?.();
      });
    } else res.end('ok');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  port = await freePort();
  adminPort = await freePort();
  const dir = tempConfigDir();
  writeConfig(
    dir,
    'gateway.yaml',
    `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: g }
spec:
  listeners: [{ name: p, address: 127.0.0.1, port: ${port} }]
  admin: { port: ${adminPort} }
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: relay }
spec: { targets: [{ url: 'http://127.0.0.1:${(upstream.address() as { port: number }).port}' }] }
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: r }
spec: { gateway: g, upstream: relay, rules: [{ path: '/{**}', authenticate: [{ noAuth: {} }] }] }
`,
  );
  gateway = await startGateway([dir], ['--no-watch']);
});

after(async () => {
  await gateway?.stop();
  upstream?.closeAllConnections();
  upstream?.close();
});

function get(path: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: 15_000 }, resolve);
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('relaying the upstream answer', () => {
  test('a client that reads slowly holds the upstream back; the body arrives whole', async () => {
    const res = await get('/big');
    assert.equal(res.statusCode, 200);
    res.pause();
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(sawBackpressure, 'the upstream had to wait while the client did not read');
    let length = 0;
    for await (const chunk of res as AsyncIterable<Buffer>) {
      assert.ok(chunk.every((b) => b === 0x79));
      length += chunk.length;
    }
    assert.equal(length, bigChunk.length * bigChunks);
  });

  test('an upstream that breaks off mid-body breaks the client response off and is counted', async () => {
    const res = await get('/break');
    assert.equal(res.statusCode, 200);
    let length = 0;
    const ended = await new Promise<string>((resolve) => {
      res.on('data', (c: Buffer) => {
        length += c.length;
      });
      res.on('end', () => resolve('end'));
      res.on('aborted', () => resolve('aborted'));
      res.on('error', () => resolve('error'));
    });
    assert.notEqual(ended, 'end', 'the client must not see a complete response');
    assert.ok(length < 100_000);
    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    assert.match(metrics, /gatehouse_upstream_errors_total\{upstream="default\/relay",kind="reset"\} 1/);
    const line = await gateway.waitFor(/"type":"access".*"path":"\/break"/);
    const entry = JSON.parse(line) as Record<string, unknown>;
    assert.equal(entry.status, 200);
    assert.equal(entry.completed, false);
  });

  test('a client that leaves mid-body stops the upstream answer', async () => {
    const closed = new Promise<void>((resolve) => {
      streamClosed = resolve;
    });
    const res = await get('/stream');
    assert.equal(res.statusCode, 200);
    await new Promise((resolve) => res.once('data', resolve));
    res.destroy();
    const timeout = new Promise<string>((resolve) => setTimeout(() => resolve('timeout'), 4000).unref());
    assert.notEqual(await Promise.race([closed.then(() => 'closed'), timeout]), 'timeout');
    const line = await gateway.waitFor(/"type":"access".*"path":"\/stream"/);
    assert.equal((JSON.parse(line) as Record<string, unknown>).completed, false);
  });
});

describe('access log at shutdown', () => {
  test('lines of the last requests are written before the process exits', async () => {
    const res = await get('/last-one');
    res.resume();
    await new Promise((resolve) => res.once('end', resolve));
    await gateway.stop();
    const line = gateway.logs().find((l) => l.type === 'access' && l.path === '/last-one');
    assert.ok(line, 'the access line of the request answered just before SIGTERM');
    assert.equal(line.status, 200);
  });
});
