import { Counter, Gauge, Registry } from 'prom-client';
import { registerProcessMetrics } from './process-metrics.ts';
import { RequestStats } from './request-stats.ts';

/**
 * Every Prometheus metric the gateway exports, declared in one place (see docs/metrics.md).
 * Label values are bounded: routes are rule ids from the config, never raw paths.
 */
export function createGatewayMetrics() {
  const registry = new Registry();
  registerProcessMetrics(registry);
  const requestStats = new RequestStats();
  requestStats.register(registry);
  const upstreamErrors = new Counter({
    name: 'gatehouse_upstream_errors_total',
    help: 'Upstream calls that failed, by upstream and kind (connect, reset, timeout, bad_response; no_healthy_target: none was made).',
    labelNames: ['upstream', 'kind'] as const,
    registers: [registry],
  });
  const upstreamRetries = new Counter({
    name: 'gatehouse_upstream_retries_total',
    help: 'Retries of upstream calls, by upstream and reason (connect-failure, reset, timeout, 502, 503, 504).',
    labelNames: ['upstream', 'reason'] as const,
    registers: [registry],
  });
  const upstreamRetryBudgetExhausted = new Counter({
    name: 'gatehouse_upstream_retry_budget_exhausted_total',
    help: 'Retries not made because the upstream’s retry budget was spent, by upstream.',
    labelNames: ['upstream'] as const,
    registers: [registry],
  });
  // Read when scraped from the live upstreams: nothing to do per request.
  let upstreamTargets: () => readonly UpstreamTargetStatus[] = () => [];
  new Gauge({
    name: 'gatehouse_upstream_target_healthy',
    help: 'Whether a target gets traffic as far as health goes: 1 active checks passing and not ejected, 0 not.',
    labelNames: ['upstream', 'target'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const t of upstreamTargets()) this.labels(t.upstream, t.target).set(t.healthy ? 1 : 0);
    },
  });
  new Gauge({
    name: 'gatehouse_upstream_circuit_state',
    help: 'Circuit breaker of a target (upstreams with circuitBreaker): 0 closed, 1 open, 2 half-open.',
    labelNames: ['upstream', 'target'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const t of upstreamTargets())
        if (t.circuit !== null) this.labels(t.upstream, t.target).set(t.circuit);
    },
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
    upstreamRetries,
    upstreamRetryBudgetExhausted,
    planInfo,
    reloads,
    shadowDenials,
    /** One answered request: counted and its latency observed (see RequestStats). */
    observeRequest: (route: string, method: string, status: string, seconds: number) =>
      requestStats.observe(route, method, status, seconds),
    setInFlightSource(source: () => number) {
      inFlightSource = source;
    },
    setUpstreamTargetSource(source: () => readonly UpstreamTargetStatus[]) {
      upstreamTargets = source;
    },
  };
}

export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;

/** A target's health and circuit as the upstream gauges report them. */
export interface UpstreamTargetStatus {
  readonly upstream: string;
  readonly target: string;
  readonly healthy: boolean;
  /** 0 closed, 1 open, 2 half-open; null without a circuit breaker. */
  readonly circuit: number | null;
}

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
