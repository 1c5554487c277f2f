import assert from 'node:assert/strict';
import { request } from 'node:http';
import { Agent } from 'node:http';
import { after, before, test } from 'node:test';
import { httpRequest } from './helpers/http.ts';
import {
  freePort,
  type RunningProcess,
  startGateway,
  tempConfigDir,
  writeConfig,
} from './helpers/process.ts';
import { type EchoUpstream, startEchoUpstream } from './helpers/upstream.ts';

let upstream: EchoUpstream;

before(async () => {
  upstream = await startEchoUpstream((req, res) => {
    if (req.url.includes('slow')) {
      setTimeout(() => res.end('finished'), 1500);
      return true;
    }
    return undefined;
  });
});
after(() => upstream.close());

function gatewayYaml(port: number, admin: number, drain = '10s') {
  return `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, address: 127.0.0.1, port: ${port} }]
  admin: { port: ${admin} }
  shutdown: { drainTimeout: ${drain} }
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: echo }
spec: { targets: [{ url: ${upstream.url} }] }
`;
}

function rulesYaml(version: number, valid: boolean) {
  return `apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: api }
spec:
  gateway: edge
  upstream: ${valid ? 'echo' : 'missing'}
  rules:
    - path: /v/{**}
      authenticate: [{ noAuth: {} }]
    - path: /only-in-${version}
      authenticate: [{ noAuth: {} }]
`;
}

function get(port: number, path: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

test('reload under load: 20 config changes (valid and invalid), every request answered, none dropped', async () => {
  const dir = tempConfigDir();
  const port = await freePort();
  const admin = await freePort();
  writeConfig(dir, 'gateway.yaml', gatewayYaml(port, admin));
  writeConfig(dir, 'rules.yaml', rulesYaml(0, true));
  const gw: RunningProcess = await startGateway([dir]);
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  try {
    let stop = false;
    const statuses: number[] = [];
    const failures: unknown[] = [];
    const clients = Array.from({ length: 8 }, async () => {
      // Bounded: at most 20 000 requests per client, and it stops when the changes are done.
      for (let i = 0; i < 20_000 && !stop; i++) {
        try {
          statuses.push(await get(port, `/v/${i}`, agent));
        } catch (err) {
          failures.push(err);
        }
      }
    });
    let applied = 0;
    let rejected = 0;
    for (let change = 1; change <= 20; change++) {
      const valid = change % 4 !== 0;
      writeConfig(dir, 'rules.yaml', rulesYaml(change, valid));
      const line = await gw.waitFor(/"msg":"config (reloaded|rejected)[^"]*"/, 5000).catch(() => null);
      // Each change produces exactly one log line; wait for the count to move on.
      await waitUntil(() => countReloadLines(gw) >= change, 5000);
      if (valid) applied++;
      else rejected++;
      assert.ok(line !== null);
      if (valid)
        assert.equal((await httpRequest(port, `/only-in-${change}`)).status, 200, `change ${change} applied`);
      else
        assert.equal(
          (await httpRequest(port, `/only-in-${change}`)).status,
          404,
          `invalid change ${change} not applied`,
        );
    }
    stop = true;
    await Promise.all(clients);
    assert.deepEqual(failures, [], 'no request failed at the connection level');
    assert.ok(statuses.length > 100, `enough traffic during the changes (${statuses.length})`);
    assert.deepEqual([...new Set(statuses)], [200], 'every request answered by the old or the new plan');
    const plan = (await httpRequest(admin, '/plan')).json<{
      reloads: { applied: number; rejected: number };
    }>();
    assert.equal(plan.reloads.applied, applied);
    assert.equal(plan.reloads.rejected, rejected);
    const rejection = gw.logs().find((l) => l.msg === 'config rejected: the previous plan keeps serving');
    assert.match(
      JSON.stringify(rejection?.errors),
      /rules\.yaml:6:\d+: spec\.upstream: no Upstream named missing/,
    );
  } finally {
    agent.destroy();
    await gw.stop();
  }
});

function countReloadLines(gw: RunningProcess): number {
  return gw.logs().filter((l) => typeof l.msg === 'string' && /^config (reloaded|rejected)/.test(l.msg))
    .length;
}

async function waitUntil(condition: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('SIGHUP reloads; SIGTERM drains requests in flight before exiting', async () => {
  const dir = tempConfigDir();
  const port = await freePort();
  writeConfig(dir, 'gateway.yaml', gatewayYaml(port, await freePort()));
  writeConfig(dir, 'rules.yaml', rulesYaml(0, true));
  const gw = await startGateway([dir], ['--no-watch']);
  writeConfig(dir, 'rules.yaml', rulesYaml(1, true));
  assert.equal((await httpRequest(port, '/only-in-1')).status, 404, 'no watch: nothing changes by itself');
  gw.child.kill('SIGHUP');
  await gw.waitFor(/"msg":"config reloaded"/);
  assert.equal((await httpRequest(port, '/only-in-1')).status, 200);

  const inFlight = httpRequest(port, '/v/slow');
  await waitUntil(() => upstream.requests.some((r) => r.url === '/v/slow'), 5000);
  gw.child.kill('SIGTERM');
  const res = await inFlight;
  assert.equal(res.status, 200);
  assert.equal(res.body, 'finished');
  const exit = await gw.exited;
  assert.equal(exit.code, 0);
  await assert.rejects(httpRequest(port, '/v/after'), /ECONNREFUSED/);
});

test('the drain timeout bounds shutdown', async () => {
  const dir = tempConfigDir();
  const port = await freePort();
  writeConfig(dir, 'gateway.yaml', gatewayYaml(port, await freePort(), '200ms'));
  writeConfig(dir, 'rules.yaml', rulesYaml(0, true));
  const gw = await startGateway([dir], ['--no-watch']);
  const inFlight = httpRequest(port, '/v/slow-too').catch((err: Error) => err);
  await waitUntil(() => upstream.requests.some((r) => r.url === '/v/slow-too'), 5000);
  gw.child.kill('SIGTERM');
  const exit = await gw.exited;
  assert.equal(exit.code, 0);
  assert.ok((await inFlight) instanceof Error, 'the unfinished request was cut at the drain deadline');
  assert.ok(gw.logs().some((l) => l.msg === 'drain timeout: closing remaining connections'));
});
