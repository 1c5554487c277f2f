import { type ControlPlaneContext, type ControlPlaneModule, HttpProblem, type Route } from '../routes.ts';
import type { GatewayIdentity } from '../security/types.ts';
import { SnapshotHub } from './hub.ts';
import type { Snapshot } from './snapshot.ts';
import {
  applyReport,
  type GatewayStatusRecord,
  gatewayStatusCollection,
  gatewaysCollection,
  identityFromRecord,
  parseStatusReport,
  readStatus,
  updateStatus,
} from './status.ts';

export interface DistributionDeps {
  /** Heartbeat comment interval on config streams; gateways drop a stream silent for ~3 of these. */
  heartbeatMs?: number;
  /** Largest snapshot event the gateways accept (they refuse bigger ones). */
  maxEventBytes?: number;
  /**
   * Deregistration through the security module (SecurityModule.revokeGateway: also drops its
   * authentication cache); without it the `gateways` record is deleted here, which the security
   * module reads as revoked.
   */
  revokeGateway?: (id: string) => Promise<boolean>;
}

export const defaultHeartbeatMs = 15_000;
export const defaultMaxEventBytes = 16 * 1024 * 1024;

/** One row of GET /api/v1/gateways. */
export interface GatewayView {
  id: string;
  name: string;
  namespace: string;
  labels: Record<string, string>;
  servedVersion: number | null;
  desiredVersion: number;
  inSync: boolean;
  planVersion: string | null;
  state: GatewayStatusRecord['state'];
  lastContact: string | null;
  connected: boolean;
  rejectedVersion: number | null;
  lastError: string | null;
}

/**
 * Connected-mode distribution: each registered gateway streams its snapshot (SSE), reports what it
 * serves, and operators see every gateway with its served and desired versions.
 */
export function createDistributionModule(
  ctx: ControlPlaneContext,
  deps: DistributionDeps = {},
): ControlPlaneModule {
  const heartbeatMs = deps.heartbeatMs ?? defaultHeartbeatMs;
  const hub = new SnapshotHub({
    store: ctx.store,
    logger: ctx.logger,
    now: ctx.now,
    heartbeatMs,
    maxEventBytes: deps.maxEventBytes ?? defaultMaxEventBytes,
    ...(ctx.metrics ? { onSnapshotSent: () => ctx.metrics?.snapshotSent() } : {}),
  });
  hub.start();
  // Read when scraped: the same views operators get from GET /api/v1/gateways.
  ctx.metrics?.setGatewayCensus(async () => {
    const views = await listGateways(ctx, hub, heartbeatMs);
    return {
      registered: views.length,
      connected: hub.connectedCount(),
      outOfSync: views.filter((v) => !v.inSync).length,
    };
  });
  const at = () => new Date(ctx.now()).toISOString();
  const self = (gateway: GatewayIdentity | undefined): GatewayIdentity => {
    // The server authenticates `gateway` routes before calling them; a missing identity is a bug.
    if (!gateway) throw new HttpProblem('unauthenticated', 'a registered gateway’s credential is required');
    return gateway;
  };
  /** The last report per gateway, to log each state change once rather than every report. */
  const lastLogged = new Map<string, string>();

  const routes: Route[] = [
    {
      method: 'GET',
      path: '/v1/gateways/self/config/stream',
      auth: { kind: 'gateway' },
      summary:
        'The gateway’s snapshot as Server-Sent Events: the current one first (unless Last-Event-ID or ?version= is it), then every change.',
      async handle(call) {
        const gateway = self(call.gateway);
        const header = call.req.headers['last-event-id'];
        const known = (typeof header === 'string' ? header : null) ?? call.query.get('version');
        await hub.serve(gateway, call.res, known);
      },
    },
    {
      method: 'GET',
      path: '/v1/gateways/self/config',
      auth: { kind: 'gateway' },
      summary: 'The gateway’s current snapshot, once (for polling; ETag is the snapshot hash).',
      async handle(call) {
        const gateway = self(call.gateway);
        const snapshot = await hub.snapshotFor(gateway);
        void updateStatus(ctx.store, gateway.id, () => ({ lastContact: at() })).catch(() => {});
        const etag = `"${snapshot.hash}"`;
        if (call.req.headers['if-none-match'] === etag) {
          call.res.writeHead(304, { etag, 'cache-control': 'no-store' }).end();
          return;
        }
        call.res.setHeader('etag', etag);
        call.res.setHeader('cache-control', 'no-store');
        call.json(snapshot satisfies Snapshot);
      },
    },
    {
      method: 'POST',
      path: '/v1/gateways/self/status',
      auth: { kind: 'gateway' },
      summary:
        'What the gateway serves after trying a snapshot: { servedVersion, planVersion, state, error? }.',
      async handle(call) {
        const gateway = self(call.gateway);
        const report = parseStatusReport(await call.body());
        if (typeof report === 'string') throw new HttpProblem('bad_request', report);
        await updateStatus(ctx.store, gateway.id, () => applyReport(report, at()));
        const summary = `${report.state}:${report.version ?? report.servedVersion}`;
        if (lastLogged.get(gateway.id) !== summary) {
          lastLogged.set(gateway.id, summary);
          const fields = {
            gateway: gateway.id,
            gatewayName: `${gateway.namespace}/${gateway.name}`,
            servedVersion: report.servedVersion,
            version: report.version ?? report.servedVersion,
          };
          if (report.state === 'serving') ctx.logger.info(fields, 'gateway serves snapshot');
          else ctx.logger.warn({ ...fields, error: report.error }, 'gateway rejected snapshot');
        }
        call.res.writeHead(204).end();
      },
    },
    {
      method: 'GET',
      path: '/api/v1/gateways',
      auth: { kind: 'operator', role: 'viewer' },
      summary: 'Every registered gateway with its served and desired snapshot versions and last contact.',
      async handle(call) {
        call.json({ items: await listGateways(ctx, hub, heartbeatMs) });
      },
    },
    {
      method: 'DELETE',
      path: '/api/v1/gateways/{id}',
      auth: { kind: 'operator', role: 'admin' },
      summary: 'Deregisters a gateway: its stream is closed and its credential refused from now on.',
      async handle(call) {
        const id = call.params.id!;
        const record = await ctx.store.recordGet(gatewaysCollection, id);
        if (record === null)
          throw new HttpProblem('gateway_not_found', `no registered gateway with id ${id}`);
        // The security module refuses a gateway whose registration record is gone.
        if (deps.revokeGateway) await deps.revokeGateway(id);
        else await ctx.store.recordDelete(gatewaysCollection, id);
        await ctx.store.recordDelete(gatewayStatusCollection, id);
        hub.disconnect(id);
        lastLogged.delete(id);
        ctx.logger.info({ gateway: id, by: call.operator?.name }, 'gateway deregistered');
        call.json({ id, deregistered: true });
      },
    },
  ];

  return {
    name: 'distribution',
    routes: () => routes,
    close: () => hub.close(),
  };
}

async function listGateways(ctx: ControlPlaneContext, hub: SnapshotHub, heartbeatMs: number) {
  const [registered, statuses] = await Promise.all([
    ctx.store.recordList<unknown>(gatewaysCollection),
    ctx.store.recordList<GatewayStatusRecord>(gatewayStatusCollection),
  ]);
  const statusById = new Map(statuses.map((s) => [s.id, readStatus(s.value)]));
  const identities = registered
    .map((r) => identityFromRecord(r.id, r.value))
    .filter((i): i is GatewayIdentity => i !== null);
  const reads = new Map<string, ReturnType<typeof ctx.store.list>>();
  for (const i of identities)
    if (!reads.has(i.namespace)) reads.set(i.namespace, ctx.store.list({ namespace: i.namespace }));
  const views: GatewayView[] = [];
  for (const identity of identities) {
    const { items, revision } = await reads.get(identity.namespace)!;
    const desired = hub.compute(items, revision, identity);
    const status = statusById.get(identity.id) ?? readStatus(null);
    const recent =
      status.lastContact !== null && ctx.now() - Date.parse(status.lastContact) < 3 * heartbeatMs;
    views.push({
      id: identity.id,
      name: identity.name,
      namespace: identity.namespace,
      labels: identity.labels,
      servedVersion: status.servedVersion,
      desiredVersion: desired.version,
      inSync:
        status.servedHash !== null
          ? status.servedHash === desired.hash
          : status.servedVersion === desired.version,
      planVersion: status.planVersion,
      state: status.state,
      lastContact: status.lastContact,
      // Open here, or (another control plane on the same database) streaming at a recent contact.
      connected: hub.connected(identity.id) || (status.streaming && recent),
      rejectedVersion: status.rejectedVersion,
      lastError: status.lastError,
    });
  }
  return views.sort((a, b) =>
    a.namespace === b.namespace ? a.name.localeCompare(b.name) : a.namespace.localeCompare(b.namespace),
  );
}
