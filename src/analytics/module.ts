import Value from 'typebox/value';
import type { ControlPlaneContext, ControlPlaneModule, Route } from '../control-plane/routes.ts';
import { HttpProblem } from '../control-plane/routes.ts';
import { eventsPath, queryPaths } from './ingest/server.ts';
import { answerQuery, QueryParamError } from './query.ts';
import { AnalyticsSpec } from './schema.ts';
import { startAnalyticsService } from './service.ts';
import { QueryTooLargeError } from './store/sqlite.ts';

/**
 * Analytics as a role of `gatehouse control-plane`: ingestion at POST /analytics/v1/events (link
 * JWTs of connected gateways are checked against this control plane's JWKS, those of local-mode
 * gateways against their own, see spec.trustedGateways) and the query API for operators (viewer).
 * The ingestion route asks the server for no authentication: it checks the link JWT itself,
 * because it reads the raw, compressed body.
 */
export async function createAnalyticsModule(
  ctx: ControlPlaneContext,
  spec: AnalyticsSpec,
): Promise<ControlPlaneModule> {
  const checked = Value.Default(AnalyticsSpec, structuredClone(spec ?? {})) as AnalyticsSpec;
  const base = ctx.publicUrl.replace(/\/+$/, '');
  const log = (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string) =>
    ctx.logger[level](fields, message);
  const service = await startAnalyticsService(checked, {
    dataDir: ctx.dataDir,
    env: process.env,
    controlPlane: { issuer: base, jwksUrl: `${base}/.well-known/jwks.json` },
    // Ingestion's counters are served by the control plane's GET /metrics.
    ...(ctx.metrics ? { registry: ctx.metrics.registry } : {}),
    now: ctx.now,
    log,
  });
  const query = (kind: 'requests' | 'top'): Route => ({
    method: 'GET',
    path: queryPaths[kind],
    auth: { kind: 'operator', role: 'viewer' },
    summary:
      kind === 'requests'
        ? 'Request counts, error rates and latency percentiles over time, grouped and filtered'
        : 'Top consumers, routes or APIs by requests',
    async handle(call) {
      try {
        call.json(await answerQuery(service.store, kind, call.query, ctx.now()));
      } catch (err) {
        if (err instanceof QueryParamError || err instanceof QueryTooLargeError)
          throw new HttpProblem('analytics_query_invalid', err.message);
        throw new HttpProblem('analytics_store_unavailable', (err as Error).message);
      }
    },
  });
  return {
    name: 'analytics',
    routes: () => [
      {
        method: 'POST',
        path: eventsPath,
        auth: { kind: 'none' },
        summary: 'Ingest a batch of API events from a gateway (bearer link JWT; 202 once stored)',
        handle(call) {
          service.ingestion.handle(call.req, call.res);
          return new Promise<void>((resolve) => call.res.once('close', () => resolve()));
        },
      },
      query('requests'),
      query('top'),
    ],
    close: () => service.close(),
  };
}
