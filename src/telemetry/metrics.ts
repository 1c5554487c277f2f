import { Counter, Gauge, Registry } from 'prom-client';
import { RequestStats } from './request-stats.ts';

/**
 * Every Prometheus metric the gateway exports, declared in one place (see docs/metrics.md).
 * Label values are bounded: routes are rule ids from the config, never raw paths.
 */
export function createGatewayMetrics() {
  const registry = new Registry();
  const requestStats = new RequestStats();
  requestStats.register(registry);
  const upstreamErrors = new Counter({
    name: 'gatehouse_upstream_errors_total',
    help: 'Upstream calls that failed, by upstream and kind (connect, reset, timeout, bad_response).',
    labelNames: ['upstream', 'kind'] as const,
    registers: [registry],
  });
  const planInfo = new Gauge({
    name: 'gatehouse_plan_info',
    help: 'The plan being served: 1 for its version.',
    labelNames: ['version'] as const,
    registers: [registry],
  });
  const reloads = new Counter({
    name: 'gatehouse_plan_reloads_total',
    help: 'Config reloads, by result (applied, rejected).',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  // Read when scraped, from whoever counts requests: nothing to do per request.
  let inFlightSource: () => number = () => 0;
  new Gauge({
    name: 'gatehouse_requests_in_flight',
    help: 'Requests being handled.',
    registers: [registry],
    collect() {
      this.set(inFlightSource());
    },
  });
  const shadowDenials = new Counter({
    name: 'gatehouse_shadow_denials_total',
    help: 'Denials a shadow-mode Policy would have answered with, by Policy, rule and error code.',
    labelNames: ['policy', 'route', 'code'] as const,
    registers: [registry],
  });
  return {
    registry,
    upstreamErrors,
    planInfo,
    reloads,
    shadowDenials,
    /** One answered request: counted and its latency observed (see RequestStats). */
    observeRequest: (route: string, method: string, status: string, seconds: number) =>
      requestStats.observe(route, method, status, seconds),
    setInFlightSource(source: () => number) {
      inFlightSource = source;
    },
  };
}

export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;

export function statusClass(status: number): string {
  return status >= 500
    ? '5xx'
    : status >= 400
      ? '4xx'
      : status >= 300
        ? '3xx'
        : status >= 200
          ? '2xx'
          : '1xx';
}
