// The HTTP transport (src/analytics/http-transport.ts): batches POSTed as the shipper encoded them,
// against a real HTTP server on loopback.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { createHttpTransport } from '../src/analytics/http-transport.ts';
import { freePort } from './helpers/process.ts';

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

test('a zstd batch goes with its encoding and the headers given; 202 is delivered, 422 rejected', async () => {
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
  const transport = createHttpTransport({ url, timeoutMs: 2000 });
  try {
    const raw = Buffer.from('{"v":1,"gateway":"edge","events":[{"id":"a"}]}');
    const batch = { body: zstdCompressSync(raw), encoding: 'zstd', events: 1 };
    assert.deepEqual(await transport.send(batch, { authorization: 'Bearer t' }), { kind: 'delivered' });
    assert.deepEqual(seen[0], { encoding: 'zstd', auth: 'Bearer t', events: '1', json: raw.toString() });
    const refused = await transport.send(batch, {});
    assert.equal(refused.kind, 'rejected');
  } finally {
    await transport.close();
    server.close();
  }
});

test('ingestion unreachable: the send answers retry, and the transport closes', async () => {
  const port = await freePort(); // nothing listens there
  const transport = createHttpTransport({ url: `http://127.0.0.1:${port}/`, timeoutMs: 1000 });
  try {
    const result = await transport.send({ body: Buffer.from('{}'), encoding: 'identity', events: 0 }, {});
    assert.equal(result.kind, 'retry');
  } finally {
    await transport.close();
  }
});
