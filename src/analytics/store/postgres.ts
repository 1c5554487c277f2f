import pg from 'pg';
import type { ApiEvent } from '../event.ts';
import { sortRows } from './aggregate.ts';
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

const sqlTypes: Readonly<Record<string, string>> = {
  time: 'bigint',
  rule: 'integer',
  status: 'integer',
  latency_ms: 'double precision',
  upstream_ms: 'double precision',
  gateway_ms: 'double precision',
  bytes_in: 'bigint',
  bytes_out: 'bigint',
  completed: 'boolean',
  path_params: 'jsonb',
};

export interface PostgresStoreOptions {
  readonly url: string;
  /** Schema holding the table (created when missing). */
  readonly schema: string;
  readonly poolSize?: number;
  readonly statementTimeoutMs?: number;
}

/**
 * The store for scale: PostgreSQL. Batches go in with one `INSERT … SELECT FROM unnest(…) ON
 * CONFLICT (id) DO NOTHING` (committed, so durable, before ingestion answers 202); aggregates and
 * percentiles (`percentile_disc`, nearest rank, like the SQLite store) are computed by the database.
 */
export class PostgresEventStore implements EventStore {
  readonly #pool: pg.Pool;
  readonly #table: string;
  readonly #ready: Promise<void>;

  constructor(options: PostgresStoreOptions) {
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(options.schema))
      throw new TypeError(
        `analytics store: schema must be a plain lowercase identifier, not ${options.schema}`,
      );
    this.#pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 4,
      connectionTimeoutMillis: 5000,
      statement_timeout: options.statementTimeoutMs ?? 30_000,
    });
    this.#pool.on('error', () => {}); // an idle client's error: the next query reports it
    this.#table = `${options.schema}.analytics_events`;
    const defs = columns
      .map(([c]) => `${c} ${sqlTypes[c] ?? 'text'}${c === 'id' ? ' PRIMARY KEY' : ''}`)
      .join(', ');
    const pool = this.#pool;
    const table = this.#table;
    this.#ready = (async () => {
      await pool.query(`CREATE SCHEMA IF NOT EXISTS ${options.schema}`);
      await pool.query(`CREATE TABLE IF NOT EXISTS ${table} (${defs}, received_at bigint NOT NULL)`);
      await pool.query(`CREATE INDEX IF NOT EXISTS analytics_events_time ON ${table} (time)`);
    })();
    this.#ready.catch(() => {});
  }

  async insert(
    events: readonly ApiEvent[],
    receivedAt: number,
  ): Promise<{ inserted: number; duplicates: number }> {
    await this.#ready;
    if (events.length === 0) return { inserted: 0, duplicates: 0 };
    const arrays = columns.map(([c, field]) =>
      events.map((e) => {
        const v = e[field];
        if (c === 'path_params') return JSON.stringify(v);
        return v ?? null;
      }),
    );
    const names = columns.map(([c]) => c);
    const unnest = columns.map(
      ([c], i) => `$${i + 1}::${sqlTypes[c] === 'jsonb' ? 'text' : (sqlTypes[c] ?? 'text')}[]`,
    );
    const select = columns.map(([c], i) => (c === 'path_params' ? `c${i}::jsonb` : `c${i}`));
    const result = await this.#pool.query(
      `INSERT INTO ${this.#table} (${names.join(', ')}, received_at)
       SELECT ${select.join(', ')}, $${columns.length + 1}::bigint
       FROM unnest(${unnest.join(', ')}) AS t(${columns.map((_, i) => `c${i}`).join(', ')})
       ON CONFLICT (id) DO NOTHING`,
      [...arrays, receivedAt],
    );
    const inserted = result.rowCount ?? 0;
    return { inserted, duplicates: events.length - inserted };
  }

  async aggregate(query: AnalyticsQuery): Promise<AggregateRow[]> {
    await this.#ready;
    const { where, params } = whereClause(query);
    const dims = query.groupBy.map((d) => dimensionColumn[d]);
    let bucket = 'NULL::bigint';
    if (query.intervalMs !== null) {
      params.push(query.from, query.intervalMs);
      const f = `$${params.length - 1}::bigint`;
      const w = `$${params.length}::bigint`;
      bucket = `(${f} + floor((time - ${f})::numeric / ${w})::bigint * ${w})`;
    }
    const groupCols = [bucket, ...dims];
    const result = await this.#pool.query(
      `SELECT ${bucket} AS bucket${dims.map((d) => `, ${d}`).join('')},
              COUNT(*)::bigint AS requests,
              SUM(CASE WHEN status >= 500 OR status = 0 THEN 1 ELSE 0 END)::bigint AS errors,
              SUM(CASE WHEN status >= 400 AND status < 500 THEN 1 ELSE 0 END)::bigint AS client_errors,
              percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50,
              percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95,
              percentile_disc(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99,
              AVG(latency_ms) AS avg_ms
       FROM ${this.#table} WHERE ${where} GROUP BY ${groupCols.map((_, i) => i + 1).join(', ')}`,
      params,
    );
    return sortRows(
      result.rows.map((r: Record<string, unknown>) => {
        const requests = Number(r.requests);
        const errors = Number(r.errors);
        return {
          bucket: r.bucket === null ? null : Number(r.bucket),
          group: Object.fromEntries(
            query.groupBy.map((d) => {
              const v = r[dimensionColumn[d]];
              return [d, v === null || v === undefined ? null : d === 'status' ? Number(v) : String(v)];
            }),
          ),
          requests,
          errors,
          clientErrors: Number(r.client_errors),
          errorRate: errors / requests,
          p50: Number(r.p50),
          p95: Number(r.p95),
          p99: Number(r.p99),
          avgMs: Number(r.avg_ms),
        };
      }),
    );
  }

  async top(query: TopQuery): Promise<TopRow[]> {
    await this.#ready;
    const { where, params } = whereClause(query);
    const column = dimensionColumn[query.by];
    params.push(query.limit);
    const result = await this.#pool.query(
      `SELECT ${column} AS key, COUNT(*)::bigint AS requests,
              SUM(CASE WHEN status >= 500 OR status = 0 THEN 1 ELSE 0 END)::bigint AS errors
       FROM ${this.#table} WHERE ${where} GROUP BY ${column}
       ORDER BY requests DESC, key ASC NULLS LAST LIMIT $${params.length}`,
      params,
    );
    return result.rows.map((r: Record<string, unknown>) => ({
      key: r.key === null ? null : String(r.key),
      requests: Number(r.requests),
      errors: Number(r.errors),
    }));
  }

  async count(): Promise<number> {
    await this.#ready;
    const result = await this.#pool.query(`SELECT COUNT(*)::bigint AS n FROM ${this.#table}`);
    return Number(result.rows[0].n);
  }

  async has(ids: readonly string[]): Promise<Set<string>> {
    await this.#ready;
    const result = await this.#pool.query(`SELECT id FROM ${this.#table} WHERE id = ANY($1::text[])`, [ids]);
    return new Set(result.rows.map((r: { id: string }) => r.id));
  }

  async prune(before: number): Promise<number> {
    await this.#ready;
    const result = await this.#pool.query(`DELETE FROM ${this.#table} WHERE time < $1`, [before]);
    return result.rowCount ?? 0;
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}

function whereClause(query: { from: number; to: number; filter: AnalyticsQuery['filter'] }): {
  where: string;
  params: unknown[];
} {
  const parts = ['time >= $1', 'time < $2'];
  const params: unknown[] = [query.from, query.to];
  for (const [dim, value] of Object.entries(query.filter) as Array<[Dimension, string | undefined]>) {
    if (value === undefined) continue;
    params.push(dim === 'status' ? Number(value) : value);
    parts.push(`${dimensionColumn[dim]} = $${params.length}`);
  }
  return { where: parts.join(' AND '), params };
}
