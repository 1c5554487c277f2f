import type { ApiEvent } from '../event.ts';

/** Dimensions events can be grouped and filtered by. */
export const dimensions = ['gateway', 'api', 'route', 'consumer', 'status', 'method'] as const;
export type Dimension = (typeof dimensions)[number];

export interface AnalyticsQuery {
  /** Time range, ms since the epoch: from inclusive, to exclusive. */
  readonly from: number;
  readonly to: number;
  /** Bucket width in ms; null: one bucket for the whole range. */
  readonly intervalMs: number | null;
  readonly groupBy: readonly Dimension[];
  /** Exact matches (status as its number in text). */
  readonly filter: Readonly<Partial<Record<Dimension, string>>>;
}

export interface AggregateRow {
  /** Start of the bucket (ms), or null without an interval. */
  readonly bucket: number | null;
  readonly group: Readonly<Partial<Record<Dimension, string | number | null>>>;
  readonly requests: number;
  /** Status ≥ 500 or no response (status 0). */
  readonly errors: number;
  /** Status 400–499. */
  readonly clientErrors: number;
  readonly errorRate: number;
  /** Nearest-rank percentiles of latencyMs. */
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly avgMs: number;
}

export interface TopQuery {
  readonly from: number;
  readonly to: number;
  readonly by: 'consumer' | 'route' | 'api';
  readonly limit: number;
  readonly filter: Readonly<Partial<Record<Dimension, string>>>;
}

export interface TopRow {
  readonly key: string | null;
  readonly requests: number;
  readonly errors: number;
}

/**
 * Where ingestion keeps events. One conformance suite (conformance.ts) runs against every
 * implementation (sqlite.ts, postgres.ts).
 */
export interface EventStore {
  /** Stores new events and ignores ids already stored; resolves once they are durable. */
  insert(events: readonly ApiEvent[], receivedAt: number): Promise<{ inserted: number; duplicates: number }>;
  aggregate(query: AnalyticsQuery): Promise<AggregateRow[]>;
  top(query: TopQuery): Promise<TopRow[]>;
  count(): Promise<number>;
  /** Ids stored among these (tests, diagnostics). */
  has(ids: readonly string[]): Promise<Set<string>>;
  /** Deletes events older than `before` (ms); returns how many. */
  prune(before: number): Promise<number>;
  close(): Promise<void>;
}

/** Columns in storage order: the event field each one holds. */
export const columns = [
  ['id', 'id'],
  ['time', 'time'],
  ['request_id', 'requestId'],
  ['gateway', 'gateway'],
  ['api', 'api'],
  ['route', 'route'],
  ['rule', 'rule'],
  ['consumer', 'consumer'],
  ['subject', 'subject'],
  ['client', 'client'],
  ['method', 'method'],
  ['host', 'host'],
  ['path_template', 'pathTemplate'],
  ['path_params', 'pathParams'],
  ['status', 'status'],
  ['latency_ms', 'latencyMs'],
  ['upstream_ms', 'upstreamMs'],
  ['gateway_ms', 'gatewayMs'],
  ['bytes_in', 'bytesIn'],
  ['bytes_out', 'bytesOut'],
  ['auth_method', 'authMethod'],
  ['auth_result', 'authResult'],
  ['rate_limit', 'rateLimit'],
  ['error', 'error'],
  ['trace_id', 'traceId'],
  ['completed', 'completed'],
] as const satisfies ReadonlyArray<readonly [string, keyof ApiEvent]>;

/** The column of a dimension. */
export const dimensionColumn: Readonly<Record<Dimension, string>> = {
  gateway: 'gateway',
  api: 'api',
  route: 'route',
  consumer: 'consumer',
  status: 'status',
  method: 'method',
};
