import type { Registry } from 'prom-client';
import type { BackendFailure } from './types.ts';

/** Decisions of one rule's rate limits, counted by the policy in place (no label lookup per request). */
export interface RouteDecisions {
  allowed: number;
  limited: number;
  /** The backend could not decide and `onBackendFailure: open` admitted the request. */
  failedOpen: number;
  /** The backend could not decide and `onBackendFailure: closed` refused it (503). */
  failedClosed: number;
}

/** Most routes counted; routes are rule ids from the config, so this only bounds a pathological config. */
const maxRoutes = 100_000;

/**
 * `gatehouse_ratelimit_decisions_total{route, result}` and
 * `gatehouse_ratelimit_backend_errors_total{backend, reason}`: plain numbers, turned into series
 * when scraped (as telemetry/request-stats.ts does, for the same reason: no hashing per request).
 */
export class RateLimitMetrics {
  readonly #routes = new Map<string, RouteDecisions>();
  readonly #backendErrors = new Map<string, { backend: string; reason: BackendFailure; value: number }>();
  readonly #spare: RouteDecisions = { allowed: 0, limited: 0, failedOpen: 0, failedClosed: 0 };

  /** The counters of one route, created on first use; the same object for the process's lifetime. */
  route(route: string): RouteDecisions {
    let counts = this.#routes.get(route);
    if (counts === undefined) {
      if (this.#routes.size >= maxRoutes) return this.#spare;
      counts = { allowed: 0, limited: 0, failedOpen: 0, failedClosed: 0 };
      this.#routes.set(route, counts);
    }
    return counts;
  }

  backendError(backend: string, reason: BackendFailure): void {
    const key = `${backend}\u0000${reason}`;
    const series = this.#backendErrors.get(key);
    if (series) series.value++;
    else this.#backendErrors.set(key, { backend, reason, value: 1 });
  }

  backendErrors(backend: string): number {
    let total = 0;
    for (const s of this.#backendErrors.values()) if (s.backend === backend) total += s.value;
    return total;
  }

  register(registry: Registry): void {
    const routes = this.#routes;
    const errors = this.#backendErrors;
    registry.registerMetric({
      name: 'gatehouse_ratelimit_decisions_total',
      get: () => {
        const values: Array<{ value: number; labels: Record<string, string> }> = [];
        for (const [route, c] of routes) {
          values.push({ value: c.allowed, labels: { route, result: 'allowed' } });
          values.push({ value: c.limited, labels: { route, result: 'limited' } });
          if (c.failedOpen) values.push({ value: c.failedOpen, labels: { route, result: 'failed_open' } });
          if (c.failedClosed)
            values.push({ value: c.failedClosed, labels: { route, result: 'failed_closed' } });
        }
        return {
          name: 'gatehouse_ratelimit_decisions_total',
          help:
            'Rate-limit decisions by rule and result (allowed, limited, and failed_open / failed_closed when ' +
            'the backend could not decide); one per rateLimit list that applies to a request.',
          type: 'counter',
          values,
          aggregator: 'sum',
        };
      },
    } as never);
    registry.registerMetric({
      name: 'gatehouse_ratelimit_backend_errors_total',
      get: () => ({
        name: 'gatehouse_ratelimit_backend_errors_total',
        help:
          'Rate-limit decisions a backend could not make, by backend and reason (unavailable: not connected, ' +
          'nothing sent; timeout: no answer in time; error).',
        type: 'counter',
        values: [...errors.values()].map((s) => ({
          value: s.value,
          labels: { backend: s.backend, reason: s.reason },
        })),
        aggregator: 'sum',
      }),
    } as never);
  }
}
