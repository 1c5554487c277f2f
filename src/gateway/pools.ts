import { Pool } from 'undici';
import type { CompiledUpstream, Plan } from '../plan/types.ts';

/**
 * Keep-alive connection pools, one per upstream origin and pool settings. Pools outlive plans so a
 * reload does not drop warm connections; a pool no plan uses any more is closed gracefully (its
 * requests in flight finish first).
 */
export class PoolRegistry {
  readonly #pools = new Map<string, Pool>();

  get(upstream: CompiledUpstream): Pool {
    let pool = this.#pools.get(upstream.poolKey);
    if (!pool) {
      pool = new Pool(upstream.origin, {
        connections: upstream.connections,
        connectTimeout: upstream.connectTimeoutMs,
        keepAliveTimeout: 4_000,
        keepAliveMaxTimeout: 60_000,
        // Response limits are enforced per request (headersTimeout/bodyTimeout), not here.
        headersTimeout: upstream.responseTimeoutMs,
        bodyTimeout: upstream.idleTimeoutMs,
        maxHeaderSize: 65_536,
      });
      this.#pools.set(upstream.poolKey, pool);
    }
    return pool;
  }

  /** Closes the pools that `plan` does not use. */
  async retainOnly(plan: Plan): Promise<void> {
    const used = new Set([...plan.upstreams.values()].map((u) => u.poolKey));
    const closing: Promise<void>[] = [];
    for (const [key, pool] of this.#pools) {
      if (used.has(key)) continue;
      this.#pools.delete(key);
      closing.push(pool.close().catch(() => {}));
    }
    await Promise.all(closing);
  }

  async closeAll(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => {})));
  }
}
