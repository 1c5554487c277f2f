import type { ServerResponse } from 'node:http';
import type { ControlPlaneContext, ControlPlaneModule, Route } from '../routes.ts';
import { applyRoute } from './apply.ts';
import { auditRoute } from './audit.ts';
import { openApiDocument } from './openapi.ts';
import { resourceRoutes } from './resources.ts';
import { watchRoute } from './watch.ts';

export interface ApiModuleDeps {
  /** Every route the server serves (for the OpenAPI description). */
  routes: () => readonly Route[];
  heartbeatMs: number;
}

/** The admin API: resources by kind, apply, watch, audit and the OpenAPI description. */
export function createApiModule(ctx: ControlPlaneContext, deps: ApiModuleDeps): ControlPlaneModule {
  const streams = new Set<ServerResponse>();
  let openapi: string | null = null;
  const routes: Route[] = [
    ...resourceRoutes(ctx),
    applyRoute(ctx),
    watchRoute(ctx, { heartbeatMs: deps.heartbeatMs, streams }),
    auditRoute(ctx),
    {
      method: 'GET',
      path: '/openapi.json',
      auth: { kind: 'none' },
      summary: 'This description: every route, with the resource kinds’ schemas.',
      handle(call) {
        openapi ??= JSON.stringify(openApiDocument(deps.routes(), ctx.publicUrl));
        call.res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache' });
        call.res.end(openapi);
      },
    },
  ];
  return {
    name: 'api',
    routes: () => routes,
    close() {
      for (const res of streams) res.end();
      streams.clear();
    },
  };
}
