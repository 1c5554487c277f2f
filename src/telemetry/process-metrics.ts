import { collectDefaultMetrics, type Registry } from 'prom-client';

/**
 * The process's own metrics on `registry`, under their standard names (prom-client's defaults, what
 * Node.js dashboards expect): CPU seconds, resident memory, heap and heap spaces, external memory,
 * GC time by kind (`nodejs_gc_duration_seconds{kind}`: minor, major, incremental, weakcb),
 * event-loop delay percentiles, open file descriptors, active handles. Read when scraped, except GC
 * (a PerformanceObserver) and the event-loop delay (sampled every 10 ms): nothing per request.
 */
export function registerProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({
    register: registry,
    eventLoopMonitoringPrecision: 10,
    gcDurationBuckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
  });
}
