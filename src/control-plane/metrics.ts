import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { registerProcessMetrics } from '../telemetry/process-metrics.ts';

/** Who a refused credential belonged to (label `caller` of the auth-failure counter). */
export type AuthCaller = 'operator' | 'gateway' | 'registration' | 'token';

/** How the distribution module counts the gateways when scraped (store-wide and this process). */
export interface GatewayCensus {
  registered: number;
  /** Streams open on this control plane. */
  connected: number;
  /** Serving something other than the snapshot computed for them now. */
  outOfSync: number;
}

export interface ControlPlaneMetrics {
  readonly registry: Registry;
  /** One answered admin-API/gateway-link request: `route` is the template, never the path. */
  request(route: string, method: string, status: string, seconds: number | null): void;
  storeWrite(result: string): void;
  snapshotSent(): void;
  issued(kind: 'access_token' | 'certificate'): void;
  authFailure(caller: AuthCaller, reason: string): void;
  /** Set by the distribution module: read when scraped, never per request. */
  setGatewayCensus(census: () => Promise<GatewayCensus>): void;
}

const methods = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
/** Admin calls are milliseconds; registration (key generation) and big applies take longer. */
const buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Several gauges read one census: one store read per scrape, not one per gauge. */
const censusReuseMs = 1_000;

/**
 * Every Prometheus metric of the control plane itself, declared in one place (the list is in
 * docs/analytics.md). Label values are bounded: route templates from the route table, problem
 * codes from src/errors.ts, fixed result names — never ids, names or raw paths. Analytics
 * ingestion registers its own on `registry` when it runs in the control plane.
 */
export function createControlPlaneMetrics(): ControlPlaneMetrics {
  const registry = new Registry();
  registerProcessMetrics(registry);
  const requests = new Counter({
    name: 'gatehouse_control_plane_requests_total',
    help: 'Requests the control plane answered, by route template, method and status class (2xx…5xx, aborted).',
    labelNames: ['route', 'method', 'status_class'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'gatehouse_control_plane_request_duration_seconds',
    help: 'Request received → response finished, by route template and method (event streams are not observed).',
    labelNames: ['route', 'method'] as const,
    buckets,
    registers: [registry],
  });
  const writes = new Counter({
    name: 'gatehouse_control_plane_store_writes_total',
    help: 'Resource writes to the store, by result (ok, unchanged, conflict, not_found, already_exists, invalid, error).',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const snapshots = new Counter({
    name: 'gatehouse_control_plane_snapshots_sent_total',
    help: 'Snapshots written to gateways’ config streams.',
    registers: [registry],
  });
  const issuedTotal = new Counter({
    name: 'gatehouse_control_plane_credentials_issued_total',
    help: 'Subsystem credentials issued to gateways, by kind (access_token, certificate).',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const authFailures = new Counter({
    name: 'gatehouse_control_plane_auth_failures_total',
    help: 'Refused credentials, by caller (operator, gateway, registration, token) and reason.',
    labelNames: ['caller', 'reason'] as const,
    registers: [registry],
  });

  let census: (() => Promise<GatewayCensus>) | null = null;
  let last: { at: number; value: Promise<GatewayCensus | null> } | null = null;
  const read = (): Promise<GatewayCensus | null> => {
    if (census === null) return Promise.resolve(null);
    const now = Date.now();
    if (last === null || now - last.at > censusReuseMs)
      // A store that cannot answer leaves the gauges out of this scrape rather than failing it.
      last = { at: now, value: census().catch(() => null) };
    return last.value;
  };
  // `name:` spelled out at each call: the docs test finds every declared metric by it.
  const censusGauge = ({
    name,
    help,
    pick,
  }: {
    name: string;
    help: string;
    pick: (c: GatewayCensus) => number;
  }) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        const value = await read();
        if (value === null) this.reset();
        else this.set(pick(value));
      },
    });
  censusGauge({
    name: 'gatehouse_control_plane_gateways_registered',
    help: 'Registered gateways (store-wide: every control plane on the database reports the same).',
    pick: (c) => c.registered,
  });
  censusGauge({
    name: 'gatehouse_control_plane_gateways_connected',
    help: 'Gateways with a config stream open on this control plane.',
    pick: (c) => c.connected,
  });
  censusGauge({
    name: 'gatehouse_control_plane_gateways_out_of_sync',
    help: 'Registered gateways not serving the snapshot they should (store-wide).',
    pick: (c) => c.outOfSync,
  });

  return {
    registry,
    request(route, method, status, seconds) {
      const m = methods.has(method) ? method : 'other';
      requests.labels(route, m, status).inc();
      if (seconds !== null) duration.labels(route, m).observe(seconds);
    },
    storeWrite: (result) => writes.labels(result).inc(),
    snapshotSent: () => snapshots.inc(),
    issued: (kind) => issuedTotal.labels(kind).inc(),
    authFailure: (caller, reason) => authFailures.labels(caller, reason).inc(),
    setGatewayCensus(fn) {
      census = fn;
      last = null;
    },
  };
}
