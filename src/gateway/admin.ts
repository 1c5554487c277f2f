import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { GatewayMetrics } from '../telemetry/metrics.ts';
import type { Plan } from '../plan/types.ts';
import { serveExplain } from './admin-explain.ts';
import { jwksPath, sendJwks } from './jwks-endpoint.ts';
import { sendProblem } from './respond.ts';

export interface AdminView {
  readonly plan: Plan | null;
  readonly ready: boolean;
  readonly metrics: GatewayMetrics;
  readonly reloads: { applied: number; rejected: number; lastError: string | null };
}

function json(res: ServerResponse, status: number, body: unknown) {
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

/** The admin listener: health, readiness, Prometheus metrics and the plan being served. */
export function createAdminServer(view: () => AdminView): Server {
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    // Explain runs the pipeline on a described request: nothing is forwarded, no state changes.
    if (path === '/explain') {
      serveExplain(req, res, view().plan);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendProblem(res, 'route_not_found', { detail: 'the admin API is read-only' });
      return;
    }
    const state = view();
    switch (path) {
      case '/healthz':
        json(res, 200, { status: 'ok' });
        return;
      case '/readyz':
        json(res, state.ready ? 200 : 503, { ready: state.ready, planVersion: state.plan?.version ?? null });
        return;
      case '/metrics':
        state.metrics.registry.metrics().then(
          (text) => {
            res.writeHead(200, { 'content-type': state.metrics.registry.contentType });
            res.end(text);
          },
          () => sendProblem(res, 'internal_error'),
        );
        return;
      case jwksPath: {
        const issuer = state.plan?.tokens;
        if (issuer) sendJwks(res, issuer.jwks());
        else sendProblem(res, 'route_not_found', { detail: 'this gateway mints no tokens' });
        return;
      }
      case '/plan': {
        const plan = state.plan;
        json(res, 200, {
          version: plan?.version ?? null,
          createdAt: plan?.createdAt ?? null,
          gateway: plan?.gatewayName ?? null,
          reloads: state.reloads,
          routes: plan?.router.routes() ?? [],
          // Rule ids with the Policies that apply to each (docs/policies.md).
          rules: (plan?.rules ?? []).map((r) => ({ id: r.id, template: r.template, policies: r.policies })),
        });
        return;
      }
      default:
        sendProblem(res, 'route_not_found');
    }
  });
}
