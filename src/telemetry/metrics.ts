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
  // Label children by route, method and status class, looked up once: prom-client's labels()
  // hashes the label values on every call, which showed in the request path's profile.
  type Child = { inc(): void; observe?(v: number): void };
  const children = new Map<string, { count: Child; duration: { observe(v: number): void } }>();
  function observeRequest(route: string, method: string, status: string, seconds: number): void {
    const key = `${route}\u0000${method}\u0000${status}`;
    let child = children.get(key);
    if (!child) {
      if (children.size > 10_000) children.clear(); // bounded: methods are client-chosen
      child = { count: requests.labels(route, method, status), duration: duration.labels(route) };
      children.set(key, child);
    }
    child.count.inc();
    child.duration.observe(seconds);
  }
  return {
    registry,
    requests,
    duration,
    upstreamErrors,
    planInfo,
    reloads,
    shadowDenials,
    observeRequest,
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
