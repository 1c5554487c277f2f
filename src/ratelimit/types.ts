import type { GcraLimit } from './gcra.ts';

/**
 * One decision of a backend. `aheadMs[i]` is how far the TAT of counter i is ahead of now after
 * the decision (gcra.ts turns it into remaining quota and waiting times). All the limits of one
 * decision admit together or not at all: a refused request consumes nothing.
 */
export type RateDecision =
  | { readonly ok: true; readonly allowed: boolean; readonly aheadMs: readonly number[] }
  | { readonly ok: false; readonly reason: BackendFailure };

/**
 * Why a backend could not decide. unavailable: not connected, nothing was sent (so nothing was
 * counted). timeout: sent, no answer in time (Redis may still have counted it). error: Redis or
 * the connection answered with an error.
 */
export type BackendFailure = 'unavailable' | 'timeout' | 'error';

/**
 * Where counters live (Gateway `spec.rateLimits`): in this process, or in Redis shared by every
 * gateway. One suite of tests (backend.test.ts) runs against every implementation.
 */
export interface RateLimitBackend {
  readonly kind: 'local' | 'redis';
  /** Counter keys start with this (Redis `prefix`; empty for the local backend). */
  readonly prefix: string;
  /** `onBackendFailure: open`: a request the backend could not decide on is admitted. */
  readonly failOpen: boolean;
  /**
   * Admits one request against `limits`, counter `keys[i]` for `limits[i]`, or refuses it. Sync
   * when the answer is known in this process (local backend, a batched lease); otherwise one round
   * trip, bounded by the backend's timeout. Never rejects.
   */
  take(keys: readonly string[], limits: readonly GcraLimit[]): RateDecision | Promise<RateDecision>;
  /** Stops background work and closes connections (pending batched counts are flushed first). */
  close(): Promise<void>;
}

/** A decision the backend could not make; shared so that failures allocate nothing. */
export const UNAVAILABLE: RateDecision = Object.freeze({ ok: false, reason: 'unavailable' });
export const TIMED_OUT: RateDecision = Object.freeze({ ok: false, reason: 'timeout' });
export const FAILED: RateDecision = Object.freeze({ ok: false, reason: 'error' });
