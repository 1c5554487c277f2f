import { mkdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type ClientOptions,
  ControlPlaneCallError,
  type GatewayCredentials,
  loadGatewayCredentials,
  registerGateway,
} from '../../control-plane/security/client.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { GatewayRuntime } from '../runtime.ts';
import { backoffDelay, defaultBackoff } from './backoff.ts';
import { ConnectedGateway } from './connected-gateway.ts';

export interface ConnectedStartOptions {
  controlPlaneUrl: string;
  /** Only needed the first time: afterwards the identity kept in `dataDir` is used. */
  bootstrapToken?: string;
  dataDir: string;
  /** CA certificate (PEM file) that verifies the control plane's server certificate. */
  caFile?: string;
  logger: Logger;
  env?: Readonly<Record<string, string | undefined>>;
  onServing?: (runtime: GatewayRuntime) => void;
}

export class ConnectedStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConnectedStartError';
  }
}

/**
 * Gets the gateway's credentials — from the data directory, or by registering with the bootstrap
 * token (retried with backoff while the control plane cannot be reached; a refused token is final)
 * — and starts the connected gateway.
 */
export async function startConnectedGateway(options: ConnectedStartOptions): Promise<ConnectedGateway> {
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const credentials = await credentialsFor(options);
  options.logger.info(
    {
      gateway: credentials.identity.id,
      gatewayName: `${credentials.identity.namespace}/${credentials.identity.name}`,
      labels: credentials.identity.labels,
    },
    'gateway identity',
  );
  return ConnectedGateway.start({
    controlPlaneUrl: options.controlPlaneUrl,
    dataDir: options.dataDir,
    credentials,
    logger: options.logger,
    env: options.env,
    onServing: options.onServing,
    onStop: () => credentials.close(),
  });
}

async function credentialsFor(options: ConnectedStartOptions): Promise<GatewayCredentials> {
  const log: ClientOptions['log'] = (level, fields, message) => options.logger[level](fields, message);
  const kept = await loadGatewayCredentials(options.dataDir, { log });
  if (kept) return kept;
  if (!options.bootstrapToken)
    throw new ConnectedStartError(
      `no gateway identity in ${options.dataDir}: register once with --token <bootstrap token>`,
    );
  for (let attempt = 0; ; attempt++) {
    try {
      return await registerGateway({
        controlPlaneUrl: options.controlPlaneUrl,
        bootstrapToken: options.bootstrapToken,
        dataDir: options.dataDir,
        log,
        ...(options.caFile !== undefined ? { caFile: options.caFile } : {}),
      });
    } catch (err) {
      // An answer from the control plane (token refused, bad request) will not change by retrying.
      if (!(err instanceof ControlPlaneCallError) || err.status !== null)
        throw new ConnectedStartError(`registration failed: ${(err as Error).message}`);
      const delay = backoffDelay(attempt, defaultBackoff);
      if (attempt === 0)
        options.logger.warn({ err: err.message }, 'control plane unreachable for registration: retrying');
      await sleep(delay);
    }
  }
}
