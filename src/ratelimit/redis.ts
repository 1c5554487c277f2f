import type { Cluster, Redis } from 'ioredis';
import type { GcraLimit } from './gcra.ts';
import { gcraCommand } from './redis-script.ts';
import {
  type BackendFailure,
  FAILED,
  type RateDecision,
  type RateLimitBackend,
  TIMED_OUT,
  UNAVAILABLE,
} from './types.ts';

export interface RedisBackendOptions {
  /** A client on which the GCRA script is defined (redis-connection.ts); shared, not owned. */
  readonly client: Redis | Cluster;
  readonly prefix: string;
  readonly timeoutMs: number;
  readonly failOpen: boolean;
  /** Each decision the backend could not make (counted and logged by the registry). */
  readonly onFailure: (reason: BackendFailure, err?: unknown) => void;
}

type GcraCall = (...args: Array<string | number>) => Promise<unknown>;

/**
 * Counters in Redis, shared by every gateway that points at it: each decision is one run of the
 * GCRA script (redis-script.ts), one round trip, bounded by `timeoutMs` whatever state the
 * connection is in. A decision is sent only over a ready connection: one that waited for the
 * connection and timed out is never sent later (ioredis' offline queue would replay it on
 * reconnect and count requests that were answered long ago).
 */
export class RedisBackend implements RateLimitBackend {
  readonly kind = 'redis';
  readonly prefix: string;
  readonly failOpen: boolean;
  readonly #client: Redis | Cluster;
  readonly #call: GcraCall;
  readonly #timeoutMs: number;
  readonly #onFailure: RedisBackendOptions['onFailure'];
  #ready: Promise<void> | null = null;
  #corked = false;

  constructor(options: RedisBackendOptions) {
    this.prefix = options.prefix;
    this.failOpen = options.failOpen;
    this.#client = options.client;
    this.#timeoutMs = options.timeoutMs;
    this.#onFailure = options.onFailure;
    const client = options.client as unknown as Record<string, GcraCall>;
    const call = client[gcraCommand];
    if (typeof call !== 'function')
      throw new TypeError('the GCRA script is not defined on this Redis client');
    this.#call = call.bind(client);
  }

  take(keys: readonly string[], limits: readonly GcraLimit[]): Promise<RateDecision> {
    return this.takeReporting(keys, limits, 0, 1);
  }

  /**
   * One decision that also charges `committed` units admitted earlier without asking (batching.ts),
   * whatever the outcome; `cost` 0 only reports them and returns the counters' state.
   */
  takeReporting(
    keys: readonly string[],
    limits: readonly GcraLimit[],
    committed: number,
    cost: number,
  ): Promise<RateDecision> {
    const args: Array<string | number> = [keys.length, ...keys, committed, cost];
    for (const limit of limits) args.push(limit.emissionMs * 1000, limit.toleranceMs * 1000);
    return new Promise((resolve) => {
      let settled = false;
      let sent = false;
      const fail = (reason: BackendFailure, err?: unknown) => {
        settled = true;
        this.#onFailure(reason, err);
        resolve(reason === 'timeout' ? TIMED_OUT : reason === 'unavailable' ? UNAVAILABLE : FAILED);
      };
      // Timers run before I/O in an event-loop turn: after a long turn the timer would fire while the
      // answer already waits in the socket. setImmediate runs after this turn's I/O, so a late
      // turn of our own is not taken for a slow Redis.
      const timer = setTimeout(() => {
        setImmediate(() => {
          if (!settled) fail(sent ? 'timeout' : 'unavailable');
        });
      }, this.#timeoutMs);
      const send = () => {
        if (settled) return;
        sent = true;
        this.#call(...args).then(
          (reply) => {
            if (settled) return;
            clearTimeout(timer);
            const decision = parseReply(reply, keys.length);
            if (decision === null) fail('error', new Error('unexpected reply from the rate-limit script'));
            else {
              settled = true;
              resolve(decision);
            }
          },
          (err: unknown) => {
            if (settled) return;
            clearTimeout(timer);
            const message = (err as Error)?.message ?? '';
            fail(
              message === 'Command timed out'
                ? 'timeout'
                : message.includes('enableOfflineQueue')
                  ? 'unavailable'
                  : 'error',
              err,
            );
          },
        );
      };
      if (this.#client.status === 'ready') {
        this.#coalesceWrites();
        send();
      } else void this.#whenReady().then(send);
    });
  }

  /**
   * Holds the connection's writes until the end of this event-loop turn, so the decisions of every
   * request read in one turn go out in one write (and come back in one read): ioredis' own
   * auto-pipelining only groups commands of one tick, and each request is a tick of its own.
   */
  #coalesceWrites(): void {
    if (this.#corked) return;
    const stream = (this.#client as { stream?: { cork(): void; uncork(): void } }).stream;
    if (stream === undefined || typeof stream.cork !== 'function') return;
    this.#corked = true;
    stream.cork();
    setImmediate(() => {
      this.#corked = false;
      stream.uncork();
    });
  }

  /** Resolves when the connection is (again) ready; callers bound the wait with their own timer. */
  #whenReady(): Promise<void> {
    this.#ready ??= new Promise((resolve) => {
      this.#client.once('ready', () => {
        this.#ready = null;
        resolve();
      });
    });
    return this.#ready;
  }

  /** The client is the registry's (shared by backends with the same connection settings). */
  async close(): Promise<void> {}
}

function parseReply(reply: unknown, count: number): RateDecision | null {
  if (!Array.isArray(reply) || reply.length !== count + 1) return null;
  const aheadMs: number[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const us = Number(reply[i + 1]);
    if (!Number.isFinite(us)) return null;
    aheadMs[i] = us / 1000;
  }
  return { ok: true, allowed: Number(reply[0]) === 1, aheadMs };
}
