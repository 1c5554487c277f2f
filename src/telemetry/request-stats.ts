import type { Registry } from 'prom-client';

const bucketBounds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface RouteHistogram {
  readonly counts: Float64Array; // per bucket (not cumulative); the last slot is +Inf
  sum: number;
  count: number;
}

/** Most label combinations kept; methods are client-chosen, so the set must be bounded. */
const maxSeries = 10_000;

/**
 * Requests by route, method and status class, and their latency by route: counted in plain maps
 * per request and turned into Prometheus series only when scraped. prom-client's labelled
 * counters and histograms hash the label values on every call, which cost ~4 µs of CPU per
 * request in bench/ profiles; this costs a map lookup and a short bucket scan.
 */
export class RequestStats {
  readonly #requests = new Map<string, { route: string; method: string; status: string; value: number }>();
  readonly #durations = new Map<string, RouteHistogram>();

  observe(route: string, method: string, statusClass: string, seconds: number): void {
    const key = `${route}\u0000${method}\u0000${statusClass}`;
    const series = this.#requests.get(key);
    if (series) series.value++;
    else if (this.#requests.size < maxSeries)
      this.#requests.set(key, { route, method, status: statusClass, value: 1 });
    let histogram = this.#durations.get(route);
    if (!histogram) {
      if (this.#durations.size >= maxSeries) return;
      histogram = { counts: new Float64Array(bucketBounds.length + 1), sum: 0, count: 0 };
      this.#durations.set(route, histogram);
    }
    let bucket = 0;
    while (bucket < bucketBounds.length && seconds > bucketBounds[bucket]!) bucket++;
    histogram.counts[bucket]!++;
    histogram.sum += seconds;
    histogram.count++;
  }

  /** Registers `gatehouse_requests_total` and `gatehouse_request_duration_seconds`, read at scrape time. */
  register(registry: Registry): void {
    const requests = this.#requests;
    const durations = this.#durations;
    registry.registerMetric({
      name: 'gatehouse_requests_total',
      get: () => ({
        name: 'gatehouse_requests_total',
        help: 'Requests answered, by rule, method and status class.',
        type: 'counter',
        values: [...requests.values()].map((s) => ({
          value: s.value,
          labels: { route: s.route, method: s.method, status_class: s.status },
        })),
        aggregator: 'sum',
      }),
    } as never);
    registry.registerMetric({
      name: 'gatehouse_request_duration_seconds',
      get: () => {
        const values: Array<{ value: number; labels: Record<string, string | number>; metricName: string }> =
          [];
        for (const [route, h] of durations) {
          let cumulative = 0;
          for (let i = 0; i <= bucketBounds.length; i++) {
            cumulative += h.counts[i]!;
            const le = i < bucketBounds.length ? bucketBounds[i]! : '+Inf';
            values.push({
              value: cumulative,
              labels: { route, le },
              metricName: 'gatehouse_request_duration_seconds_bucket',
            });
          }
          values.push({
            value: h.sum,
            labels: { route },
            metricName: 'gatehouse_request_duration_seconds_sum',
          });
          values.push({
            value: h.count,
            labels: { route },
            metricName: 'gatehouse_request_duration_seconds_count',
          });
        }
        return {
          name: 'gatehouse_request_duration_seconds',
          help: 'Time from request received to response finished, by rule.',
          type: 'histogram',
          values,
          aggregator: 'sum',
        };
      },
    } as never);
  }
}
