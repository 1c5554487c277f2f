import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { parseResources } from '../src/config/load.ts';
import { createDistributionModule } from '../src/control-plane/distribution/module.ts';
import { HttpProblem, type ControlPlaneModule, type Route } from '../src/control-plane/routes.ts';
import type { GatewayIdentity, SubsystemCredentials } from '../src/control-plane/security/types.ts';
import { openSqliteStore } from '../src/control-plane/store/sqlite.ts';
import type { ResourceInput, ResourceStore } from '../src/control-plane/store/types.ts';
import { ConnectedGateway } from '../src/gateway/connected/connected-gateway.ts';
import { readLastGood } from '../src/gateway/connected/snapshot-files.ts';
import { compilePlan } from '../src/plan/compile.ts';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Agent, request as undiciRequest } from 'undici';
import { httpRequest } from './helpers/http.ts';
import { freePort, type RunningProcess, runCli, tempConfigDir } from './helpers/process.ts';
import { type EchoUpstream, startEchoUpstream } from './helpers/upstream.ts';

// ---------------------------------------------------------------------------------------------
// Resources as an operator writes them.

function gatewayResource(name: string, port: number, adminPort: number, labels: Record<string, string> = {}) {
  return {
    apiVersion: 'gatehouse.dev/v1',
    kind: 'Gateway',
    metadata: { name, namespace: 'default', labels },
    spec: {
      mode: 'ingress',
      listeners: [{ name: 'public', address: '127.0.0.1', port, protocol: 'http' }],
      admin: { port: adminPort, address: '127.0.0.1' },
      accessLog: { enabled: false },
      shutdown: { drainTimeout: '1s' },
    },
  } as ResourceInput;
}

function upstreamResource(url: string): ResourceInput {
  return {
    apiVersion: 'gatehouse.dev/v1',
    kind: 'Upstream',
    metadata: { name: 'echo', namespace: 'default' },
    spec: { targets: [{ url }] },
  } as ResourceInput;
}

function apiRule(
  name: string,
  target: Record<string, unknown>,
  paths: string[],
  upstream = 'echo',
): ResourceInput {
  return {
    apiVersion: 'gatehouse.dev/v1',
    kind: 'APIRule',
    metadata: { name, namespace: 'default' },
    spec: {
      ...target,
      upstream,
      rules: paths.map((path) => ({ path, methods: ['GET'], authenticate: [{ noAuth: {} }] })),
    },
  } as ResourceInput;
}

// ---------------------------------------------------------------------------------------------
// Label selection in the compiler (local mode).

describe('APIRule gatewaySelector', () => {
  const base = `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge, labels: { tier: gold } }
spec:
  listeners: [{ name: public, port: 8080 }]
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: echo }
spec: { targets: [{ url: http://127.0.0.1:1 }] }
`;
  const rule = (name: string, target: string, path: string) => `---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: ${name} }
spec:
${target}
  upstream: echo
  rules: [{ path: ${path}, authenticate: [{ noAuth: {} }] }]
`;
  const compile = (text: string) => {
    const parsed = parseResources(text, 'a.yaml');
    assert.deepEqual(parsed.errors, []);
    return compilePlan(parsed.resources);
  };

  it('serves the rules whose selector matches the Gateway’s labels, and only those', () => {
    const result = compile(
      base +
        rule('gold', '  gatewaySelector: { matchLabels: { tier: gold } }', '/gold') +
        rule('silver', '  gatewaySelector: { matchLabels: { tier: silver } }', '/silver') +
        rule('named', '  gateway: edge', '/named'),
    );
    assert.ok(result.ok, JSON.stringify(!result.ok && result.errors));
    assert.deepEqual(result.plan.rules.map((r) => r.template).sort(), ['/gold', '/named']);
  });

  it('is a compile error with file:line when an APIRule gives both gateway and gatewaySelector, or neither', () => {
    const result = compile(
      base +
        rule('both', '  gateway: edge\n  gatewaySelector: { matchLabels: { tier: gold } }', '/both') +
        rule('neither', '  hosts: [a.example.com]', '/neither'),
    );
    assert.equal(result.ok, false);
    const lines = !result.ok ? result.errors.map((e) => `${e.file}:${e.line}: ${e.path}: ${e.message}`) : [];
    assert.deepEqual(lines, [
      'a.yaml:15: spec: give exactly one of gateway and gatewaySelector',
      'a.yaml:24: spec: give exactly one of gateway and gatewaySelector',
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// The distribution module and the gateway client against each other, through a minimal server
// that implements the module contract (src/control-plane/routes.ts): the routes' handlers are
// the real ones, the store is the real sqlite store, the gateways are real runtimes on loopback.
// The real control-plane server, registration and processes are exercised further below.

interface MiniServer {
  url: string;
  close(): Promise<void>;
}

async function startMiniServer(
  module: ControlPlaneModule,
  identities: Map<string, GatewayIdentity>,
): Promise<MiniServer> {
  const routes = module.routes();
  const match = (route: Route, method: string, path: string) => {
    if (route.method !== method) return null;
    const want = route.path.split('/');
    const have = path.split('/');
    if (want.length !== have.length) return null;
    const params: Record<string, string> = {};
    for (let i = 0; i < want.length; i++) {
      const w = want[i]!;
      if (w.startsWith('{')) params[w.slice(1, -1)] = decodeURIComponent(have[i]!);
      else if (w !== have[i]) return null;
    }
    return params;
  };
  const server: Server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    for (const route of routes) {
      const params = match(route, req.method ?? 'GET', url.pathname);
      if (!params) continue;
      const gateway = identities.get(String(req.headers['x-test-gateway']));
      if (route.auth.kind === 'gateway' && !gateway) {
        res.writeHead(401).end();
        return;
      }
      try {
        await route.handle({
          req,
          res,
          params,
          query: url.searchParams,
          gateway,
          operator: { name: 'test', roles: [{ namespace: '*', role: 'admin' }] },
          body: async () => {
            const chunks: Buffer[] = [];
            for await (const c of req) chunks.push(c as Buffer);
            return JSON.parse(Buffer.concat(chunks).toString('utf8'));
          },
          json: (value, status = 200) => {
            const text = JSON.stringify(value);
            res.writeHead(status, { 'content-type': 'application/json' }).end(text);
          },
        });
      } catch (err) {
        const code = err instanceof HttpProblem ? err.code : 'internal_error';
        res.writeHead(err instanceof HttpProblem ? 400 : 500, { 'content-type': 'application/problem+json' });
        res.end(JSON.stringify({ code, detail: (err as Error).message }));
      }
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function fixedCredentials(identity: GatewayIdentity): SubsystemCredentials {
  return {
    identity,
    headers: async () => ({ 'x-test-gateway': identity.id }),
    tls: () => ({}),
  };
}

/** A logger whose lines the test can read. */
function memoryLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: 'info', base: undefined }, sink), lines };
}

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out: ${what}${last ? ` (${(last as Error).message})` : ''}`);
}

async function status(port: number, path: string): Promise<number> {
  return (await httpRequest(port, path)).status;
}

describe('distribution module and connected gateways (in process)', () => {
  let store: ResourceStore;
  let upstream: EchoUpstream;
  let module: ControlPlaneModule;
  let mini: MiniServer;
  const dirs: string[] = [];
  const gateways: ConnectedGateway[] = [];
  const identities = new Map<string, GatewayIdentity>();
  const ports: Record<string, { port: number; admin: number }> = {};
  const logs: Record<string, Array<Record<string, unknown>>> = {};
  const dataDirs: Record<string, string> = {};
  const put = async (...resources: ResourceInput[]) => {
    const result = await store.write(
      resources.map((resource) => ({ op: 'put', resource })),
      { actor: 'test' },
    );
    assert.ok(result.ok);
    return result.revision;
  };
  const listGateways = async () => {
    const res = await fetch(`${mini.url}/api/v1/gateways`);
    return ((await res.json()) as { items: Array<Record<string, unknown>> }).items;
  };

  before(async () => {
    const dir = tempConfigDir('gatehouse-cp-');
    dirs.push(dir);
    store = await openSqliteStore({ path: join(dir, 'store.db') });
    upstream = await startEchoUpstream();
    for (const [name, labels] of [
      ['edge-a', { tier: 'gold' }],
      ['edge-b', {}],
    ] as const) {
      ports[name] = { port: await freePort(), admin: await freePort() };
      const id = `id-${name}`;
      identities.set(id, { id, name, namespace: 'default', labels: { ...labels } });
      await store.recordPut('gateways', id, identities.get(id));
    }
    await put(
      upstreamResource(upstream.url),
      gatewayResource('edge-a', ports['edge-a']!.port, ports['edge-a']!.admin),
      gatewayResource('edge-b', ports['edge-b']!.port, ports['edge-b']!.admin),
      apiRule('a-rules', { gateway: 'edge-a' }, ['/one']),
      apiRule('b-rules', { gateway: 'edge-b' }, ['/one']),
    );
    module = createDistributionModule({
      store,
      logger: pino({ level: 'silent' }),
      now: Date.now,
      publicUrl: 'http://127.0.0.1',
      dataDir: dir,
    });
    mini = await startMiniServer(module, identities);
    for (const identity of identities.values()) {
      const dataDir = tempConfigDir('gatehouse-gw-');
      dirs.push(dataDir);
      dataDirs[identity.name] = dataDir;
      const { logger, lines } = memoryLogger();
      logs[identity.name] = lines;
      gateways.push(
        await ConnectedGateway.start({
          controlPlaneUrl: mini.url,
          dataDir,
          credentials: fixedCredentials(identity),
          logger,
          backoff: { baseMs: 50, maxMs: 200 },
        }),
      );
    }
  });

  after(async () => {
    for (const g of gateways) await g.stop();
    await mini?.close();
    await module?.close?.();
    await upstream?.close();
    await store?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('every gateway serves its first snapshot, and a change reaches each', async () => {
    for (const name of ['edge-a', 'edge-b'])
      await eventually(`${name} serves /one`, async () =>
        (await status(ports[name]!.port, '/one')) === 200 ? true : undefined,
      );
    const revision = await put(apiRule('a-rules', { gateway: 'edge-a' }, ['/one', '/two']));
    await eventually('edge-a serves /two', async () =>
      (await status(ports['edge-a']!.port, '/two')) === 200 ? true : undefined,
    );
    assert.equal(await status(ports['edge-b']!.port, '/two'), 404, 'edge-b is not selected by a-rules');
    const items = await eventually('edge-a reports the new version', async () => {
      const list = await listGateways();
      return list.find((g) => g.name === 'edge-a')?.servedVersion === revision ? list : undefined;
    });
    const a = items.find((g) => g.name === 'edge-a')!;
    assert.equal(a.desiredVersion, revision);
    assert.equal(a.inSync, true);
    assert.equal(a.connected, true);
    assert.equal(a.state, 'serving');
    const b = items.find((g) => g.name === 'edge-b')!;
    assert.equal(b.inSync, true, 'edge-b’s snapshot did not change, so it stays in sync');
    assert.ok((b.desiredVersion as number) < revision);
    assert.equal(readLastGood(dataDirs['edge-a']!)?.version, revision, 'kept on disk');
  });

  it('a label-selected APIRule reaches only the gateways registered with that label', async () => {
    await put(apiRule('gold-rules', { gatewaySelector: { matchLabels: { tier: 'gold' } } }, ['/gold']));
    await eventually('edge-a serves /gold', async () =>
      (await status(ports['edge-a']!.port, '/gold')) === 200 ? true : undefined,
    );
    assert.equal(await status(ports['edge-b']!.port, '/gold'), 404);
  });

  it('a snapshot the gateway cannot compile is rejected, reported, and the old plan keeps serving', async () => {
    // Written to the store directly, past the control plane's validation: the gateway's own check.
    const revision = await put(apiRule('b-rules', { gateway: 'edge-b' }, ['/one', '/three'], 'missing'));
    await eventually('edge-b logs the rejection', async () =>
      logs['edge-b']!.some((l) => l.msg === `snapshot rejected v${revision}`) ? true : undefined,
    );
    assert.equal(await status(ports['edge-b']!.port, '/one'), 200, 'the previous plan still serves');
    assert.equal(await status(ports['edge-b']!.port, '/three'), 404);
    const b = await eventually('edge-b reports the rejection', async () => {
      const found = (await listGateways()).find((g) => g.name === 'edge-b');
      return found?.state === 'rejected' ? found : undefined;
    });
    assert.equal(b.rejectedVersion, revision);
    assert.equal(b.inSync, false);
    assert.match(String(b.lastError), /no Upstream named missing/);
    // Fixed: served again.
    await put(apiRule('b-rules', { gateway: 'edge-b' }, ['/one', '/three']));
    await eventually('edge-b serves /three', async () =>
      (await status(ports['edge-b']!.port, '/three')) === 200 ? true : undefined,
    );
  });

  it('deregistering a gateway closes its stream and removes it from the list', async () => {
    const res = await fetch(`${mini.url}/api/v1/gateways/id-edge-b`, { method: 'DELETE' });
    assert.equal(res.status, 200);
    identities.delete('id-edge-b');
    await eventually('edge-b disconnected', async () =>
      logs['edge-b']!.some((l) => l.msg === 'disconnected from the control plane') ? true : undefined,
    );
    assert.deepEqual(
      (await listGateways()).map((g) => g.name),
      ['edge-a'],
    );
    assert.equal(await status(ports['edge-b']!.port, '/one'), 200, 'it keeps serving its last snapshot');
    const again = await fetch(`${mini.url}/api/v1/gateways/id-edge-b`, { method: 'DELETE' });
    assert.equal(((await again.json()) as { code: string }).code, 'gateway_not_found');
  });
});

// ---------------------------------------------------------------------------------------------
// The real thing: `gatehouse control-plane` (sqlite in a temp dir, jwt security) and three
// `gatehouse gateway --control-plane` processes registered with bootstrap tokens.

describe('connected mode with real processes', () => {
  const adminToken = 'test-admin-token-0123456789';
  let root: string;
  let cpPort: number;
  let cpConfig: string;
  let cp: RunningProcess | null = null;
  let upstream: EchoUpstream;
  const names = ['edge-1', 'edge-2', 'edge-3'] as const;
  const labels: Record<string, Record<string, string>> = {
    'edge-1': { fleet: 'main', tier: 'gold' },
    'edge-2': { fleet: 'main', tier: 'gold' },
    'edge-3': { fleet: 'main', tier: 'silver' },
  };
  const gw: Record<string, { port: number; admin: number; dataDir: string; proc: RunningProcess | null }> =
    {};
  const cpUrl = () => `http://127.0.0.1:${cpPort}`;

  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${cpUrl()}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
  const apply = (...resources: ResourceInput[]) => admin('POST', '/api/v1/apply', { resources });
  const gatewaysList = async () =>
    (await admin('GET', '/api/v1/gateways')).body.items as Array<Record<string, unknown>>;
  const startCp = async () => {
    cp = runCli(['control-plane', '--config', cpConfig]);
    await cp.waitFor(/"msg":"control plane ready"/, 20_000);
  };
  const startGateway = async (name: string, token?: string) => {
    const g = gw[name]!;
    const args = ['gateway', '--control-plane', cpUrl(), '--data-dir', g.dataDir];
    if (token) args.push('--token', token);
    g.proc = runCli(args);
    await g.proc.waitFor(/"msg":"gateway ready"/, 20_000);
    return g.proc;
  };
  const servesEverywhere = async (path: string, on: readonly string[] = names, ms = 10_000) => {
    for (const name of on)
      await eventually(
        `${name} serves ${path}`,
        async () => ((await status(gw[name]!.port, path)) === 200 ? true : undefined),
        ms,
      );
  };
  const allServe = (version: number, on: readonly string[] = names) =>
    eventually(`gateways report serving v${version}`, async () => {
      const list = await gatewaysList();
      const ok = on.every((n) => list.find((g) => g.name === n)?.servedVersion === version);
      return ok ? list : undefined;
    });

  before(async () => {
    root = tempConfigDir('gatehouse-connected-');
    cpPort = await freePort();
    upstream = await startEchoUpstream();
    const sha = createHash('sha256').update(adminToken).digest('hex');
    cpConfig = join(root, 'control-plane.yaml');
    writeFileSync(
      cpConfig,
      `apiVersion: gatehouse.dev/v1
kind: ControlPlane
metadata: { name: cp }
spec:
  listen: { address: 127.0.0.1, port: ${cpPort} }
  dataDir: ${join(root, 'cp-data')}
  operators:
    tokens: [{ name: ci, sha256: ${sha}, roles: [{ namespace: '*', role: admin }] }]
  security: { mode: jwt }
`,
    );
    await startCp();
    for (const name of names)
      gw[name] = { port: await freePort(), admin: await freePort(), dataDir: join(root, name), proc: null };
    const applied = await apply(
      upstreamResource(upstream.url),
      ...names.map((n) => gatewayResource(n, gw[n]!.port, gw[n]!.admin)),
      apiRule('shared', { gatewaySelector: { matchLabels: { fleet: 'main' } } }, ['/v1']),
    );
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    for (const name of names) {
      const created = await admin('POST', '/api/v1/bootstrap-tokens', {
        gateway: name,
        namespace: 'default',
        labels: labels[name],
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      await startGateway(name, created.body.token as string);
    }
    await servesEverywhere('/v1');
  });

  after(async () => {
    for (const g of Object.values(gw)) await g.proc?.stop();
    await cp?.stop();
    await upstream?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('apply → every connected gateway serves the new version', async () => {
    const applied = await apply(
      apiRule('shared', { gatewaySelector: { matchLabels: { fleet: 'main' } } }, ['/v1', '/v2']),
    );
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    const revision = applied.body.revision as number;
    await servesEverywhere('/v2');
    const list = await allServe(revision);
    for (const g of list) {
      assert.equal(g.desiredVersion, revision);
      assert.equal(g.inSync, true);
      assert.equal(g.connected, true);
      assert.equal(typeof g.lastContact, 'string');
    }
  });

  it('an invalid change is refused at the control plane and no gateway changes', async () => {
    const before = await gatewaysList();
    const refused = await apply(
      apiRule('shared', { gatewaySelector: { matchLabels: { fleet: 'main' } } }, ['/v1', '/bad'], 'nowhere'),
    );
    assert.ok(refused.status >= 400 && refused.status < 500, `status ${refused.status}`);
    assert.match(JSON.stringify(refused.body), /no Upstream named nowhere/);
    const after = await gatewaysList();
    for (const g of after) {
      const was = before.find((b) => b.id === g.id)!;
      assert.equal(g.servedVersion, was.servedVersion);
      assert.equal(g.desiredVersion, was.desiredVersion);
    }
    for (const name of names) assert.equal(await status(gw[name]!.port, '/bad'), 404);
  });

  it('a label-selected APIRule reaches only the gateways registered with that label', async () => {
    const applied = await apply(
      apiRule('gold', { gatewaySelector: { matchLabels: { tier: 'gold' } } }, ['/gold']),
    );
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    await servesEverywhere('/gold', ['edge-1', 'edge-2']);
    await allServe(applied.body.revision as number, ['edge-1', 'edge-2']);
    const three = (await gatewaysList()).find((g) => g.name === 'edge-3')!;
    assert.equal(three.inSync, true);
    assert.ok(
      (three.desiredVersion as number) < (applied.body.revision as number),
      'edge-3’s snapshot did not change',
    );
    assert.equal(await status(gw['edge-3']!.port, '/gold'), 404);
  });

  it('the control plane killed under load: zero failed requests at the gateways', async () => {
    const agent = new Agent({ connections: 2, headersTimeout: 5_000, bodyTimeout: 5_000 });
    const failures: string[] = [];
    let ok = 0;
    const deadline = Date.now() + 3_000;
    const worker = async (w: number) => {
      for (let i = 0; Date.now() < deadline; i++) {
        const name = names[(i + w) % names.length]!;
        try {
          const res = await undiciRequest(`http://127.0.0.1:${gw[name]!.port}/v1`, { dispatcher: agent });
          await res.body.text();
          if (res.statusCode === 200) ok++;
          else failures.push(`${name}: ${res.statusCode}`);
        } catch (err) {
          failures.push(`${name}: ${(err as Error).message}`);
        }
      }
    };
    const load = Promise.all([0, 1, 2, 3].map(worker));
    await new Promise((r) => setTimeout(r, 700));
    cp!.child.kill('SIGKILL');
    await cp!.exited;
    await load;
    await agent.close();
    assert.deepEqual(failures, []);
    assert.ok(ok > 0);
    for (const name of names)
      await gw[name]!.proc!.waitFor(/"msg":"disconnected from the control plane"/, 10_000);
  });

  it('a gateway restarted while the control plane is down serves from its snapshot', async () => {
    await gw['edge-3']!.proc!.stop();
    const proc = await startGateway('edge-3');
    await proc.waitFor(/"msg":"serving the last good snapshot from disk"/);
    assert.equal(await status(gw['edge-3']!.port, '/v2'), 200);
    const ready = await httpRequest(gw['edge-3']!.admin, '/readyz');
    assert.equal(ready.status, 200);
  });

  it('control plane back: the gateways reconnect and catch up on a change made meanwhile', async () => {
    await startCp();
    // Applied as soon as the control plane answers, while the gateways are still backing off.
    const applied = await apply(
      apiRule('shared', { gatewaySelector: { matchLabels: { fleet: 'main' } } }, ['/v1', '/v2', '/v3']),
    );
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    // Reconnection waits out each gateway's backoff: up to 30 s (the cap) after a long outage.
    await servesEverywhere('/v3', names, 35_000);
    const list = await allServe(applied.body.revision as number);
    for (const g of list) assert.equal(g.inSync, true);
    for (const name of names) await gw[name]!.proc!.waitFor(/"msg":"connected to the control plane"/, 10_000);
  });
});
