import { type GcraLimit, remaining, retryAfterMs } from './gcra.ts';
import type { RedisBackend } from './redis.ts';
import type { RateDecision, RateLimitBackend } from './types.ts';

export interface BatchingOptions {
  /** Most units one gateway admits for one counter set without asking Redis. */
  readonly maxLocal: number;
  /** How often units admitted without asking are reported to Redis. */
  readonly flushIntervalMs: number;
  /** Most counter sets with a lease kept; past it, requests for new ones ask Redis every time. */
  readonly maxKeys: number;
  readonly now: () => number;
}

/** What this gateway knows about one counter set (the keys of one decision). */
interface Lease {
  readonly keys: readonly string[];
  readonly limits: readonly GcraLimit[];
  /** Units this gateway may still admit without asking Redis. */
  allowance: number;
  /** Units admitted without asking, not yet charged in Redis; never more than maxLocal. */
  pending: number;
  /** The counters as Redis last described them, and when. */
  aheadMs: readonly number[];
  at: number;
  /** Redis refused a request: refused here too until then, without asking. */
  blockedUntil: number;
  /** Units of a report on its way to Redis (not in `aheadMs` yet, no longer in `pending`). */
  reporting: number;
  /** That report, settled once the lease is renewed from its answer. */
  report: Promise<void> | null;
}

/**
 * Bounded local batching in front of the Redis backend. Each answer from Redis grants this gateway
 * a lease of min(maxLocal, remaining quota) − unreported units, admitted here without a round trip;
 * admitted units are charged in Redis (whatever its state: a debt delays later requests) once half
 * a lease is used (the answer renews the lease), every flushInterval, and with the next request
 * that has to ask. A gateway therefore never holds more than maxLocal unreported units per counter
 * set, so all gateways together admit at most gateways × maxLocal more than the limit
 * (docs/rate-limits.md).
 */
export class BatchingBackend implements RateLimitBackend {
  readonly kind = 'redis';
  readonly prefix: string;
  readonly failOpen: boolean;
  readonly #redis: RedisBackend;
  readonly #options: BatchingOptions;
  readonly #leases = new Map<string, Lease>();
  readonly #timer: NodeJS.Timeout;
  /** Leases not renewed for this long are dropped, so that a lease never grows stale. */
  readonly #leaseTtlMs: number;
  readonly #reportAt: number;

  constructor(redis: RedisBackend, options: BatchingOptions) {
    this.#redis = redis;
    this.#options = options;
    this.prefix = redis.prefix;
    this.failOpen = redis.failOpen;
    this.#leaseTtlMs = Math.max(1000, options.flushIntervalMs * 10);
    this.#reportAt = Math.ceil(options.maxLocal / 2);
    this.#timer = setInterval(() => this.#tick(), options.flushIntervalMs);
    this.#timer.unref();
  }

  take(keys: readonly string[], limits: readonly GcraLimit[]): RateDecision | Promise<RateDecision> {
    const id = keys.length === 1 ? keys[0]! : keys.join('\u0000');
    const lease = this.#leases.get(id);
    if (lease !== undefined) {
      const now = this.#options.now();
      if (now < lease.blockedUntil) return { ok: true, allowed: false, aheadMs: estimate(lease, now) };
      if (lease.allowance > 0) {
        lease.allowance--;
        lease.pending++;
        // Reported at half the lease, so that the answer renews it before it runs out.
        if (lease.pending >= this.#reportAt) this.#report(lease);
        return { ok: true, allowed: true, aheadMs: estimate(lease, now) };
      }
      // Used up while a report is on its way: its answer renews the lease for everyone waiting.
      if (lease.report !== null) return lease.report.then(() => this.#takeAfterReport(id, keys, limits));
    }
    return this.#ask(id, keys, limits);
  }

  #takeAfterReport(id: string, keys: readonly string[], limits: readonly GcraLimit[]) {
    const lease = this.#leases.get(id);
    return lease !== undefined && lease.allowance > 0 ? this.take(keys, limits) : this.#ask(id, keys, limits);
  }

  /** A request that needs Redis' answer: it carries the units admitted since the last report. */
  #ask(id: string, keys: readonly string[], limits: readonly GcraLimit[]): Promise<RateDecision> {
    const lease = this.#leases.get(id);
    const committed = lease?.pending ?? 0;
    if (lease) lease.pending = 0;
    return this.#redis.takeReporting(keys, limits, committed, 1).then((decision) => {
      if (!decision.ok) {
        if (lease && decision.reason !== 'timeout') lease.pending += committed;
        return decision;
      }
      this.#renew(id, keys, limits, decision, true);
      return decision;
    });
  }

  /** Reports a lease's pending units (cost 0: nothing asked for) and renews it from the answer. */
  #report(lease: Lease): void {
    if (lease.reporting > 0 || lease.pending === 0) return;
    const committed = lease.pending;
    lease.reporting = committed;
    lease.pending = 0;
    lease.report = this.#redis.takeReporting(lease.keys, lease.limits, committed, 0).then((decision) => {
      lease.reporting = 0;
      lease.report = null;
      if (!decision.ok) {
        // Not counted: kept for the next report (no new lease is granted meanwhile, so it stays
        // bounded). Timed out: Redis may have counted them, so they are dropped rather than
        // counted twice (at most maxLocal units, one more overshoot of the stated size).
        if (decision.reason !== 'timeout') lease.pending += committed;
        return;
      }
      const id = lease.keys.length === 1 ? lease.keys[0]! : lease.keys.join('\u0000');
      if (this.#leases.get(id) === lease) this.#renew(id, lease.keys, lease.limits, decision, false);
    });
  }

  #renew(
    id: string,
    keys: readonly string[],
    limits: readonly GcraLimit[],
    decision: Extract<RateDecision, { ok: true }>,
    asked: boolean,
  ): void {
    const now = this.#options.now();
    let lease = this.#leases.get(id);
    if (lease === undefined) {
      if (this.#leases.size >= this.#options.maxKeys) return;
      lease = {
        keys,
        limits,
        allowance: 0,
        pending: 0,
        aheadMs: [],
        at: now,
        blockedUntil: 0,
        reporting: 0,
        report: null,
      };
      this.#leases.set(id, lease);
    }
    lease.aheadMs = decision.aheadMs;
    lease.at = now;
    let left = Number.POSITIVE_INFINITY;
    let wait = 0;
    for (let i = 0; i < limits.length; i++) {
      left = Math.min(left, remaining(limits[i]!, decision.aheadMs[i]!));
      wait = Math.max(wait, retryAfterMs(limits[i]!, decision.aheadMs[i]!));
    }
    lease.allowance = Math.max(0, Math.min(this.#options.maxLocal, left) - lease.pending);
    // Only a refusal blocks: a report's answer (nothing asked) just leaves no allowance.
    lease.blockedUntil = asked && !decision.allowed ? now + wait : 0;
  }

  #tick(): void {
    const now = this.#options.now();
    for (const [id, lease] of this.#leases) {
      if (lease.pending > 0) this.#report(lease);
      else if (lease.reporting === 0 && now - lease.at > this.#leaseTtlMs && now >= lease.blockedUntil)
        this.#leases.delete(id);
    }
  }

  /** Counter sets with a lease (tests). */
  get leases(): number {
    return this.#leases.size;
  }

  /** Reports what is pending (each report bounded by the Redis timeout), then stops. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    const reports: Array<Promise<unknown>> = [];
    for (const lease of this.#leases.values()) {
      if (lease.pending === 0) continue;
      const committed = lease.pending;
      lease.pending = 0;
      reports.push(this.#redis.takeReporting(lease.keys, lease.limits, committed, 0));
    }
    await Promise.all(reports);
    this.#leases.clear();
  }
}

/** The counters as they stand now by this gateway's reckoning: refilled since, plus what it admitted. */
function estimate(lease: Lease, now: number): number[] {
  const elapsed = now - lease.at;
  const ahead: number[] = new Array(lease.limits.length);
  for (let i = 0; i < lease.limits.length; i++) {
    const left = lease.aheadMs[i]! - elapsed;
    ahead[i] = Math.max(left, 0) + (lease.pending + lease.reporting) * lease.limits[i]!.emissionMs;
  }
  return ahead;
}
