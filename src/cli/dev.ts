import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { demoIdpPort } from '../dev/demo-client.ts';
import { startDemoUpstream } from '../dev/demo-upstream.ts';
import { startGatewayProcess } from './gateway.ts';

const quickstart = fileURLToPath(new URL('../../examples/quickstart/', import.meta.url));

/**
 * `gatehouse dev`: the demo identity provider, the demo upstream and a gateway on
 * examples/quickstart, in one process. `--config`, `--upstream-port` and `--idp-port` run it on
 * another config (the tests use free ports; the config's IdentityProvider must name the same port).
 */
export async function runDev(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string', multiple: true },
      'upstream-port': { type: 'string', default: '7001' },
      'idp-port': { type: 'string', default: String(demoIdpPort) },
    },
  });
  const upstreamPort = Number(values['upstream-port']);
  const idpPort = Number(values['idp-port']);
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
  if (!upstream) {
    await idp.close();
    return 1;
  }
  const runtime = await startGatewayProcess(values.config ?? [quickstart], undefined, true);
  if (!runtime) {
    upstream.close();
    await idp.close();
    return 1;
  }
  const ports = runtime.ports();
  const gateway = `http://127.0.0.1:${ports.public}`;
  const token = `npx gatehouse token${idpPort === demoIdpPort ? '' : ` --idp ${idp.issuer}`}`;
  process.stdout.write(
    [
      '',
      'Gatehouse dev is running:',
      `  gateway   ${gateway}`,
      `  admin     http://127.0.0.1:${ports.admin}  (/healthz /readyz /metrics /plan)`,
      `  upstream  http://127.0.0.1:${upstreamPort}  (demo API)`,
      `  idp       ${idp.issuer}  (demo identity provider: discovery, JWKS, tokens; demo only)`,
      '',
      'Try:',
      `  curl -i ${gateway}/hello`,
      `  curl -i ${gateway}/nope            # 404 problem+json`,
      `  curl -i '${gateway}/hello/../%2e%2e/hello'   # normalised before routing`,
      '',
      'A protected API (a JWT from the demo identity provider, with scope demo.read):',
      `  curl -i ${gateway}/orders   # 401: no token`,
      `  curl -i -H "Authorization: Bearer $(${token} --scope demo.read)" ${gateway}/orders   # 200`,
      `  curl -i -H "Authorization: Bearer $(${token} --scope demo.write)" ${gateway}/orders   # 403: scope missing`,
      '',
      `Edit ${values.config?.join(', ') ?? `${quickstart}gateway.yaml`} and the gateway reloads. Ctrl-C stops.`,
      '',
    ].join('\n'),
  );
  process.once('exit', () => {
    upstream.close();
    void idp.close();
  });
  return -1;
}
