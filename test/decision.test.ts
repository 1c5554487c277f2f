// The decision endpoint (forward auth): a real gateway running examples/forward-auth/gateway.yaml,
// asked directly and through a real nginx running examples/forward-auth/nginx.conf (auth_request),
// with an echo upstream behind nginx.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, chmodSync, constants, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { delimiter, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { httpRequest, type SimpleResponse } from './helpers/http.ts';
import {
  freePort,
  type RunningProcess,
  repoRoot,
  runCli,
  startGateway,
  tempConfigDir,
  writeConfig,
} from './helpers/process.ts';
import { type EchoUpstream, startEchoUpstream } from './helpers/upstream.ts';

const example = join(repoRoot, 'examples/forward-auth');
const demoKey = 'demo-key-please-change';
const decide = '/_gatehouse/decide';

let upstream: EchoUpstream;
let gateway: RunningProcess;
let authzPort: number;
let adminPort: number;
let dir: string;

/** The example's gateway.yaml with this test's ports. */
function exampleGateway(): string {
  const yaml = readFileSync(join(example, 'gateway.yaml'), 'utf8');
  const out = yaml
    .replace('port: 9190', `port: ${authzPort}`)
    .replace('port: 9901', `port: ${adminPort}`)
    .replace('http://127.0.0.1:7001', upstream.url);
  for (const expected of [`port: ${authzPort}`, `port: ${adminPort}`, upstream.url])
    assert.ok(
      out.includes(expected),
      `examples/forward-auth/gateway.yaml no longer has what this test replaces (${expected})`,
    );
  return out;
}

before(async () => {
  upstream = await startEchoUpstream();
  [authzPort, adminPort] = [await freePort(), await freePort()];
  dir = tempConfigDir('gatehouse-decision-');
  gateway = await startGateway([writeConfig(dir, 'gateway.yaml', exampleGateway())]);
});

after(async () => {
  await gateway?.stop();
  await upstream?.close();
});

/** Asks the decision endpoint about a request, as a proxy would. */
function ask(
  forwarded: { method?: string; uri?: string; host?: string; proto?: string },
  headers: Record<string, string> = {},
  options: { path?: string; method?: string; localAddress?: string } = {},
): Promise<SimpleResponse> {
  const described: Record<string, string> = {};
  if (forwarded.method) described['x-forwarded-method'] = forwarded.method;
  if (forwarded.uri) described['x-forwarded-uri'] = forwarded.uri;
  if (forwarded.host) described['x-forwarded-host'] = forwarded.host;
  if (forwarded.proto) described['x-forwarded-proto'] = forwarded.proto;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: authzPort,
        path: options.path ?? decide,
        method: options.method ?? 'GET',
        localAddress: options.localAddress,
        headers: { connection: 'close', ...described, ...headers },
        agent: false,
        timeout: 15_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('decision endpoint, asked directly', () => {
  test('a public route: 200, empty body, the request id; nothing forwarded', async () => {
    const res = await ask(
      { method: 'GET', uri: '/public/a/../b?x=1', host: 'app.test', proto: 'https' },
      { 'x-request-id': 'from-proxy-1' },
    );
    assert.equal(res.status, 200, res.body);
    assert.equal(res.body, '');
    assert.equal(res.headers['x-request-id'], 'from-proxy-1');
    assert.equal(upstream.requests.length, 0);
  });

  test('a protected route: 401 without a key, 401 invalid_api_key with a wrong one, 200 with the right one', async () => {
    const none = await ask({ method: 'POST', uri: '/orders/1', host: 'app.test', proto: 'http' });
    assert.equal(none.status, 401);
    assert.equal(none.headers['content-type'], 'application/problem+json');
    assert.equal(none.json().code, 'unauthenticated');
    const wrong = await ask({ method: 'GET', uri: '/orders/1', host: 'app.test' }, { 'x-api-key': 'nope' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json().code, 'invalid_api_key');
    assert.ok(wrong.headers['www-authenticate'], 'the challenge is passed on');
    const right = await ask({ method: 'GET', uri: '/orders/1', host: 'app.test' }, { 'x-api-key': demoKey });
    assert.equal(right.status, 200, right.body);
    // What the rule's mutate stage would set upstream, for the proxy to copy.
    assert.equal(right.headers['x-user-id'], 'partner-a');
    assert.equal(right.headers['x-consumer-groups'], 'partners');
    assert.equal(upstream.requests.length, 0);
  });

  test('described like a proxied request: method, canonical path and the gateway’s refusals', async () => {
    assert.equal(
      (await ask({ method: 'DELETE', uri: '/orders/1', host: 'app.test' }, { 'x-api-key': demoKey })).status,
      404,
    );
    const notFound = await ask({ method: 'GET', uri: '/nope', host: 'app.test' });
    assert.equal(notFound.status, 404);
    assert.equal(notFound.json().code, 'route_not_found');
    assert.equal(
      (await ask({ method: 'GET', uri: '/public/a%2Fb', host: 'app.test' })).json().code,
      'bad_path',
    );
    assert.equal(
      (await ask({ method: 'GET', uri: 'http://evil.test/public/a', host: 'app.test' })).json().code,
      'bad_target',
    );
    assert.equal((await ask({ method: 'GET', uri: '/public/a', host: 'bad host' })).json().code, 'bad_host');
    assert.equal((await ask({ method: 'get it', uri: '/public/a', host: 'app.test' })).status, 400);
    assert.equal(
      (await ask({ method: 'GET', uri: '/public/a', host: 'app.test', proto: 'ftp' })).status,
      400,
    );
  });

  test('what is missing or repeated is refused, not guessed', async () => {
    const noUri = await ask({ method: 'GET', host: 'app.test' });
    assert.equal(noUri.status, 400);
    assert.match(noUri.json().detail as string, /X-Forwarded-Uri/);
    assert.equal((await ask({ method: 'GET', uri: '/public/a' })).json().code, 'bad_host');
    const twice = await new Promise<string>((resolve, reject) => {
      const socket = connect(authzPort, '127.0.0.1');
      let out = '';
      socket.on('data', (d) => (out += d));
      socket.on('end', () => resolve(out));
      socket.on('error', reject);
      socket.write(
        `GET ${decide} HTTP/1.1\r\nHost: gw\r\nX-Forwarded-Host: app.test\r\nX-Forwarded-Uri: /public/a\r\n` +
          'X-Forwarded-Uri: /orders/1\r\nConnection: close\r\n\r\n',
      );
    });
    assert.match(twice, /^HTTP\/1\.1 400 /);
    assert.match(twice, /duplicate_header/);
  });

  test('Envoy’s form: the original path after the decision path, the original method and Host', async () => {
    const ok = await ask({}, { host: 'app.test' }, { path: `${decide}/public/x?y=1`, method: 'PUT' });
    assert.equal(ok.status, 200, ok.body);
    const denied = await ask({}, { host: 'app.test' }, { path: `${decide}/orders/9` });
    assert.equal(denied.status, 401);
  });

  test('a peer that is not a trusted proxy gets 403, whatever it describes', async () => {
    const res = await ask(
      { method: 'GET', uri: '/public/a', host: 'app.test' },
      {},
      { localAddress: '127.0.0.2' },
    );
    assert.equal(res.status, 403);
    assert.equal(res.json().code, 'forbidden');
  });

  test('other paths on the decision listener are proxied as usual', async () => {
    const before = upstream.requests.length;
    const res = await httpRequest(authzPort, '/public/hello', { host: 'app.test' });
    assert.equal(res.status, 200);
    assert.equal(upstream.requests.length, before + 1);
    assert.equal(upstream.requests.at(-1)?.url, '/public/hello');
    assert.equal(
      (await httpRequest(authzPort, `${decide}x`)).status,
      404,
      'only the exact path is the endpoint',
    );
  });

  test('the decision is logged; the key is not', async () => {
    await ask({ method: 'GET', uri: '/orders/2', host: 'app.test' }, { 'x-api-key': demoKey });
    const line = await gateway.waitFor(/"type":"decision".*"path":"\/orders\/2"/);
    assert.match(line, /"status":200/);
    assert.doesNotMatch(gateway.stdout(), new RegExp(demoKey));
  });

  test('config: an unknown decision listener and a decision endpoint without trusted proxies are errors', async () => {
    const base = exampleGateway();
    const unknown = writeConfig(
      dir,
      'unknown.yaml',
      base.replace('decision: { listener: authz', 'decision: { listener: nope'),
    );
    const p1 = runCli(['validate', unknown]);
    assert.equal((await p1.exited).code, 1);
    assert.match(p1.stderr(), /spec\.decision\.listener: no listener named nope/);
    const untrusted = writeConfig(
      dir,
      'untrusted.yaml',
      base.replace('trustedProxies: [127.0.0.1/32]', 'trustedProxies: []'),
    );
    const p2 = runCli(['validate', untrusted]);
    assert.equal((await p2.exited).code, 1);
    assert.match(p2.stderr(), /trusted proxies only/);
  });
});

/** nginx on PATH or where Debian puts it; null when not installed. */
function findNginx(): string | null {
  const candidates = [
    ...(process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'nginx')),
    '/usr/sbin/nginx',
  ];
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return null;
}

const nginxBinary = findNginx();
const inCi = process.env.CI === 'true' || process.env.CI === '1';
const skipNginx =
  nginxBinary === null && !inCi
    ? 'nginx is not installed (Debian: apt-get install -y nginx); set CI=true to make this a failure'
    : false;

describe('forward auth behind a real nginx (examples/forward-auth/nginx.conf)', { skip: skipNginx }, () => {
  let nginx: ChildProcess | null = null;
  let nginxPort: number;
  let nginxOutput = '';

  before(async () => {
    if (nginxBinary === null)
      throw new Error(
        'nginx is required in CI and was not found on PATH or at /usr/sbin/nginx: apt-get install -y nginx',
      );
    nginxPort = await freePort();
    const prefix = tempConfigDir('gatehouse-nginx-');
    // nginx workers run as `nobody` when the tests run as root: let them into the prefix.
    chmodSync(prefix, 0o755);
    const conf = readFileSync(join(example, 'nginx.conf'), 'utf8')
      .replace('listen 127.0.0.1:8080;', `listen 127.0.0.1:${nginxPort};`)
      .replace('server 127.0.0.1:9190;', `server 127.0.0.1:${authzPort};`)
      .replace('server 127.0.0.1:7001;', `server 127.0.0.1:${upstream.port};`);
    for (const port of [nginxPort, authzPort, upstream.port])
      assert.ok(
        conf.includes(`127.0.0.1:${port};`),
        'examples/forward-auth/nginx.conf no longer has what this test replaces',
      );
    const confPath = join(prefix, 'nginx.conf');
    writeFileSync(confPath, conf);
    nginx = spawn(nginxBinary, ['-p', `${prefix}/`, '-c', confPath, '-e', 'stderr', '-g', 'daemon off;'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    nginx.stdout!.setEncoding('utf8').on('data', (d: string) => (nginxOutput += d));
    nginx.stderr!.setEncoding('utf8').on('data', (d: string) => (nginxOutput += d));
    // Bounded wait until nginx accepts connections.
    for (let i = 0; ; i++) {
      if (nginx.exitCode !== null) throw new Error(`nginx exited at start:\n${nginxOutput}`);
      if (await accepts(nginxPort)) break;
      if (i >= 150) throw new Error(`nginx did not start listening:\n${nginxOutput}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  after(async () => {
    if (!nginx || nginx.exitCode !== null) return;
    const exited = new Promise((resolve) => nginx!.once('exit', resolve));
    nginx.kill('SIGTERM');
    const timer = setTimeout(() => nginx!.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  });

  test('allowed: the request reaches the upstream with the identity headers the gateway decided on', async () => {
    const before = upstream.requests.length;
    const res = await httpRequest(nginxPort, '/orders/5?x=1', {
      host: 'app.test',
      headers: { 'x-api-key': demoKey, 'x-user-id': 'forged' },
    });
    assert.equal(res.status, 200, `${res.body}\n${nginxOutput}`);
    assert.equal(upstream.requests.length, before + 1);
    const seen = upstream.requests.at(-1)!;
    assert.equal(seen.url, '/orders/5?x=1');
    assert.equal(seen.headers['x-user-id'], 'partner-a', 'the identity, not what the client sent');
    assert.equal(seen.headers['x-consumer-groups'], 'partners');
    assert.equal(seen.headers['x-api-key'], undefined, 'nginx keeps the key from the upstream');
    assert.match(String(seen.headers['x-request-id']), /^[0-9a-f]{32}$/);
    // The decision was made for the same request id nginx gave the upstream.
    const line = await gateway.waitFor(
      new RegExp(`"type":"decision","requestId":"${seen.headers['x-request-id']}"`),
    );
    assert.equal(JSON.parse(line).route, 'default/app#1');
  });

  test('denied: no credential on a protected rule → nginx answers 401, the upstream sees nothing', async () => {
    const before = upstream.requests.length;
    const res = await httpRequest(nginxPort, '/orders/5', { host: 'app.test' });
    assert.equal(res.status, 401);
    const wrong = await httpRequest(nginxPort, '/orders/5', {
      host: 'app.test',
      headers: { 'x-api-key': 'nope' },
    });
    assert.equal(wrong.status, 401);
    assert.ok(wrong.headers['www-authenticate'], 'nginx passes the challenge on');
    assert.equal(upstream.requests.length, before);
  });

  test('no route: nginx turns the 404 into a 500 (auth_request knows only 2xx, 401, 403); the upstream sees nothing', async () => {
    const before = upstream.requests.length;
    const res = await httpRequest(nginxPort, '/nope', { host: 'app.test' });
    assert.equal(res.status, 500);
    const encoded = await httpRequest(nginxPort, '/public/a%2Fb', { host: 'app.test' });
    assert.equal(encoded.status, 500, 'refused by the gateway’s canonicalisation');
    assert.equal(upstream.requests.length, before);
  });

  test('a public route goes through unauthenticated, and a client-sent X-User-Id does not', async () => {
    const res = await httpRequest(nginxPort, '/public/a', {
      host: 'app.test',
      headers: { 'x-user-id': 'forged' },
    });
    assert.equal(res.status, 200);
    assert.equal(upstream.requests.at(-1)?.url, '/public/a');
    assert.equal(upstream.requests.at(-1)?.headers['x-user-id'], undefined);
  });
});

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
