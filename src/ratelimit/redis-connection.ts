import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { RateLimitsSpec } from '../config/schemas/gateway.ts';
import { gcraCommand, gcraScript } from './redis-script.ts';

export type RedisSpec = NonNullable<RateLimitsSpec['redis']>;

/** What identifies a connection: backends whose specs differ only in prefix or batching share it. */
export function connectionKey(spec: RedisSpec): string {
  return JSON.stringify([spec.url, spec.cluster, spec.sentinel, spec.password?.env, spec.timeout]);
}

/**
 * An ioredis client (standalone, Cluster or Sentinel) with the GCRA script defined on it, that
 * never queues a command while disconnected (RedisBackend waits for `ready` within its own timeout)
 * and never resends one after a reconnect. `onError` gets connection errors.
 */
export function createRedisClient(
  spec: RedisSpec,
  timeoutMs: number,
  env: Readonly<Record<string, string | undefined>>,
  onError: (err: Error) => void,
): Redis | Cluster {
  const password = spec.password ? env[spec.password.env] : undefined;
  // No ioredis commandTimeout: RedisBackend bounds every decision with its own timer (one per request).
  const common: RedisOptions = {
    connectTimeout: Math.max(1000, timeoutMs),
    // Never queue or replay a decision: one sent late would count a request answered long ago.
    // RedisBackend waits for a ready connection itself, within the decision's timeout.
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    // No auto-pipelining: at a gateway's concurrency it cost more CPU per decision than it saved (bench/).
    // Reconnect forever, backing off up to 2 s; each command is bounded by its own timeout.
    retryStrategy: (times) => Math.min(times * 100, 2000),
    ...(password === undefined ? {} : { password }),
  };
  let client: Redis | Cluster;
  if (spec.cluster) {
    const nodes = spec.cluster.nodes.map((url) => {
      const u = new URL(url);
      return { host: u.hostname, port: Number(u.port || 6379) };
    });
    const tls = spec.cluster.nodes.some((url) => url.startsWith('rediss:'));
    client = new Cluster(nodes, {
      enableOfflineQueue: false,
      clusterRetryStrategy: (times) => Math.min(times * 100, 2000),
      redisOptions: { ...common, ...(tls ? { tls: {} } : {}) },
    });
  } else if (spec.sentinel) {
    const sentinels = spec.sentinel.nodes.map((node) => {
      const at = node.lastIndexOf(':');
      return { host: node.slice(0, at), port: Number(node.slice(at + 1)) };
    });
    client = new Redis({ ...common, sentinels, name: spec.sentinel.name });
  } else {
    client = new Redis(spec.url!, common);
  }
  client.on('error', onError);
  client.defineCommand(gcraCommand, { lua: gcraScript });
  return client;
}

/** Closes a client: QUIT when it answers quickly, otherwise drops the connection. */
export async function closeRedisClient(client: Redis | Cluster, waitMs = 500): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, waitMs);
  });
  await Promise.race([
    client.quit().then(
      () => {},
      () => {},
    ),
    timedOut,
  ]);
  clearTimeout(timer);
  client.disconnect();
}
