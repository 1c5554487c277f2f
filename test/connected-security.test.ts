// Connected gateways over the two subsystem-security modes, with real processes only:
// - mtls: `gatehouse control-plane` on HTTPS certified by its own CA, two `gatehouse gateway
//   --control-plane https://… --ca … --token …` processes, short-lived client certificates renewed
//   while they stream, and a control-plane restart after the first certificates expired;
// - jwt: the same through a real nginx terminating TLS, with a control-plane restart behind it.

import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { makeCA } from './helpers/certs.ts';
import { httpRequest } from './helpers/http.ts';
import { skipWithoutNginx, startTlsNginx, type RunningNginx } from './helpers/nginx.ts';
import { freePort, type RunningProcess, runCli, tempConfigDir } from './helpers/process.ts';
import { type EchoUpstream, startEchoUpstream } from './helpers/upstream.ts';

const adminToken = 'connected-security-admin-token-0123';

// ---------------------------------------------------------------------------------------------
// Resources and calls

function gatewayResource(name: string, port: number, adminPort: number) {
  return {
    apiVersion: 'gatehouse.dev/v1',
    kind: 'Gateway',
    metadata: { name, namespace: 'default' },
    spec: {
      mode: 'ingress',
      listeners: [{ name: 'public', address: '127.0.0.1', port, protocol: 'http' }],
      admin: { port: adminPort, address: '127.0.0.1' },
      accessLog: { enabled: false },
      shutdown: { drainTimeout: '1s' },
    },
  };
}

function upstreamResource(url: string) {
  return {
    apiVersion: 'gatehouse.dev/v1',
    kind: 'Upstream',
    metadata: { name: 'echo', namespace: 'default' },
    spec: { targets: [{ url }] },
  };
}

function sharedRule(paths: string[]) {
  return {
    apiVersion: 'gatehouse.dev/v1',
    kind: 'APIRule',
    metadata: { name: 'shared', namespace: 'default' },
    spec: {
      gatewaySelector: { matchLabels: { fleet: 'main' } },
      upstream: 'echo',
      rules: paths.map((path) => ({ path, methods: ['GET'], authenticate: [{ noAuth: {} }] })),
    },
  };
}

interface Answer {
  status: number;
  contentType: string;
  text: string;
  body: Record<string, unknown>;
}

async function call(
  url: string,
  dispatcher: Agent,
  options: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const res = await request(url, {
    method: (options.method ?? 'GET') as 'GET',
    dispatcher,
    headers: {
      ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...options.headers,
    },
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.body.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {}
  return { status: res.statusCode, contentType: String(res.headers['content-type'] ?? ''), text, body };
}

/** The admin API as the test operator, at `base`, with `dispatcher` (which knows the CA to trust). */
function adminClient(base: () => string, dispatcher: Agent) {
  const admin = (method: string, path: string, body?: unknown) =>
    call(`${base()}${path}`, dispatcher, {
      method,
      body,
      headers: { authorization: `Bearer ${adminToken}` },
    });
  return {
    admin,
    apply: async (...resources: unknown[]) => {
      const applied = await admin('POST', '/api/v1/apply', { resources });
      assert.equal(applied.status, 200, applied.text);
      return applied.body.revision as number;
    },
    bootstrapToken: async (gateway: string) => {
      const created = await admin('POST', '/api/v1/bootstrap-tokens', {
        gateway,
        namespace: 'default',
        labels: { fleet: 'main' },
      });
      assert.equal(created.status, 201, created.text);
      return created.body.token as string;
    },
    gateways: async () =>
      (await admin('GET', '/api/v1/gateways')).body.items as Array<Record<string, unknown>>,
  };
}

/** Polls `probe` until it returns a value, for at most `ms`; a bounded wait, not a timing assertion. */
async function eventually<T>(what: string, probe: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`not seen within ${ms} ms: ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

async function status(port: number, path: string): Promise<number> {
  return (await httpRequest(port, path)).status;
}

function serves(port: number, path: string, ms?: number) {
  return eventually(
    `127.0.0.1:${port} serves ${path}`,
    async () => ((await status(port, path)) === 200 ? true : undefined),
    ms,
  );
}

function controlPlaneYaml(options: {
  port: number;
  dataDir: string;
  security: string;
  publicUrl?: string;
}): string {
  const sha = createHash('sha256').update(adminToken).digest('hex');
  return `apiVersion: gatehouse.dev/v1
kind: ControlPlane
metadata: { name: cp }
spec:
  listen: { address: 127.0.0.1, port: ${options.port} }
${options.publicUrl ? `  publicUrl: ${options.publicUrl}\n` : ''}  dataDir: ${options.dataDir}
  operators:
    tokens: [{ name: ci, sha256: ${sha}, roles: [{ namespace: '*', role: admin }] }]
  security: ${options.security}
`;
}

async function startControlPlaneProcess(configPath: string): Promise<RunningProcess> {
  const proc = runCli(['control-plane', '--config', configPath]);
  try {
    await proc.waitFor(/"msg":"control plane ready"/, 20_000);
  } catch (err) {
    await proc.stop('SIGKILL');
    throw err;
  }
  return proc;
}

function count(proc: RunningProcess, msg: string): number {
  return proc.logs().filter((l) => l.msg === msg).length;
}

/** Resolves once the process has logged `msg` more than `seen` times. */
function nthLog(proc: RunningProcess, msg: string, seen: number, ms: number) {
  return eventually(`${msg} (#${seen + 1})`, async () => (count(proc, msg) > seen ? true : undefined), ms);
}

// ---------------------------------------------------------------------------------------------
// mtls

describe('mtls: connected gateways with client certificates from the control plane CA', () => {
  // Short, so that renewals happen during the test (after 2/3: ~8 s) and the first certificates
  // expire before the control plane restarts.
  const certificateLifetimeMs = 12_000;
  let root: string;
  let cpPort: number;
  let cpConfig: string;
  let cp: RunningProcess | null = null;
  let upstream: EchoUpstream;
  let caPem: string;
  let caFile: string;
  let trusting: Agent;
  const names = ['edge-a', 'edge-b'] as const;
  const gw: Record<string, { port: number; admin: number; dataDir: string; proc: RunningProcess | null }> =
    {};
  const cpUrl = () => `https://127.0.0.1:${cpPort}`;
  let client: ReturnType<typeof adminClient>;

  const certOf = (name: string) =>
    new X509Certificate(readFileSync(join(gw[name]!.dataDir, 'identity', 'cert.pem'), 'utf8'));

  before(async () => {
    root = tempConfigDir('gatehouse-mtls-');
    cpPort = await freePort();
    upstream = await startEchoUpstream();
    cpConfig = join(root, 'control-plane.yaml');
    writeFileSync(
      cpConfig,
      controlPlaneYaml({
        port: cpPort,
        dataDir: join(root, 'cp-data'),
        security: `{ mode: mtls, certificateLifetime: ${certificateLifetimeMs / 1000}s }`,
      }),
    );
    cp = await startControlPlaneProcess(cpConfig);

    // The CA is fetched once without verification (as an operator bootstraps trust), then every
    // call verifies the control plane's listener against it.
    const blind = new Agent({ connect: { rejectUnauthorized: false } });
    const fetched = await call(`${cpUrl()}/v1/ca.pem`, blind);
    await blind.close();
    assert.equal(fetched.status, 200);
    caPem = fetched.text;
    assert.match(caPem, /^-----BEGIN CERTIFICATE-----/);
    caFile = join(root, 'ca.pem');
    writeFileSync(caFile, caPem);
    trusting = new Agent({ connect: { ca: caPem } });
    client = adminClient(cpUrl, trusting);

    for (const name of names)
      gw[name] = { port: await freePort(), admin: await freePort(), dataDir: join(root, name), proc: null };
    await client.apply(
      upstreamResource(upstream.url),
      ...names.map((n) => gatewayResource(n, gw[n]!.port, gw[n]!.admin)),
      sharedRule(['/v1']),
    );
    for (const name of names) {
      const token = await client.bootstrapToken(name);
      const g = gw[name]!;
      g.proc = runCli([
        'gateway',
        '--control-plane',
        cpUrl(),
        '--data-dir',
        g.dataDir,
        '--ca',
        caFile,
        '--token',
        token,
      ]);
    }
    for (const name of names) await gw[name]!.proc!.waitFor(/"msg":"gateway ready"/, 20_000);
  });

  after(async () => {
    for (const g of Object.values(gw)) await g.proc?.stop();
    await cp?.stop();
    await trusting?.close();
    await upstream?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('the listener is certified by the CA it serves at /v1/ca.pem, and only by it', async () => {
    const ca = new X509Certificate(caPem);
    assert.ok(ca.ca, 'ca.pem is a CA certificate');
    const res = await call(`${cpUrl()}/v1/ca.pem`, trusting);
    assert.equal(res.status, 200);
    const systemTrust = new Agent();
    await assert.rejects(call(`${cpUrl()}/v1/ca.pem`, systemTrust), /certificate/i);
    await systemTrust.close();
  });

  it('each gateway registered, holds a client certificate from that CA, streams and serves', async () => {
    const ca = new X509Certificate(caPem);
    for (const name of names) {
      const cert = certOf(name);
      assert.ok(cert.verify(ca.publicKey), `${name}'s certificate is signed by the control plane CA`);
      assert.match(
        cert.subjectAltName ?? '',
        new RegExp(`URI:spiffe://gatehouse/ns/default/gateway/${name}/gw_`),
      );
      assert.ok(cert.keyUsage?.includes('1.3.6.1.5.5.7.3.2'), 'clientAuth');
      await serves(gw[name]!.port, '/v1');
    }
    const list = await eventually('both gateways connected and in sync', async () => {
      const items = await client.gateways();
      return names.every(
        (n) => items.find((g) => g.name === n)?.connected && items.find((g) => g.name === n)?.inSync,
      )
        ? items
        : undefined;
    });
    assert.equal(list.length, 2);
  });

  it('an applied change reaches both gateways over the mTLS stream', async () => {
    const revision = await client.apply(sharedRule(['/v1', '/v2']));
    for (const name of names) await serves(gw[name]!.port, '/v2');
    await eventually(`both report serving v${revision}`, async () => {
      const items = await client.gateways();
      return names.every((n) => items.find((g) => g.name === n)?.servedVersion === revision)
        ? true
        : undefined;
    });
  });

  it('no client certificate, or one from another CA, gets nothing from the gateway routes', async () => {
    const id = /\/(gw_[^/\s,]+)/.exec(certOf('edge-a').subjectAltName ?? '')![1]!;
    mkdirSync(join(root, 'intruder'));
    const intruderCa = makeCA(join(root, 'intruder'), 'intruder');
    // The same SPIFFE id as the real edge-a, signed by a CA the control plane does not trust.
    const forged = intruderCa.issue({
      cn: 'edge-a',
      uris: [`spiffe://gatehouse/ns/default/gateway/edge-a/${id}`],
      client: true,
    });
    const anonymous = trusting;
    const foreign = new Agent({ connect: { ca: caPem, cert: forged.cert, key: forged.key } });
    const real = new Agent({
      connect: {
        ca: caPem,
        cert: readFileSync(join(gw['edge-a']!.dataDir, 'identity', 'cert.pem'), 'utf8'),
        key: readFileSync(join(gw['edge-a']!.dataDir, 'identity', 'key.pem'), 'utf8'),
      },
    });
    try {
      const routes: Array<{ method: string; path: string; body?: unknown }> = [
        { method: 'GET', path: '/v1/gateways/self/config' },
        { method: 'GET', path: '/v1/gateways/self/config/stream' },
        { method: 'POST', path: '/v1/gateways/self/status', body: { state: 'serving', version: 1 } },
        { method: 'GET', path: '/v1/identity' },
        { method: 'POST', path: '/v1/renew', body: { publicKey: 'x' } },
      ];
      for (const [who, agent] of [
        ['no certificate', anonymous],
        ['another CA', foreign],
      ] as const) {
        for (const route of routes) {
          const res = await call(`${cpUrl()}${route.path}`, agent, route);
          assert.equal(res.status, 401, `${who}: ${route.method} ${route.path}: ${res.text}`);
          assert.match(res.contentType, /^application\/problem\+json/);
          assert.equal(res.body.code, 'unauthenticated');
          assert.doesNotMatch(res.text, /resources|snapshot|BEGIN CERTIFICATE/);
        }
      }
      // The control: the gateway's own certificate is accepted on the same route.
      const own = await call(`${cpUrl()}/v1/gateways/self/config`, real);
      assert.equal(own.status, 200, own.text);
      assert.ok(Array.isArray(own.body.resources), own.text);
    } finally {
      await foreign.close();
      await real.close();
    }
  });

  it('renewed certificates: after the first ones expired, a restarted control plane is reconnected and caught up', async () => {
    const first = Object.fromEntries(names.map((n) => [n, certOf(n)]));
    // Renewal of every gateway, each during its open stream.
    for (const name of names)
      await nthLog(gw[name]!.proc!, 'gateway certificate renewed', 0, certificateLifetimeMs + 10_000);
    for (const name of names) {
      assert.notEqual(certOf(name).serialNumber, first[name]!.serialNumber, `${name} has a new certificate`);
      assert.equal(await status(gw[name]!.port, '/v2'), 200, `${name} serves across the renewal`);
    }
    // Until the first certificates have expired: from now on only a renewed one opens a stream.
    const lastExpiry = Math.max(...names.map((n) => first[n]!.validToDate.getTime()));
    await eventually(
      'the first certificates expired',
      async () => (Date.now() > lastExpiry + 1000 ? true : undefined),
      certificateLifetimeMs + 5_000,
    );
    const connectedBefore = Object.fromEntries(
      names.map((n) => [n, count(gw[n]!.proc!, 'connected to the control plane')]),
    );
    const disconnectedBefore = Object.fromEntries(
      names.map((n) => [n, count(gw[n]!.proc!, 'disconnected from the control plane')]),
    );

    cp!.child.kill('SIGKILL');
    await cp!.exited;
    for (const name of names)
      await nthLog(gw[name]!.proc!, 'disconnected from the control plane', disconnectedBefore[name]!, 10_000);
    for (const name of names)
      assert.equal(await status(gw[name]!.port, '/v2'), 200, `${name} serves while away`);
    cp = await startControlPlaneProcess(cpConfig);
    const revision = await client.apply(sharedRule(['/v1', '/v2', '/v3']));

    // Reconnection waits out each gateway's backoff (short after a short outage).
    for (const name of names) {
      await nthLog(gw[name]!.proc!, 'connected to the control plane', connectedBefore[name]!, 30_000);
      await serves(gw[name]!.port, '/v3', 15_000);
    }
    const items = await eventually(`both report serving v${revision}`, async () => {
      const list = await client.gateways();
      return names.every((n) => list.find((g) => g.name === n)?.servedVersion === revision)
        ? list
        : undefined;
    });
    for (const g of items) assert.equal(g.inSync, true);
    for (const name of names) {
      assert.ok(
        certOf(name).validToDate.getTime() > lastExpiry,
        `${name} holds a certificate newer than the first`,
      );
      assert.doesNotMatch(gw[name]!.proc!.stdout(), /gateway certificate expired/);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// jwt through nginx

describe('jwt: a connected gateway through nginx terminating TLS', { skip: skipWithoutNginx() }, () => {
  let root: string;
  let cpPort: number;
  let nginxPort: number;
  let cpConfig: string;
  let cp: RunningProcess | null = null;
  let nginx: RunningNginx | null = null;
  let upstream: EchoUpstream;
  let lb: Agent;
  let client: ReturnType<typeof adminClient>;
  let gateway: RunningProcess | null = null;
  let gwPort: number;
  const publicUrl = () => `https://127.0.0.1:${nginxPort}`;

  before(async () => {
    root = tempConfigDir('gatehouse-jwt-lb-');
    cpPort = await freePort();
    nginxPort = await freePort();
    upstream = await startEchoUpstream();
    const lbCa = makeCA(root, 'load-balancer');
    cpConfig = join(root, 'control-plane.yaml');
    writeFileSync(
      cpConfig,
      controlPlaneYaml({
        port: cpPort,
        dataDir: join(root, 'cp-data'),
        publicUrl: publicUrl(),
        security: '{ mode: jwt }',
      }),
    );
    cp = await startControlPlaneProcess(cpConfig);
    const prefix = join(root, 'nginx');
    mkdirSync(prefix);
    nginx = await startTlsNginx({
      prefix,
      listenPort: nginxPort,
      upstreamPort: cpPort,
      cert: lbCa.issue({ cn: '127.0.0.1', ips: ['127.0.0.1'], dns: ['localhost'] }),
    });
    lb = new Agent({ connect: { ca: lbCa.cert } });
    client = adminClient(publicUrl, lb);
    gwPort = await freePort();
    await client.apply(
      upstreamResource(upstream.url),
      gatewayResource('edge-lb', gwPort, await freePort()),
      sharedRule(['/v1']),
    );
    const token = await client.bootstrapToken('edge-lb');
    gateway = runCli([
      'gateway',
      '--control-plane',
      publicUrl(),
      '--data-dir',
      join(root, 'edge-lb'),
      '--ca',
      lbCa.certPath,
      '--token',
      token,
    ]);
    await gateway.waitFor(/"msg":"gateway ready"/, 20_000);
  });

  after(async () => {
    await gateway?.stop();
    await nginx?.stop();
    await cp?.stop();
    await lb?.close();
    await upstream?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('registers and streams its config through nginx, and serves an applied change', async () => {
    await serves(gwPort, '/v1');
    const identity = JSON.parse(readFileSync(join(root, 'edge-lb', 'identity', 'identity.json'), 'utf8'));
    assert.equal(identity.mode, 'jwt');
    assert.equal(identity.controlPlaneUrl, publicUrl());
    const revision = await client.apply(sharedRule(['/v1', '/v2']));
    await serves(gwPort, '/v2');
    const item = await eventually(`edge-lb reports serving v${revision}`, async () =>
      (await client.gateways()).find((g) => g.name === 'edge-lb' && g.servedVersion === revision),
    );
    assert.equal(item.connected, true);
    assert.equal(item.inSync, true);
  });

  it('the control plane killed and restarted behind nginx: the gateway reconnects and catches up', async () => {
    const connectedBefore = count(gateway!, 'connected to the control plane');
    cp!.child.kill('SIGKILL');
    await cp!.exited;
    await gateway!.waitFor(/"msg":"disconnected from the control plane"/, 10_000);
    // nginx answers 502 meanwhile; the gateway keeps serving its snapshot.
    const down = await call(`${publicUrl()}/v1/ca.pem`, lb);
    assert.equal(down.status, 502);
    assert.equal(await status(gwPort, '/v2'), 200);

    cp = await startControlPlaneProcess(cpConfig);
    const revision = await client.apply(sharedRule(['/v1', '/v2', '/v3']));
    await nthLog(gateway!, 'connected to the control plane', connectedBefore, 30_000);
    await serves(gwPort, '/v3', 15_000);
    await eventually(`edge-lb reports serving v${revision} again`, async () =>
      (await client.gateways()).find((g) => g.name === 'edge-lb' && g.servedVersion === revision && g.inSync),
    );
    assert.match(gateway!.stdout(), /config stream refused: HTTP 502/);
  });
});
