import type { AggregateRow, AnalyticsQuery, Dimension } from './types.ts';

/** One stored event as the aggregation reads it. */
export interface AggregateInput {
  readonly bucket: number | null;
  readonly group: Partial<Record<Dimension, string | number | null>>;
  readonly status: number;
  readonly latencyMs: number;
}

/** Nearest-rank percentile (what PostgreSQL's percentile_disc computes) of sorted values. */
export function nearestRank(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!;
}

export function bucketOf(time: number, query: AnalyticsQuery): number | null {
  if (query.intervalMs === null) return null;
  return query.from + Math.floor((time - query.from) / query.intervalMs) * query.intervalMs;
}

/** Groups rows by bucket and group values; rows in bucket order, then by descending requests. */
export function aggregateInMemory(rows: Iterable<AggregateInput>, query: AnalyticsQuery): AggregateRow[] {
  const groups = new Map<
    string,
    {
      bucket: number | null;
      group: AggregateInput['group'];
      latencies: number[];
      errors: number;
      clientErrors: number;
    }
  >();
  for (const row of rows) {
    const key = JSON.stringify([row.bucket, query.groupBy.map((d) => row.group[d] ?? null)]);
    let g = groups.get(key);
    if (!g) {
      g = { bucket: row.bucket, group: row.group, latencies: [], errors: 0, clientErrors: 0 };
      groups.set(key, g);
    }
    g.latencies.push(row.latencyMs);
    if (row.status >= 500 || row.status === 0) g.errors++;
    else if (row.status >= 400) g.clientErrors++;
  }
  const out: AggregateRow[] = [];
  for (const g of groups.values()) {
    const sorted = g.latencies.sort((a, b) => a - b);
    const sum = sorted.reduce((s, v) => s + v, 0);
    out.push({
      bucket: g.bucket,
      group: g.group,
      requests: sorted.length,
      errors: g.errors,
      clientErrors: g.clientErrors,
      errorRate: g.errors / sorted.length,
      p50: nearestRank(sorted, 0.5),
      p95: nearestRank(sorted, 0.95),
      p99: nearestRank(sorted, 0.99),
      avgMs: sum / sorted.length,
    });
  }
  return sortRows(out);
}

export function sortRows(rows: AggregateRow[]): AggregateRow[] {
  return rows.sort(
    (a, b) =>
      (a.bucket ?? 0) - (b.bucket ?? 0) ||
      b.requests - a.requests ||
      JSON.stringify(a.group).localeCompare(JSON.stringify(b.group)),
  );
}
