import { parseArgs } from 'node:util';
import { ConfigInvalidError, formatConfigError } from '../config/errors.ts';
import type { ConnectedGateway } from '../gateway/connected/connected-gateway.ts';
import { ConnectedStartError, startConnectedGateway } from '../gateway/connected/start.ts';
import { GatewayRuntime } from '../gateway/runtime.ts';
import { exitOnStopSignals } from './signals.ts';
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
  exitOnStopSignals(
    logger,
    () => runtime.plan.limits.drainTimeoutMs + 5_000,
    () => runtime.shutdown(),
  );
  logger.info(
    { plan: runtime.plan.version, gateway: runtime.plan.gatewayName, ports: runtime.ports() },
    'gateway ready',
  );
  return runtime;
}

const gatewayUsage =
  'usage: gatehouse gateway --config <file|dir>... [--gateway <name>] [--no-watch]\n' +
  '       gatehouse gateway --control-plane <url> --data-dir <dir> [--token <bootstrap token>] [--ca <file>]\n';

/**
 * Connected mode: the config comes from the control plane; the last good snapshot in the data
 * directory is served at once and through control-plane outages. SIGHUP rebuilds from that snapshot.
 */
export async function startConnectedProcess(options: {
  controlPlaneUrl: string;
  dataDir: string;
  token?: string;
  caFile?: string;
}): Promise<ConnectedGateway | null> {
  const logger = createLogger();
  let gateway: ConnectedGateway;
  try {
    gateway = await startConnectedGateway({
      controlPlaneUrl: options.controlPlaneUrl,
      dataDir: options.dataDir,
      bootstrapToken: options.token,
      caFile: options.caFile,
      logger,
      env: process.env,
      onServing: (runtime) =>
        logger.info(
          { plan: runtime.plan.version, gateway: runtime.plan.gatewayName, ports: runtime.ports() },
          'gateway ready',
        ),
    });
  } catch (err) {
    const message = err instanceof ConnectedStartError ? err.message : (err as Error).stack;
    process.stderr.write(`gateway not started: ${message}\n`);
    logger.flush();
    return null;
  }
  process.on('SIGHUP', () => gateway.reloadLastGood('SIGHUP'));
  exitOnStopSignals(
    logger,
    () => (gateway.runtime?.plan.limits.drainTimeoutMs ?? 0) + 5_000,
    () => gateway.stop(),
  );
  return gateway;
}

export async function runGateway(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string', short: 'c', multiple: true },
      gateway: { type: 'string' },
      'no-watch': { type: 'boolean', default: false },
      'control-plane': { type: 'string' },
      token: { type: 'string' },
      'data-dir': { type: 'string' },
      ca: { type: 'string' },
    },
  });
  const controlPlaneUrl = values['control-plane'];
  if (controlPlaneUrl !== undefined) {
    if (values.config?.length || values.gateway !== undefined || !values['data-dir']) {
      process.stderr.write(
        `${gatewayUsage}--control-plane needs --data-dir and takes no --config or --gateway (the control plane gives both)\n`,
      );
      return 2;
    }
    const gateway = await startConnectedProcess({
      controlPlaneUrl,
      dataDir: values['data-dir'],
      token: values.token,
      caFile: values.ca,
    });
    return gateway ? -1 : 1;
  }
  if (!values.config?.length) {
    process.stderr.write(gatewayUsage);
    return 2;
  }
  const runtime = await startGatewayProcess(values.config, values.gateway, !values['no-watch']);
  return runtime ? -1 : 1;
}
