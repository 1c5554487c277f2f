import { timingSafeEqual } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { registerProcessMetrics } from '../../telemetry/process-metrics.ts';
import { problem, problemContentType } from '../../errors.ts';
import { answerQuery, QueryParamError } from '../query.ts';
import type { AnalyticsSpec } from '../schema.ts';
import { startAnalyticsService, type AnalyticsService } from '../service.ts';
import { QueryTooLargeError } from '../store/sqlite.ts';

export const eventsPath = '/analytics/v1/events';
export const queryPaths = { requests: '/api/v1/analytics/requests', top: '/api/v1/analytics/top' } as const;

export interface IngestServerOptions {
  readonly spec: AnalyticsSpec;
  readonly port: number;
  readonly address: string;
  readonly dataDir: string;
  /** Bearer token the query API asks for; null: the query API is off (ingestion only). */
  readonly queryToken: string | null;
  readonly controlPlane?: { readonly issuer: string; readonly jwksUrl: string };
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly log: (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string) => void;
}

export interface IngestServer {
  readonly server: Server;
  readonly service: AnalyticsService;
  port(): number;
  close(): Promise<void>;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendProblem(res: ServerResponse, code: Parameters<typeof problem>[0], detail?: string): void {
  const body = problem(code, detail);
  const text = JSON.stringify(body);
  const headers: Record<string, string | number> = {
    'content-type': problemContentType,
    'content-length': Buffer.byteLength(text),
  };
  if (body.status === 401) headers['www-authenticate'] = 'Bearer realm="gatehouse-analytics"';
  res.writeHead(body.status, headers);
  res.end(text);
}

/**
 * Analytics ingestion on its own (`gatehouse analytics-ingest`), without the rest of the control
 * plane: POST /analytics/v1/events, the query API (bearer `queryToken`), /healthz and /metrics.
 */
export async function startIngestServer(options: IngestServerOptions): Promise<IngestServer> {
  const registry = new Registry();
  registerProcessMetrics(registry);
  const service = await startAnalyticsService(options.spec, {
    dataDir: options.dataDir,
    env: options.env,
    controlPlane: options.controlPlane,
    registry,
    log: options.log,
  });
  const expected = options.queryToken === null ? null : Buffer.from(`Bearer ${options.queryToken}`);
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://ingest');
    if (url.pathname === eventsPath) {
      service.ingestion.handle(req, res);
      return;
    }
    if (url.pathname === '/healthz') {
      json(res, 200, { status: 'ok' });
      return;
    }
    if (url.pathname === '/metrics') {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        },
        () => sendProblem(res, 'internal_error'),
      );
      return;
    }
    const kind =
      url.pathname === queryPaths.requests ? 'requests' : url.pathname === queryPaths.top ? 'top' : null;
    if (kind === null || req.method !== 'GET' || expected === null) {
      sendProblem(res, 'route_not_found');
      return;
    }
    const given = Buffer.from(req.headers.authorization ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      sendProblem(res, 'unauthenticated', 'the query API needs its bearer token');
      return;
    }
    answerQuery(service.store, kind, url.searchParams, Date.now()).then(
      (body) => json(res, 200, body),
      (err: unknown) => {
        if (err instanceof QueryParamError || err instanceof QueryTooLargeError)
          sendProblem(res, 'analytics_query_invalid', err.message);
        else {
          options.log('error', { err: (err as Error).message }, 'analytics query failed');
          sendProblem(res, 'analytics_store_unavailable');
        }
      },
    );
  });
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    server,
    service,
    port: () => (server.address() as AddressInfo).port,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await service.close();
    },
  };
}
