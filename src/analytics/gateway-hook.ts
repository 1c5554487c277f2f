import type { Registry } from 'prom-client';
import type { SubsystemCredentials } from '../control-plane/security/types.ts';
import type { Plan } from '../plan/types.ts';
import type { Logger } from '../telemetry/logger.ts';
import { createGatewayAnalytics } from './gateway-analytics.ts';
import type { EventShipper } from './shipper.ts';

/**
 * The shipper for a starting gateway, or null when `spec.analytics` is absent or disabled. Runs once
 * per process: the analytics section is fixed at start. Throws TypeError on a section that cannot work.
 */
export function startGatewayAnalytics(options: {
  readonly plan: Plan;
  readonly planNow: () => Plan;
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
    // Paths in the analytics section are relative to the file that holds the Gateway.
    resolvePath: options.plan.resolveGatewayPath,
    tokenIssuer: () => options.planNow().tokens,
    subsystemCredentials: options.subsystemCredentials,
    registry: options.registry,
    log,
  });
}
