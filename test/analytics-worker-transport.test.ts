// The upload worker (src/analytics/worker-transport.ts): batches compressed and POSTed off the main
// thread, against a real HTTP server on loopback.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { zstdDecompressSync } from 'node:zlib';
import { createWorkerHttpTransport } from '../src/analytics/worker-transport.ts';
import { freePort } from './helpers/process.ts';

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

test('the worker compresses with zstd, sends the headers given, and reports 202 as delivered', async () => {
  const seen: { encoding?: string; auth?: string; events?: string; json: string }[] = [];
  const server = createServer(async (req, res) => {
    const raw = await body(req);
    seen.push({
      encoding: req.headers['content-encoding'],
      auth: req.headers.authorization,
      events: req.headers['x-gatehouse-events'] as string,
      json: zstdDecompressSync(raw).toString('utf8'),
    });
    res.writeHead(seen.length === 1 ? 202 : 422).end('{"code":"invalid_events"}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/analytics/v1/events`;
  const transport = createWorkerHttpTransport({ url, timeoutMs: 2000 }, 'zstd');
  try {
    assert.equal(transport.compressesItself, true);
    const raw = Buffer.from('{"v":1,"gateway":"edge","events":[{"id":"a"}]}');
    const batch = { body: raw, encoding: 'identity', events: 1 };
    assert.deepEqual(await transport.send(batch, { authorization: 'Bearer t' }), { kind: 'delivered' });
    assert.deepEqual(seen[0], { encoding: 'zstd', auth: 'Bearer t', events: '1', json: raw.toString() });
    const refused = await transport.send(batch, {});
    assert.equal(refused.kind, 'rejected');
  } finally {
    await transport.close();
    server.close();
  }
});

test('ingestion unreachable: the worker answers retry, and the transport closes', async () => {
  const port = await freePort(); // nothing listens there
  const transport = createWorkerHttpTransport({ url: `http://127.0.0.1:${port}/`, timeoutMs: 1000 }, 'gzip');
  try {
    const result = await transport.send({ body: Buffer.from('{}'), encoding: 'identity', events: 0 }, {});
    assert.equal(result.kind, 'retry');
  } finally {
    await transport.close();
  }
});
