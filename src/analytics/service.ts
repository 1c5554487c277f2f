import { isAbsolute, join } from 'node:path';
import type { Registry } from 'prom-client';
import { toMillis } from '../config/duration.ts';
import { createIngestion, type Ingestion } from './ingest/ingest.ts';
import { createLinkVerifier, type LinkVerifier } from './ingest/link-verifier.ts';
import { startNatsConsumer, type NatsConsumer } from './nats-consumer.ts';
import type { AnalyticsSpec } from './schema.ts';
import { PostgresEventStore } from './store/postgres.ts';
import { SqliteEventStore } from './store/sqlite.ts';
import type { EventStore } from './store/types.ts';

export interface AnalyticsServiceDeps {
  /** Where a relative SQLite path is resolved. */
  readonly dataDir: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The control plane whose JWKS verifies connected gateways' link JWTs (absent: standalone). */
  readonly controlPlane?: { readonly issuer: string; readonly jwksUrl: string };
  readonly registry?: Registry;
  readonly now?: () => number;
  readonly log: (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string) => void;
}

/** Ingestion, its store, retention and the optional NATS consumer: one per process. */
export interface AnalyticsService {
  readonly store: EventStore;
  readonly ingestion: Ingestion;
  close(): Promise<void>;
}

export function openEventStore(
  spec: AnalyticsSpec['store'],
  deps: Pick<AnalyticsServiceDeps, 'dataDir' | 'env'>,
): EventStore {
  if ('postgres' in spec) {
    const url = spec.postgres.url ?? (spec.postgres.urlEnv ? deps.env[spec.postgres.urlEnv] : undefined);
    if (!url)
      throw new TypeError('analytics.store.postgres: give url, or urlEnv naming a set environment variable');
    return new PostgresEventStore({ url, schema: spec.postgres.schema, poolSize: spec.postgres.poolSize });
  }
  const path = spec.sqlite.path;
  return new SqliteEventStore(path === ':memory:' || isAbsolute(path) ? path : join(deps.dataDir, path));
}

export async function startAnalyticsService(
  spec: AnalyticsSpec,
  deps: AnalyticsServiceDeps,
): Promise<AnalyticsService> {
  const now = deps.now ?? Date.now;
  const store = openEventStore(spec.store, deps);
  const verifier: LinkVerifier = createLinkVerifier({
    trustedGateways: spec.trustedGateways,
    controlPlane: spec.controlPlaneJwks ? deps.controlPlane : undefined,
    now,
    log: deps.log,
  });
  const ingestion = createIngestion({
    store,
    verifier,
    limits: spec.limits,
    registry: deps.registry,
    now,
    log: deps.log,
  });
  const retentionMs = toMillis(spec.retention);
  const prune = () =>
    store.prune(now() - retentionMs).then(
      (n) => {
        if (n > 0) deps.log('info', { deleted: n }, 'analytics retention: old events deleted');
      },
      (err: unknown) => deps.log('warn', { err: (err as Error).message }, 'analytics retention failed'),
    );
  void prune();
  const timer = setInterval(prune, Math.min(5 * 60_000, Math.max(1000, retentionMs / 10)));
  timer.unref();
  let nats: NatsConsumer | null = null;
  if (spec.nats) {
    try {
      nats = await startNatsConsumer(spec.nats, ingestion, deps.log);
    } catch (err) {
      clearInterval(timer);
      await verifier.close();
      await store.close();
      throw err;
    }
  }
  return {
    store,
    ingestion,
    async close() {
      clearInterval(timer);
      await nats?.close();
      await verifier.close();
      await store.close();
    },
  };
}
