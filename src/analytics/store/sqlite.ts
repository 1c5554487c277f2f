import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import type { ApiEvent } from '../event.ts';
import { aggregateInMemory, bucketOf } from './aggregate.ts';
import {
  type AggregateRow,
  type AnalyticsQuery,
  columns,
  type Dimension,
  dimensionColumn,
  type EventStore,
  type TopQuery,
  type TopRow,
} from './types.ts';

/** Most events one aggregate query reads (they are aggregated in the process); more is an error. */
const MAX_AGGREGATE_ROWS = 2_000_000;

export class QueryTooLargeError extends Error {
  readonly code = 'analytics_query_too_large';
}

/**
 * The embedded store: node:sqlite, WAL journal with `synchronous = FULL`, so a committed insert is
 * on disk before ingestion answers 202. Percentiles are computed in the process (SQLite has none),
 * bounded by MAX_AGGREGATE_ROWS; PostgreSQL (postgres.ts) is the store for scale.
 */
export class SqliteEventStore implements EventStore {
  readonly #db: DatabaseSync;
  readonly #insert: ReturnType<DatabaseSync['prepare']>;

  constructor(path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.#db = new DatabaseSync(path);
    this.#db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = FULL;
      PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS analytics_events (
        id TEXT PRIMARY KEY, time INTEGER NOT NULL, request_id TEXT, gateway TEXT NOT NULL, api TEXT,
        route TEXT, rule INTEGER, consumer TEXT, subject TEXT, client TEXT, method TEXT, host TEXT,
        path_template TEXT, path_params TEXT, status INTEGER NOT NULL, latency_ms REAL NOT NULL,
        upstream_ms REAL, gateway_ms REAL, bytes_in INTEGER, bytes_out INTEGER, auth_method TEXT,
        auth_result TEXT, rate_limit TEXT, error TEXT, trace_id TEXT, completed INTEGER,
        received_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS analytics_events_time ON analytics_events (time);
    `);
    const names = [...columns.map(([c]) => c), 'received_at'];
    this.#insert = this.#db.prepare(
      `INSERT OR IGNORE INTO analytics_events (${names.join(', ')}) VALUES (${names.map(() => '?').join(', ')})`,
    );
  }

  async insert(
    events: readonly ApiEvent[],
    receivedAt: number,
  ): Promise<{ inserted: number; duplicates: number }> {
    let inserted = 0;
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      for (const e of events) {
        const values = columns.map(([, field]) => toSql(e[field]));
        values.push(receivedAt);
        inserted += Number(this.#insert.run(...values).changes);
      }
      this.#db.exec('COMMIT');
    } catch (err) {
      this.#db.exec('ROLLBACK');
      throw err;
    }
    return { inserted, duplicates: events.length - inserted };
  }

  async aggregate(query: AnalyticsQuery): Promise<AggregateRow[]> {
    const { where, params } = whereClause(query);
    const dims = query.groupBy;
    const select = ['time', 'status', 'latency_ms', ...dims.map((d) => dimensionColumn[d])];
    const statement = this.#db.prepare(
      `SELECT ${select.join(', ')} FROM analytics_events WHERE ${where} LIMIT ${MAX_AGGREGATE_ROWS + 1}`,
    );
    const rows = statement.all(...params) as Array<Record<string, SQLInputValue>>;
    if (rows.length > MAX_AGGREGATE_ROWS)
      throw new QueryTooLargeError(`more than ${MAX_AGGREGATE_ROWS} events: narrow the time range or filter`);
    return aggregateInMemory(
      rows.map((r) => ({
        bucket: bucketOf(Number(r.time), query),
        group: Object.fromEntries(dims.map((d) => [d, r[dimensionColumn[d]] as string | number | null])),
        status: Number(r.status),
        latencyMs: Number(r.latency_ms),
      })),
      query,
    );
  }

  async top(query: TopQuery): Promise<TopRow[]> {
    const { where, params } = whereClause(query);
    const column = dimensionColumn[query.by];
    const rows = this.#db
      .prepare(
        `SELECT ${column} AS key, COUNT(*) AS requests,
                SUM(CASE WHEN status >= 500 OR status = 0 THEN 1 ELSE 0 END) AS errors
         FROM analytics_events WHERE ${where} GROUP BY ${column}
         ORDER BY requests DESC, key ASC LIMIT ?`,
      )
      .all(...params, query.limit) as Array<{ key: string | null; requests: number; errors: number }>;
    return rows.map((r) => ({ key: r.key, requests: Number(r.requests), errors: Number(r.errors) }));
  }

  async count(): Promise<number> {
    const row = this.#db.prepare('SELECT COUNT(*) AS n FROM analytics_events').get() as { n: number };
    return Number(row.n);
  }

  async has(ids: readonly string[]): Promise<Set<string>> {
    const found = new Set<string>();
    const statement = this.#db.prepare('SELECT id FROM analytics_events WHERE id = ?');
    for (const id of ids) if (statement.get(id)) found.add(id);
    return found;
  }

  async prune(before: number): Promise<number> {
    return Number(this.#db.prepare('DELETE FROM analytics_events WHERE time < ?').run(before).changes);
  }

  async close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
  }
}

function toSql(value: unknown): SQLInputValue {
  if (value === undefined || value === null) return null;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (Array.isArray(value)) return JSON.stringify(value);
  return value as SQLInputValue;
}

function whereClause(query: { from: number; to: number; filter: AnalyticsQuery['filter'] }): {
  where: string;
  params: SQLInputValue[];
} {
  const parts = ['time >= ?', 'time < ?'];
  const params: SQLInputValue[] = [query.from, query.to];
  for (const [dim, value] of Object.entries(query.filter) as Array<[Dimension, string | undefined]>) {
    if (value === undefined) continue;
    parts.push(`${dimensionColumn[dim]} = ?`);
    params.push(dim === 'status' ? Number(value) : value);
  }
  return { where: parts.join(' AND '), params };
}
