import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import { httpRequest } from './helpers/http.ts';
import {
  freePort,
  type RunningProcess,
  repoRoot,
  runCli,
  tempConfigDir,
  writeConfig,
} from './helpers/process.ts';

test('examples/quickstart validates', async () => {
  const proc = runCli(['validate', join(repoRoot, 'examples/quickstart')]);
  assert.equal((await proc.exited).code, 0, proc.stderr());
});

/** `gatehouse token` as a reader of the quickstart runs it; the token, or the failed process. */
async function demoToken(idp: string, scope?: string): Promise<string> {
  const proc = runCli(['token', '--idp', idp, ...(scope ? ['--scope', scope] : [])]);
  const { code } = await proc.exited;
  assert.equal(code, 0, proc.stderr());
  const token = proc.stdout().trim();
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'one JWT, alone on stdout');
  return token;
}

describe('gatehouse dev serves the quickstart', () => {
  let dev: RunningProcess;
  let port: number;
  let admin: number;
  let idp: string;
  let dir: string;
  let dataDir: string;
  let cpPort: number;
  let devArgs: string[];

  before(async () => {
    port = await freePort();
    admin = await freePort();
    const upstream = await freePort();
    const idpPort = await freePort();
    idp = `http://127.0.0.1:${idpPort}`;
    const yaml = readFileSync(join(repoRoot, 'examples/quickstart/gateway.yaml'), 'utf8')
      .replace('port: 8080', `port: ${port}`)
      .replace('port: 9901', `port: ${admin}`)
      .replace('127.0.0.1:7001', `127.0.0.1:${upstream}`)
      .replace('http://127.0.0.1:7002', idp);
    assert.notEqual(yaml.indexOf(`port: ${port}`), -1, 'the example still has the ports this test replaces');
    assert.notEqual(yaml.indexOf(`issuer: ${idp}`), -1, 'the example still names the demo identity provider');
    dir = tempConfigDir();
    writeConfig(dir, 'gateway.yaml', yaml);
    dataDir = tempConfigDir('gatehouse-dev-data-');
    cpPort = await freePort();
    devArgs = [
      'dev',
      '--config',
      dir,
      '--upstream-port',
      String(upstream),
      '--idp-port',
      String(idpPort),
      '--cp-port',
      String(cpPort),
      '--data-dir',
      dataDir,
    ];
    dev = runCli(devArgs);
    await dev.waitFor(/Gatehouse dev is running/, 30_000);
    await dev.waitFor(/Ctrl-C stops/);
  });
  after(async () => {
    await dev?.stop();
  });

  test('public routes: demo API behind the gateway, 404 and normalisation', async () => {
    assert.match(dev.stdout(), new RegExp(`curl -i http://127\\.0\\.0\\.1:${port}/hello`));
    const hello = await httpRequest(port, '/hello');
    assert.equal(hello.status, 200);
    assert.equal(hello.json().message, 'Hello from behind Gatehouse');
    const echo = await httpRequest(port, '/echo/a/../b?x=1');
    assert.equal(echo.json().path, '/echo/b?x=1');
    assert.equal((await httpRequest(port, '/nope')).json().code, 'route_not_found');
    assert.equal((await httpRequest(admin, '/readyz')).status, 200);
  });

  test('it prints the three curl lines of the protected API', () => {
    const out = dev.stdout();
    const orders = `http://127\\.0\\.0\\.1:${port}/orders`;
    const token = `npx gatehouse token --idp ${idp.replaceAll('.', '\\.')}`;
    assert.match(out, new RegExp(`curl -i ${orders} +# 401`));
    assert.match(out, new RegExp(`\\$\\(${token} --scope demo\\.read\\)" ${orders} +# 200`));
    assert.match(out, new RegExp(`\\$\\(${token} --scope demo\\.write\\)" ${orders} +# 403`));
  });

  test('protected /orders: 401 without a token, 200 with demo.read, 403 without it', async () => {
    const none = await httpRequest(port, '/orders');
    assert.equal(none.status, 401);
    assert.equal(none.json().code, 'unauthenticated');

    const reader = await demoToken(idp, 'demo.read');
    const claims = decodeJwt(reader);
    assert.equal(claims.iss, idp);
    assert.equal(claims.aud, 'urn:gatehouse:demo-api');
    assert.equal(claims.scope, 'demo.read');
    const ok = await httpRequest(port, '/orders', { headers: { authorization: `Bearer ${reader}` } });
    assert.equal(ok.status, 200, ok.body);
    const seen = ok.json<{ path: string; headers: Record<string, string> }>();
    assert.equal(seen.path, '/orders');
    assert.equal(seen.headers['x-user-id'], 'gatehouse-demo');
    assert.equal(seen.headers['x-scopes'], 'demo.read');

    const writer = await demoToken(idp, 'demo.write');
    const forbidden = await httpRequest(port, '/orders', { headers: { authorization: `Bearer ${writer}` } });
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.json().code, 'insufficient_scope');
    assert.match(String(forbidden.headers['www-authenticate']), /^Bearer error="insufficient_scope"/);

    const noScope = await demoToken(idp);
    const alsoForbidden = await httpRequest(port, '/orders', {
      headers: { authorization: `Bearer ${noScope}` },
    });
    assert.equal(alsoForbidden.status, 403);

    const tampered = `${reader.slice(0, -4)}AAAA`;
    const bad = await httpRequest(port, '/orders', { headers: { authorization: `Bearer ${tampered}` } });
    assert.equal(bad.status, 401);
    assert.equal(bad.json().code, 'invalid_token');
  });

  test('a change applied to the control plane reaches the gateway, and survives a restart', async () => {
    const env = {
      GATEHOUSE_SERVER: `http://127.0.0.1:${cpPort}`,
      GATEHOUSE_TOKEN: readFileSync(join(dataDir, 'admin-token'), 'utf8').trim(),
    };
    assert.match(dev.stdout(), /npx gatehouse apply -f /);
    assert.equal((await httpRequest(port, '/applied')).status, 404);
    const extra = `apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: applied }
spec:
  gateway: quickstart
  upstream: demo
  rules: [{ path: /applied, methods: [GET], authenticate: [{ noAuth: {} }] }]
`;
    writeConfig(dir, 'applied.yaml', extra);
    const apply = runCli(['apply', '-f', dir], env);
    assert.equal((await apply.exited).code, 0, apply.stderr());
    assert.match(apply.stdout(), /apirule\/applied created/i);
    const deadline = Date.now() + 10_000;
    let status = 0;
    while (Date.now() < deadline && status !== 200) {
      status = (await httpRequest(port, '/applied')).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(status, 200, 'the gateway serves the applied rule');

    // Restart on the same data dir: the store and the gateway's identity are kept.
    await dev.stop();
    dev = runCli(devArgs);
    await dev.waitFor(/Ctrl-C stops/, 30_000);
    assert.equal((await httpRequest(port, '/applied')).status, 200);
    assert.equal((await httpRequest(port, '/hello')).status, 200);
  });
});

test('gatehouse token says what is wrong when no demo identity provider answers', async () => {
  const closed = await freePort();
  const proc = runCli(['token', '--scope', 'demo.read', '--idp', `http://127.0.0.1:${closed}`]);
  assert.equal((await proc.exited).code, 1);
  assert.equal(proc.stdout(), '');
  assert.match(
    proc.stderr(),
    /cannot read the discovery document of http:\/\/127\.0\.0\.1:\d+: .*gatehouse dev/,
  );
});
