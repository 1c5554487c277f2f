import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { formatConfigError } from '../config/errors.ts';
import { loadConfig, parseResources } from '../config/load.ts';
import { resolveControlPlane } from '../control-plane/options.ts';
import { demoIdpPort } from '../dev/demo-client.ts';
import { startDemoUpstream } from '../dev/demo-upstream.ts';
import type { GatewayRuntime } from '../gateway/runtime.ts';
import { startConnectedGateway } from '../gateway/connected/start.ts';
import { createLogger } from '../telemetry/logger.ts';
import { type AdminClient, adminClient, refusalMessage } from './admin-client.ts';
import { bootControlPlane } from './control-plane.ts';
import { exitOnStopSignals } from './signals.ts';

const quickstart = fileURLToPath(new URL('../../examples/quickstart/', import.meta.url));

/**
 * `gatehouse dev`: the demo identity provider, the demo upstream, a control plane (embedded SQLite
 * store in `--data-dir`) and a gateway connected to it, in one process. On a first start the
 * quickstart's resources are applied to the control plane; afterwards the store keeps what was
 * applied, and `gatehouse apply` changes what the gateway serves. `--config`, `--upstream-port`,
 * `--idp-port`, `--cp-port` and `--data-dir` run it elsewhere (the tests use free ports).
 */
export async function runDev(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string', multiple: true },
      'upstream-port': { type: 'string', default: '7001' },
      'idp-port': { type: 'string', default: String(demoIdpPort) },
      'cp-port': { type: 'string', default: '9400' },
      'data-dir': { type: 'string', default: '.gatehouse-dev' },
    },
  });
  const upstreamPort = Number(values['upstream-port']);
  const idpPort = Number(values['idp-port']);
  const cpPort = Number(values['cp-port']);
  const dataDir = resolve(values['data-dir']);
  const configPaths = values.config ?? [quickstart];
  const seed = loadConfig(configPaths);
  if (seed.errors.length > 0) {
    process.stderr.write(`${seed.errors.map(formatConfigError).join('\n')}\ndev not started\n`);
    return 1;
  }
  // Loaded here only: oidc-provider (and Koa under it) has no business in a `gatehouse gateway` process.
  const { startDemoIdp } = await import('../dev/demo-idp.ts');
  // The provider first: the gateway fetches its keys as it starts.
  const idp = await startDemoIdp(idpPort).catch((err: Error) => {
    process.stderr.write(`cannot start the demo identity provider on 127.0.0.1:${idpPort}: ${err.message}\n`);
    return null;
  });
  if (!idp) return 1;
  const upstream = await startDemoUpstream(upstreamPort).catch((err: Error) => {
    process.stderr.write(`cannot start the demo upstream on 127.0.0.1:${upstreamPort}: ${err.message}\n`);
    return null;
  });
  const stopDemos = () => {
    upstream?.close();
    void idp.close();
  };
  if (!upstream) {
    stopDemos();
    return 1;
  }
  const logger = createLogger();
  const adminToken = devAdminToken(dataDir);
  const cpUrl = `http://127.0.0.1:${cpPort}`;
  const cp = await startDevControlPlane(dataDir, cpPort, adminToken, logger);
  if (!cp.ok) {
    process.stderr.write(`cannot start the control plane on 127.0.0.1:${cpPort}: ${cp.message}\n`);
    stopDemos();
    return 1;
  }
  const adminConnection = adminClient({ server: cpUrl, token: adminToken });
  const admin = adminCaller(adminConnection);
  const gatewayDir = join(dataDir, 'gateway');
  let runtime: GatewayRuntime;
  try {
    const { gateway, namespace } = await seedOnce(admin, seed.resources);
    // A gateway registered before keeps its identity in its data dir; only a first start needs a token.
    const registered = existsSync(join(gatewayDir, 'identity', 'identity.json'));
    const bootstrapToken = registered
      ? undefined
      : (
          (await admin('POST', '/api/v1/bootstrap-tokens', { gateway, namespace, ttl: '10m' })) as {
            token: string;
          }
        ).token;
    const serving = Promise.withResolvers<GatewayRuntime>();
    await startConnectedGateway({
      controlPlaneUrl: cpUrl,
      dataDir: gatewayDir,
      logger,
      env: process.env,
      onServing: (r) => serving.resolve(r),
      ...(bootstrapToken ? { bootstrapToken } : {}),
    });
    runtime = await serving.promise;
  } catch (err) {
    process.stderr.write(`dev not started: ${(err as Error).message}\n`);
    stopDemos();
    await cp.running.close();
    await cp.store.close();
    return 1;
  } finally {
    await adminConnection.close();
  }
  const ports = runtime.ports();
  const gatewayUrl = `http://127.0.0.1:${ports.public}`;
  const token = `npx gatehouse token${idpPort === demoIdpPort ? '' : ` --idp ${idp.issuer}`}`;
  const tokenFile = join(dataDir, 'admin-token');
  process.stdout.write(
    [
      '',
      'Gatehouse dev is running:',
      `  gateway        ${gatewayUrl}`,
      `  admin          http://127.0.0.1:${ports.admin}  (/healthz /readyz /metrics /plan)`,
      `  control plane  ${cpUrl}  (admin API, /openapi.json; store in ${dataDir})`,
      `  upstream       http://127.0.0.1:${upstreamPort}  (demo API)`,
      `  idp            ${idp.issuer}  (demo identity provider: discovery, JWKS, tokens; demo only)`,
      '',
      'Try:',
      `  curl -i ${gatewayUrl}/hello`,
      `  curl -i ${gatewayUrl}/nope            # 404 problem+json`,
      `  curl -i '${gatewayUrl}/hello/../%2e%2e/hello'   # normalised before routing`,
      '',
      'A protected API (a JWT from the demo identity provider, with scope demo.read):',
      `  curl -i ${gatewayUrl}/orders   # 401: no token`,
      `  curl -i -H "Authorization: Bearer $(${token} --scope demo.read)" ${gatewayUrl}/orders   # 200`,
      `  curl -i -H "Authorization: Bearer $(${token} --scope demo.write)" ${gatewayUrl}/orders   # 403: scope missing`,
      '',
      'The gateway is managed by the control plane: change the config there and it follows.',
      `  export GATEHOUSE_SERVER=${cpUrl} GATEHOUSE_TOKEN=$(cat ${tokenFile})`,
      `  npx gatehouse get apirules`,
      `  npx gatehouse apply -f ${configPaths.map((p) => relative(process.cwd(), p) || '.').join(' -f ')}   # after editing; prints what changed`,
      `  curl -s -H "Authorization: Bearer $GATEHOUSE_TOKEN" ${cpUrl}/api/v1/gateways   # served version`,
      '',
      'Ctrl-C stops.',
      '',
    ].join('\n'),
  );
  process.once('exit', stopDemos);
  exitOnStopSignals(
    logger,
    () => runtime.plan.limits.drainTimeoutMs + 5_000,
    () =>
      runtime
        .shutdown()
        .then(() => cp.running.close())
        .then(() => cp.store.close()),
  );
  return -1;
}

/** The dev operator's admin token: made on the first start, kept (0600) in the data dir. */
function devAdminToken(dataDir: string): string {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, 'admin-token');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const token = `gha_${randomBytes(24).toString('base64url')}`;
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return token;
}

async function startDevControlPlane(
  dataDir: string,
  port: number,
  adminToken: string,
  logger: ReturnType<typeof createLogger>,
) {
  const sha256 = createHash('sha256').update(adminToken).digest('hex');
  // Written as the resource a user would write, and checked by the same loader.
  const yaml = `apiVersion: gatehouse.dev/v1
kind: ControlPlane
metadata: { name: dev }
spec:
  listen: { address: 127.0.0.1, port: ${port} }
  dataDir: .
  store: { backend: sqlite }
  security: { mode: jwt }
  operators:
    tokens: [{ name: dev, sha256: ${sha256}, roles: [{ namespace: "*", role: admin }] }]
`;
  const parsed = parseResources(yaml, join(dataDir, 'control-plane.yaml'));
  const resolved = parsed.errors.length === 0 ? resolveControlPlane(parsed.resources, process.env) : null;
  if (!resolved?.ok) {
    const errors = resolved && !resolved.ok ? resolved.errors : parsed.errors;
    return { ok: false as const, message: errors.map(formatConfigError).join('; ') };
  }
  return bootControlPlane(resolved.value, logger);
}

type AdminCall = (method: string, path: string, body?: unknown) => Promise<unknown>;

/** The dev operator's calls to its own control plane, through the admin CLI's client; a refusal throws. */
function adminCaller(client: AdminClient): AdminCall {
  return async (method, path, body) => {
    const answer = await client.request(method, path, body);
    if (answer.status < 200 || answer.status >= 300)
      throw new Error(`${method} ${path}: ${refusalMessage(answer, client.server, client.hasToken)}`);
    return answer.body;
  };
}

/**
 * Applies the example config to an empty control plane (a restart keeps what was applied since)
 * and names the Gateway the dev gateway registers as.
 */
async function seedOnce(
  admin: AdminCall,
  resources: ReturnType<typeof loadConfig>['resources'],
): Promise<{ gateway: string; namespace: string }> {
  const gateway = resources.find((r) => r.kind === 'Gateway');
  if (!gateway) throw new Error('the dev config holds no Gateway');
  const existing = (await admin('GET', '/api/v1/resources?kind=Gateway')) as { items: unknown[] };
  if (existing.items.length === 0) {
    const items = resources.map(({ source: _source, ...resource }) => resource);
    await admin('POST', '/api/v1/apply', { resources: items });
  }
  return { gateway: gateway.metadata.name, namespace: gateway.metadata.namespace };
}
