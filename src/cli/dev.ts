import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startDemoUpstream } from '../dev/demo-upstream.ts';
import { startGatewayProcess } from './gateway.ts';

const quickstart = fileURLToPath(new URL('../../examples/quickstart/', import.meta.url));

/** `gatehouse dev`: the demo upstream and a gateway on examples/quickstart, in one process. */
export async function runDev(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', multiple: true } } });
  const upstream = await startDemoUpstream(7001).catch((err: Error) => {
    process.stderr.write(`cannot start the demo upstream on 127.0.0.1:7001: ${err.message}\n`);
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
      '  upstream  http://127.0.0.1:7001  (demo API)',
      '',
      'Try:',
      `  curl -i http://127.0.0.1:${ports.public}/hello`,
      `  curl -i http://127.0.0.1:${ports.public}/nope            # 404 problem+json`,
      `  curl -i 'http://127.0.0.1:${ports.public}/hello/../%2e%2e/hello'   # normalised before routing`,
      '',
      `Edit ${quickstart}gateway.yaml and the gateway reloads. Ctrl-C stops.`,
      '',
    ].join('\n'),
  );
  process.once('exit', () => upstream.close());
  return -1;
}
