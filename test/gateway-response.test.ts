// GatewayResponse (src/gateway/gateway-response.ts) on a real node:http server and client: a held
// end() keeps the response's last bytes back until releaseEnd(), a second end() meanwhile changes
// nothing, and a client that leaves while the end is held costs nothing when it is released.
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { type EndHolder, GatewayResponse } from '../src/gateway/gateway-response.ts';

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

/** A server whose every response holds its end; `held` gets each one as its end() is called. */
async function holdingServer(respond: (res: GatewayResponse) => void) {
  const held: Array<{ res: GatewayResponse; state: string }> = [];
  const waiters: Array<() => void> = [];
  const holder: EndHolder<string> = {
    ended(res, state) {
      held.push({ res, state });
      for (const w of waiters.splice(0)) w();
    },
  };
  const server = createServer({ ServerResponse: GatewayResponse }, (req, res) => {
    res.holdEnd(holder, `state of ${req.url}`);
    respond(res);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const nextHeld = async () => {
    while (held.length === 0) await new Promise<void>((resolve) => waiters.push(resolve));
    return held.shift()!;
  };
  return { port, nextHeld };
}

function get(port: number, path: string) {
  const chunks: Buffer[] = [];
  let ended = false;
  const req = request({ host: '127.0.0.1', port, path, agent: false });
  const done = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        ended = true;
        resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString() });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
  req.end();
  return { req, done, received: () => Buffer.concat(chunks).toString(), ended: () => ended };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('a held end() sends its bytes only once released; a second end() meanwhile changes nothing', {
  timeout: 10_000,
}, async () => {
  const { port, nextHeld } = await holdingServer((res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first part, ');
    res.end('last part');
  });
  const call = get(port, '/a');
  const { res, state } = await nextHeld();
  assert.equal(state, 'state of /a');
  await pause(100);
  assert.equal(call.received(), 'first part, ', 'the last bytes wait for the release');
  assert.equal(call.ended(), false);
  assert.equal(res.writableEnded, false);
  assert.equal(res.end('never sent'), res, 'a second end() while held is ignored');
  res.releaseEnd();
  assert.deepEqual(await call.done, { status: 200, body: 'first part, last part' });
  res.releaseEnd(); // nothing held any more: no second end, no error
});

test('end() with a callback only: the callback runs once the released end is flushed', {
  timeout: 10_000,
}, async () => {
  let flushed = 0;
  const { port, nextHeld } = await holdingServer((res) => {
    res.writeHead(204);
    res.end(() => flushed++);
  });
  const call = get(port, '/b');
  const { res } = await nextHeld();
  await pause(50);
  assert.equal(flushed, 0);
  res.releaseEnd();
  assert.equal((await call.done).status, 204);
  for (let i = 0; i < 50 && flushed === 0; i++) await pause(10);
  assert.equal(flushed, 1);
});

test('the client leaves while the end is held: the release sends nothing and throws nothing', {
  timeout: 10_000,
}, async () => {
  const { port, nextHeld } = await holdingServer((res) => {
    res.writeHead(200, { 'content-length': '10' });
    res.write('12345');
    res.end('67890');
  });
  const call = get(port, '/c');
  call.done.catch(() => {}); // the aborted response's error
  const { res } = await nextHeld();
  const closed = new Promise((resolve) => res.once('close', resolve));
  call.req.destroy();
  await closed;
  assert.equal(res.destroyed, true);
  res.releaseEnd();
  assert.equal(res.writableFinished, false);
});
