import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { httpRequest } from './helpers/http.ts';
import { freePort, repoRoot, runCli, tempConfigDir, writeConfig } from './helpers/process.ts';

test('examples/quickstart validates', async () => {
  const proc = runCli(['validate', join(repoRoot, 'examples/quickstart')]);
  assert.equal((await proc.exited).code, 0, proc.stderr());
});

test('gatehouse dev serves the quickstart: demo API behind the gateway, 404 and normalisation', async () => {
  const [port, admin, upstream] = [await freePort(), await freePort(), await freePort()];
  const yaml = readFileSync(join(repoRoot, 'examples/quickstart/gateway.yaml'), 'utf8')
    .replace('port: 8080', `port: ${port}`)
    .replace('port: 9901', `port: ${admin}`)
    .replace('127.0.0.1:7001', `127.0.0.1:${upstream}`);
  assert.notEqual(yaml.indexOf(`port: ${port}`), -1, 'the example still has the ports this test replaces');
  const dir = tempConfigDir();
  writeConfig(dir, 'gateway.yaml', yaml);
  const dev = runCli(['dev', '--config', dir, '--upstream-port', String(upstream)]);
  try {
    await dev.waitFor(/Gatehouse dev is running/);
    assert.match(dev.stdout(), new RegExp(`curl -i http://127\\.0\\.0\\.1:${port}/hello`));
    const hello = await httpRequest(port, '/hello');
    assert.equal(hello.status, 200);
    assert.equal(hello.json().message, 'Hello from behind Gatehouse');
    const echo = await httpRequest(port, '/echo/a/../b?x=1');
    assert.equal(echo.json().path, '/echo/b?x=1');
    assert.equal((await httpRequest(port, '/nope')).json().code, 'route_not_found');
    assert.equal((await httpRequest(admin, '/readyz')).status, 200);
  } finally {
    await dev.stop();
  }
});
