import { mkdirSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import Value from 'typebox/value';
import { request } from 'undici';
import { parse as parseYaml } from 'yaml';
import { queryPaths, startIngestServer } from '../analytics/ingest/server.ts';
import { AnalyticsSpec } from '../analytics/schema.ts';
import { dimensions } from '../analytics/store/types.ts';
import { createLogger } from '../telemetry/logger.ts';

const ingestUsage =
  'usage: gatehouse analytics-ingest --data-dir <dir> [--spec <analytics.yaml>] [--port 7070] [--address 127.0.0.1]\n' +
  '                                  [--query-token-env NAME] [--control-plane <url>]\n';

/**
 * `gatehouse analytics-ingest`: analytics ingestion and the query API alone, without the control
 * plane. --spec holds a ControlPlane `spec.analytics` section (store, retention, trustedGateways,
 * nats). The query API answers only with the bearer token read from --query-token-env.
 */
export async function runAnalyticsIngest(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      'data-dir': { type: 'string' },
      spec: { type: 'string' },
      port: { type: 'string', default: '7070' },
      address: { type: 'string', default: '127.0.0.1' },
      'query-token-env': { type: 'string' },
      'control-plane': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || !values['data-dir']) {
    process.stderr.write(ingestUsage);
    return values.help ? 0 : 2;
  }
  const logger = createLogger();
  let input: unknown = {};
  if (values.spec) {
    try {
      input = parseYaml(readFileSync(values.spec, 'utf8')) ?? {};
    } catch (err) {
      process.stderr.write(`gatehouse analytics-ingest: ${values.spec}: ${(err as Error).message}\n`);
      return 2;
    }
  }
  const spec = Value.Default(AnalyticsSpec, structuredClone(input));
  const problems = [...Value.Errors(AnalyticsSpec, spec)];
  if (problems.length > 0) {
    for (const p of problems)
      process.stderr.write(`${values.spec}: ${p.instancePath || '/'}: ${p.message}\n`);
    process.stderr.write('analytics ingestion not started: configuration is invalid\n');
    return 2;
  }
  const tokenEnv = values['query-token-env'];
  const queryToken = tokenEnv ? (process.env[tokenEnv] ?? null) : null;
  if (tokenEnv && !queryToken) {
    process.stderr.write(`gatehouse analytics-ingest: environment variable ${tokenEnv} is not set\n`);
    return 2;
  }
  const base = values['control-plane']?.replace(/\/+$/, '');
  mkdirSync(values['data-dir'], { recursive: true });
  const log = (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string) =>
    logger[level](fields, message);
  const server = await startIngestServer({
    spec: spec as AnalyticsSpec,
    port: Number(values.port),
    address: values.address,
    dataDir: values['data-dir'],
    queryToken,
    controlPlane: base ? { issuer: base, jwksUrl: `${base}/.well-known/jwks.json` } : undefined,
    env: process.env,
    log,
  });
  const stop = (signal: string) => {
    logger.info({ signal }, 'analytics ingestion stopping');
    setTimeout(() => process.exit(1), 10_000).unref();
    server.close().then(
      () => {
        logger.flush();
        process.exit(0);
      },
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  logger.info({ port: server.port(), address: values.address }, 'analytics ingestion ready');
  return -1;
}

const queryUsage =
  'usage: gatehouse analytics [requests|top] --url <ingestion or control-plane URL> [--token-env NAME]\n' +
  '         [--from=-1h] [--to now] [--interval 1m] [--group-by route,status] [--by consumer|route|api]\n' +
  `         [--limit 10] [--${dimensions.join(' v] [--')} v] [--json]\n`;

/** `gatehouse analytics`: the query API's answers as a table in the terminal. */
export async function runAnalytics(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      'token-env': { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      interval: { type: 'string' },
      'group-by': { type: 'string' },
      by: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
      ...Object.fromEntries(dimensions.map((d) => [d, { type: 'string' as const }])),
    },
  });
  const kind = positionals[0] ?? 'requests';
  if (values.help || !values.url || (kind !== 'requests' && kind !== 'top')) {
    process.stderr.write(queryUsage);
    return values.help ? 0 : 2;
  }
  const params = new URLSearchParams();
  const v = values as Record<string, string | boolean | undefined>;
  for (const [flag, name] of [
    ['from', 'from'],
    ['to', 'to'],
    ['interval', 'interval'],
    ['group-by', 'groupBy'],
    ['by', 'by'],
    ['limit', 'limit'],
    ...dimensions.map((d) => [d, d]),
  ] as const) {
    const value = v[flag];
    if (typeof value === 'string') params.set(name, value);
  }
  const token = values['token-env'] ? process.env[values['token-env']] : undefined;
  const url = `${values.url.replace(/\/+$/, '')}${queryPaths[kind]}?${params}`;
  let status: number;
  let text: string;
  try {
    const answer = await request(url, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    status = answer.statusCode;
    text = await answer.body.text();
  } catch (err) {
    process.stderr.write(`gatehouse analytics: ${url}: ${(err as Error).message}\n`);
    return 1;
  }
  if (status !== 200) {
    process.stderr.write(`gatehouse analytics: HTTP ${status}: ${text.slice(0, 500)}\n`);
    return 1;
  }
  if (values.json) {
    process.stdout.write(`${text}\n`);
    return 0;
  }
  const body = JSON.parse(text) as { rows: Array<Record<string, unknown>>; groupBy?: string[] };
  process.stdout.write(kind === 'top' ? topTable(body.rows) : requestsTable(body.rows, body.groupBy ?? []));
  return 0;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    `${cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd()}\n`;
  return line(header) + rows.map(line).join('');
}

function requestsTable(rows: Array<Record<string, unknown>>, groupBy: string[]): string {
  const fixed = (n: unknown, digits = 1) => (typeof n === 'number' ? n.toFixed(digits) : '');
  return table(
    ['bucket', ...groupBy, 'requests', 'errors', 'error%', 'p50 ms', 'p95 ms', 'p99 ms'],
    rows.map((r) => [
      r.bucket === null ? 'all' : new Date(r.bucket as number).toISOString(),
      ...groupBy.map((g) => String((r.group as Record<string, unknown>)[g] ?? '-')),
      String(r.requests),
      String(r.errors),
      fixed((r.errorRate as number) * 100),
      fixed(r.p50, 2),
      fixed(r.p95, 2),
      fixed(r.p99, 2),
    ]),
  );
}

function topTable(rows: Array<Record<string, unknown>>): string {
  return table(
    ['key', 'requests', 'errors'],
    rows.map((r) => [String(r.key ?? '-'), String(r.requests), String(r.errors)]),
  );
}
