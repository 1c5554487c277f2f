import { toMillis } from '../config/duration.ts';
import {
  type AnalyticsQuery,
  type Dimension,
  dimensions,
  type EventStore,
  type TopQuery,
} from './store/types.ts';

/** A query parameter that does not make sense: answered 400 `analytics_query_invalid`. */
export class QueryParamError extends Error {}

const MAX_BUCKETS = 10_000;

/** `2026-11-24T10:00:00Z`, milliseconds since the epoch, or relative to now: `-1h`, `-30m`, `now`. */
export function parseTime(text: string, now: number): number {
  if (text === 'now') return now;
  const relative = /^-([0-9]+(?:ms|s|m|h))$/.exec(text);
  if (relative) return now - toMillis(relative[1]!);
  if (/^[0-9]{1,15}$/.test(text)) return Number(text);
  const parsed = Date.parse(text);
  if (Number.isNaN(parsed)) throw new QueryParamError(`not a time: ${text} (ISO 8601, epoch ms, -1h, now)`);
  return parsed;
}

function parseFilter(params: URLSearchParams): Partial<Record<Dimension, string>> {
  const filter: Partial<Record<Dimension, string>> = {};
  for (const d of dimensions) {
    const value = params.get(d);
    if (value === null) continue;
    if (d === 'status' && !/^[0-9]{1,3}$/.test(value))
      throw new QueryParamError(`status must be a number, not ${value}`);
    filter[d] = value;
  }
  return filter;
}

function parseRange(params: URLSearchParams, now: number): { from: number; to: number } {
  const from = parseTime(params.get('from') ?? '-1h', now);
  const to = parseTime(params.get('to') ?? 'now', now) + (params.get('to') === null ? 1 : 0);
  if (!(from < to)) throw new QueryParamError('from must be before to');
  return { from, to };
}

/** `?from&to&interval&groupBy=a,b&<dimension>=value…` of `GET …/analytics/requests`. */
export function parseAggregateQuery(params: URLSearchParams, now: number): AnalyticsQuery {
  const { from, to } = parseRange(params, now);
  const intervalText = params.get('interval');
  let intervalMs: number | null = null;
  if (intervalText !== null) {
    if (!/^[0-9]+(ms|s|m|h)$/.test(intervalText))
      throw new QueryParamError(`interval: not a duration: ${intervalText}`);
    intervalMs = toMillis(intervalText);
    if (intervalMs <= 0) throw new QueryParamError('interval must be more than 0');
    if ((to - from) / intervalMs > MAX_BUCKETS)
      throw new QueryParamError(`more than ${MAX_BUCKETS} intervals: widen interval`);
  }
  const groupBy: Dimension[] = [];
  for (const part of (params.get('groupBy') ?? '').split(',')) {
    const name = part.trim();
    if (name === '') continue;
    if (!(dimensions as readonly string[]).includes(name))
      throw new QueryParamError(`groupBy: unknown dimension ${name} (${dimensions.join(', ')})`);
    if (!groupBy.includes(name as Dimension)) groupBy.push(name as Dimension);
  }
  return { from, to, intervalMs, groupBy, filter: parseFilter(params) };
}

/** `?by=consumer|route|api&limit&from&to&<dimension>=value…` of `GET …/analytics/top`. */
export function parseTopQuery(params: URLSearchParams, now: number): TopQuery {
  const { from, to } = parseRange(params, now);
  const by = params.get('by') ?? 'consumer';
  if (by !== 'consumer' && by !== 'route' && by !== 'api')
    throw new QueryParamError(`by: consumer, route or api, not ${by}`);
  const limitText = params.get('limit') ?? '10';
  const limit = Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new QueryParamError('limit: 1 to 1000');
  return { from, to, by, limit, filter: parseFilter(params) };
}

/** The answers of the two query endpoints, shared by the control-plane module and standalone ingestion. */
export async function answerQuery(
  store: EventStore,
  kind: 'requests' | 'top',
  params: URLSearchParams,
  now: number,
): Promise<unknown> {
  if (kind === 'requests') {
    const query = parseAggregateQuery(params, now);
    return {
      from: query.from,
      to: query.to,
      intervalMs: query.intervalMs,
      groupBy: query.groupBy,
      rows: await store.aggregate(query),
    };
  }
  const query = parseTopQuery(params, now);
  return { from: query.from, to: query.to, by: query.by, rows: await store.top(query) };
}
