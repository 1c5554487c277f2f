import { LRUCache } from 'lru-cache';
import { EPSILON, type GcraLimit } from './gcra.ts';
import type { RateDecision, RateLimitBackend } from './types.ts';

export interface LocalBackendOptions {
  /** Most counters kept; the least recently used go first (a forgotten counter starts full again). */
  readonly maxKeys: number;
  readonly now: () => number;
}

/**
 * Counters in this process: one TAT per key in a bounded LRU map. A TAT in the past is the same as
 * no entry, so entries need no timer to expire: stale ones are simply the first evicted.
 */
export class LocalBackend implements RateLimitBackend {
  readonly kind = 'local';
  readonly prefix = '';
  readonly failOpen = false;
  readonly #tats: LRUCache<string, number>;
  readonly #now: () => number;

  constructor(options: LocalBackendOptions) {
    this.#tats = new LRUCache({ max: options.maxKeys });
    this.#now = options.now;
  }

  take(keys: readonly string[], limits: readonly GcraLimit[]): Extract<RateDecision, { ok: true }> {
    const now = this.#now();
    const ahead: number[] = new Array(keys.length);
    let allowed = true;
    for (let i = 0; i < keys.length; i++) {
      const tat = this.#tats.get(keys[i]!);
      ahead[i] = tat === undefined || tat < now ? 0 : tat - now;
      if (ahead[i]! > limits[i]!.toleranceMs + EPSILON) allowed = false;
    }
    if (allowed) {
      for (let i = 0; i < keys.length; i++) {
        ahead[i] = ahead[i]! + limits[i]!.emissionMs;
        this.#tats.set(keys[i]!, now + ahead[i]!);
      }
    }
    return { ok: true, allowed, aheadMs: ahead };
  }

  /** Counters currently kept (tests). */
  get size(): number {
    return this.#tats.size;
  }

  async close(): Promise<void> {
    this.#tats.clear();
  }
}
