import { parseArgs } from 'node:util';
import { ConfigInvalidError, formatConfigError } from '../config/errors.ts';
import { GatewayRuntime } from '../gateway/runtime.ts';
import { createLogger } from '../telemetry/logger.ts';

/** Starts a gateway and wires process signals: SIGHUP reloads, SIGTERM/SIGINT drain and stop. */
export async function startGatewayProcess(
  configPaths: string[],
  gatewayName: string | undefined,
  watch: boolean,
) {
  const logger = createLogger();
  let runtime: GatewayRuntime;
  try {
    runtime = await GatewayRuntime.start({ configPaths, gatewayName, logger, watch, env: process.env });
  } catch (err) {
    if (err instanceof ConfigInvalidError) {
      process.stderr.write(
        `${err.errors.map(formatConfigError).join('\n')}\ngateway not started: configuration is invalid\n`,
      );
    } else {
      process.stderr.write(`gateway not started: ${(err as Error).message}\n`);
    }
    logger.flush();
    return null;
  }
  process.on('SIGHUP', () => runtime.reload('SIGHUP'));
  const stop = (signal: string) => {
    logger.info({ signal }, 'shutting down');
    // A last bound, whatever hangs (a log write to a stdout nobody reads, a stuck socket).
    setTimeout(() => process.exit(1), runtime.plan.limits.drainTimeoutMs + 5_000).unref();
    runtime.shutdown().then(
      () => {
        logger.flush();
        process.exit(0);
      },
      (err) => {
        logger.error({ err }, 'shutdown failed');
        logger.flush();
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  logger.info(
    { plan: runtime.plan.version, gateway: runtime.plan.gatewayName, ports: runtime.ports() },
    'gateway ready',
  );
  return runtime;
}

export async function runGateway(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string', short: 'c', multiple: true },
      gateway: { type: 'string' },
      'no-watch': { type: 'boolean', default: false },
    },
  });
  if (!values.config?.length) {
    process.stderr.write('usage: gatehouse gateway --config <file|dir>... [--gateway <name>] [--no-watch]\n');
    return 2;
  }
  const runtime = await startGatewayProcess(values.config, values.gateway, !values['no-watch']);
  return runtime ? -1 : 1;
}
