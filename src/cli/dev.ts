import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startDemoUpstream } from '../dev/demo-upstream.ts';
import { startGatewayProcess } from './gateway.ts';

const quickstart = fileURLToPath(new URL('../../examples/quickstart/', import.meta.url));

/**
 * `gatehouse dev`: the demo upstream and a gateway on examples/quickstart, in one process.
 * `--config` and `--upstream-port` run it on another config (the tests use free ports).
 */
export async function runDev(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string', multiple: true },
      'upstream-port': { type: 'string', default: '7001' },
    },
  });
  const upstreamPort = Number(values['upstream-port']);
  const upstream = await startDemoUpstream(upstreamPort).catch((err: Error) => {
    process.stderr.write(`cannot start the demo upstream on 127.0.0.1:${upstreamPort}: ${err.message}\n`);
    return null;
  });
  if (!upstream) return 1;
  const runtime = await startGatewayProcess(values.config ?? [quickstart], undefined, true);
  if (!runtime) {
    upstream.close();
    return 1;
  }
  const ports = runtime.ports();
  process.stdout.write(
    [
      '',
      'Gatehouse dev is running:',
      `  gateway   http://127.0.0.1:${ports.public}`,
      `  admin     http://127.0.0.1:${ports.admin}  (/healthz /readyz /metrics /plan)`,
      `  upstream  http://127.0.0.1:${upstreamPort}  (demo API)`,
      '',
      'Try:',
      `  curl -i http://127.0.0.1:${ports.public}/hello`,
      `  curl -i http://127.0.0.1:${ports.public}/nope            # 404 problem+json`,
      `  curl -i 'http://127.0.0.1:${ports.public}/hello/../%2e%2e/hello'   # normalised before routing`,
      '',
      `Edit ${values.config?.join(', ') ?? `${quickstart}gateway.yaml`} and the gateway reloads. Ctrl-C stops.`,
      '',
    ].join('\n'),
  );
  process.once('exit', () => upstream.close());
  return -1;
}
