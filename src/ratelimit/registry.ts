import type { Cluster, Redis } from 'ioredis';
import type { RateLimitsSpec } from '../config/schemas/gateway.ts';
import { toMillis } from '../config/duration.ts';
import { BatchingBackend } from './batching.ts';
import { LocalBackend } from './local.ts';
import { RateLimitMetrics } from './metrics.ts';
import { RedisBackend } from './redis.ts';
import { closeRedisClient, connectionKey, createRedisClient } from './redis-connection.ts';
import { type BackendFailure, FAILED, type RateLimitBackend } from './types.ts';

export interface RateLimiterDeps {
  /** Connect to Redis. False for offline compiles (validate, explain): nothing is contacted. */
  readonly start: boolean;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly now: () => number;
  readonly log: (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string) => void;
}

/** Failures are logged at most once per this long per backend, with how many were not. */
const logEveryMs = 10_000;

interface Connection {
  readonly client: Redis | Cluster;
  users: number;
}

interface Live {
  readonly backend: RateLimitBackend;
  readonly connection: string | null;
}

/**
 * Rate-limit backends by Gateway `spec.rateLimits`. Like identity providers they outlive plans: a
 * reload that leaves the section unchanged keeps the counters (local) or the lease state (batching);
 * one Redis connection serves every backend with the same connection settings.
 */
export class RateLimiterRegistry {
  readonly metrics = new RateLimitMetrics();
  readonly #deps: RateLimiterDeps;
  readonly #live = new Map<string, Live>();
  readonly #connections = new Map<string, Connection>();

  constructor(deps: RateLimiterDeps) {
    this.#deps = deps;
  }

  /** The backend for this (checked) section; created on first use. */
  resolve(spec: RateLimitsSpec): RateLimitBackend {
    const key = JSON.stringify(spec);
    let live = this.#live.get(key);
    if (!live) {
      live = this.#create(spec);
      this.#live.set(key, live);
    }
    return live.backend;
  }

  #create(spec: RateLimitsSpec): Live {
    if (spec.backend === 'local') {
      return { backend: new LocalBackend({ maxKeys: spec.maxKeys, now: this.#deps.now }), connection: null };
    }
    const redisSpec = spec.redis!;
    const failOpen = spec.onBackendFailure === 'open';
    if (!this.#deps.start) return { backend: offlineBackend(redisSpec.prefix, failOpen), connection: null };
    const timeoutMs = toMillis(redisSpec.timeout);
    const id = connectionKey(redisSpec);
    let connection = this.#connections.get(id);
    if (!connection) {
      if (redisSpec.password && this.#deps.env[redisSpec.password.env] === undefined)
        this.#deps.log(
          'warn',
          { env: redisSpec.password.env },
          'rate-limit Redis password variable is not set',
        );
      const client = createRedisClient(redisSpec, timeoutMs, this.#deps.env, this.#throttled('connection'));
      connection = { client, users: 0 };
      this.#connections.set(id, connection);
    }
    connection.users++;
    const reportFailure = this.#throttled('decision');
    const redis = new RedisBackend({
      client: connection.client,
      prefix: redisSpec.prefix,
      timeoutMs,
      failOpen,
      onFailure: (reason: BackendFailure, err?: unknown) => {
        this.metrics.backendError('redis', reason);
        reportFailure(
          err instanceof Error
            ? err
            : new Error(
                reason === 'timeout'
                  ? `no answer within ${redisSpec.timeout}`
                  : reason === 'unavailable'
                    ? `not connected within ${redisSpec.timeout}`
                    : 'failed',
              ),
        );
      },
    });
    const backend = spec.batching.enabled
      ? new BatchingBackend(redis, {
          maxLocal: spec.batching.maxLocal,
          flushIntervalMs: toMillis(spec.batching.flushInterval),
          maxKeys: spec.maxKeys,
          now: this.#deps.now,
        })
      : redis;
    return { backend, connection: id };
  }

  /** A log of failures of one kind, at most one line per 10 s, saying how many it left out. */
  #throttled(what: 'connection' | 'decision'): (err: Error) => void {
    let last = Number.NEGATIVE_INFINITY;
    let unlogged = 0;
    return (err) => {
      const now = Date.now();
      if (now - last < logEveryMs) {
        unlogged++;
        return;
      }
      this.#deps.log(
        'warn',
        { backend: 'redis', err: err.message, unlogged },
        what === 'connection'
          ? 'rate-limit Redis connection failed'
          : 'rate-limit backend did not decide: requests follow onBackendFailure',
      );
      last = now;
      unlogged = 0;
    };
  }

  /** Closes the backends not in `keep` (the one the current plan uses), and connections left unused. */
  async retainOnly(keep: Iterable<RateLimitBackend | null>): Promise<void> {
    const used = new Set(keep);
    const closing: Array<Promise<void>> = [];
    for (const [key, live] of this.#live) {
      if (used.has(live.backend)) continue;
      this.#live.delete(key);
      closing.push(this.#close(live));
    }
    await Promise.all(closing);
  }

  async #close(live: Live): Promise<void> {
    await live.backend.close();
    if (live.connection === null) return;
    const connection = this.#connections.get(live.connection);
    if (!connection || --connection.users > 0) return;
    this.#connections.delete(live.connection);
    await closeRedisClient(connection.client);
  }

  closeAll(): Promise<void> {
    return this.retainOnly([]);
  }
}

/** For offline compiles: never connects, never admits (explain leaves limits out anyway). */
function offlineBackend(prefix: string, failOpen: boolean): RateLimitBackend {
  return {
    kind: 'redis',
    prefix,
    failOpen,
    take: () => FAILED,
    close: async () => {},
  };
}
