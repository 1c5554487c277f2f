import { dirname, isAbsolute, resolve } from 'node:path';
import type { Registry } from 'prom-client';
import { loadConfig } from '../config/load.ts';
import type { SubsystemCredentials } from '../control-plane/security/types.ts';
import type { Plan } from '../plan/types.ts';
import type { Logger } from '../telemetry/logger.ts';
import { createGatewayAnalytics } from './gateway-analytics.ts';
import type { EventShipper } from './shipper.ts';

/** Paths in the Gateway's analytics section are relative to the file that holds the Gateway. */
export function gatewayFileResolver(
  configPaths: readonly string[],
  gatewayName: string,
): (p: string) => string {
  const gateway = loadConfig(configPaths).resources.find(
    (r) => r.kind === 'Gateway' && r.metadata.name === gatewayName,
  );
  const base = gateway ? dirname(resolve(gateway.source.file)) : process.cwd();
  return (p) => (isAbsolute(p) ? p : resolve(base, p));
}

/**
 * The shipper for a starting gateway, or null when `spec.analytics` is absent or disabled. Runs once
 * per process: the analytics section is fixed at start. Throws TypeError on a section that cannot work.
 */
export function startGatewayAnalytics(options: {
  readonly plan: Plan;
  readonly planNow: () => Plan;
  readonly configPaths: readonly string[];
  readonly registry: Registry;
  readonly logger: Logger;
  readonly subsystemCredentials?: SubsystemCredentials;
}): EventShipper | null {
  const spec = options.plan.gateway.analytics;
  if (!spec?.enabled) return null;
  const log = (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string) =>
    options.logger[level](fields, message);
  return createGatewayAnalytics(spec, {
    gatewayName: options.plan.gatewayName,
    resolvePath: gatewayFileResolver(options.configPaths, options.plan.gatewayName),
    tokenIssuer: () => options.planNow().tokens,
    subsystemCredentials: options.subsystemCredentials,
    registry: options.registry,
    log,
  });
}
