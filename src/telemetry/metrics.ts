import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Every Prometheus metric the gateway exports, declared in one place (see docs/metrics.md).
 * Label values are bounded: routes are rule ids from the config, never raw paths.
 */
export function createGatewayMetrics() {
  const registry = new Registry();
  const requests = new Counter({
    name: 'gatehouse_requests_total',
    help: 'Requests answered, by rule, method and status class.',
    labelNames: ['route', 'method', 'status_class'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'gatehouse_request_duration_seconds',
    help: 'Time from request received to response finished, by rule.',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
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
  const inFlight = new Gauge({
    name: 'gatehouse_requests_in_flight',
    help: 'Requests being handled.',
    registers: [registry],
  });
  return { registry, requests, duration, upstreamErrors, planInfo, reloads, inFlight };
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
