import type { CompiledUpstream, HashOn } from '../../plan/types.ts';
import type { RequestContext } from '../context.ts';
import { hash32 } from './hash.ts';
import { HashRing } from './hash-ring.ts';

/**
 * Picks the target of a request among the eligible ones (eligible[i] === 1: healthy, not ejected,
 * circuit admitting, not already tried). Returns its index, or -1 when none is eligible.
 */
export interface Balancer {
  pick(ctx: RequestContext, eligible: Uint8Array): number;
}

/** What balancers read of a target while picking. */
export interface BalancedTarget {
  readonly inFlight: number;
}

export function createBalancer(upstream: CompiledUpstream, targets: readonly BalancedTarget[]): Balancer {
  const weights = upstream.targets.map((t) => t.weight);
  switch (upstream.loadBalancer.algorithm) {
    case 'least-request':
      return new LeastRequest(weights, targets);
    case 'consistent-hash':
      return new ConsistentHash(
        upstream.targets.map((t) => ({ key: t.url, weight: t.weight })),
        upstream.loadBalancer.hashOn!,
        new SmoothRoundRobin(weights),
      );
    default:
      return new SmoothRoundRobin(weights);
  }
}

/**
 * Smooth weighted round-robin (as nginx does it): each pick adds every eligible target's weight to
 * its running score, takes the highest and takes the total off it. Weights 3:1 give A A B A, never
 * A A A B, and the sequence is exact over any whole cycle.
 */
export class SmoothRoundRobin implements Balancer {
  readonly #weights: Int32Array;
  readonly #scores: Float64Array;

  constructor(weights: readonly number[]) {
    this.#weights = Int32Array.from(weights);
    this.#scores = new Float64Array(weights.length);
  }

  pick(_ctx: RequestContext | null, eligible: Uint8Array): number {
    const weights = this.#weights;
    const scores = this.#scores;
    let best = -1;
    let total = 0;
    for (let i = 0; i < weights.length; i++) {
      if (eligible[i] !== 1) continue;
      scores[i]! += weights[i]!;
      total += weights[i]!;
      if (best < 0 || scores[i]! > scores[best]!) best = i;
    }
    if (best >= 0) scores[best]! -= total;
    return best;
  }
}

/**
 * The eligible target with the fewest requests in flight per unit of weight (counting the new one).
 * Ties go to targets in turn, so equal targets at rest are still used round-robin.
 */
export class LeastRequest implements Balancer {
  readonly #weights: readonly number[];
  readonly #targets: readonly BalancedTarget[];
  #next = 0;

  constructor(weights: readonly number[], targets: readonly BalancedTarget[]) {
    this.#weights = weights;
    this.#targets = targets;
  }

  pick(_ctx: RequestContext | null, eligible: Uint8Array): number {
    const count = this.#targets.length;
    const start = this.#next;
    this.#next = start + 1 === count ? 0 : start + 1;
    let best = -1;
    let bestScore = Number.POSITIVE_INFINITY;
    for (let k = 0; k < count; k++) {
      const i = start + k < count ? start + k : start + k - count;
      if (eligible[i] !== 1) continue;
      const score = (this.#targets[i]!.inFlight + 1) / this.#weights[i]!;
      if (score < bestScore) {
        best = i;
        bestScore = score;
      }
    }
    return best;
  }
}

/** Hashes the request's key onto the ring; a request without the key is balanced by `fallback`. */
export class ConsistentHash implements Balancer {
  readonly #ring: HashRing;
  readonly #hashOn: HashOn;
  readonly #fallback: Balancer;

  constructor(nodes: ReadonlyArray<{ key: string; weight: number }>, hashOn: HashOn, fallback: Balancer) {
    this.#ring = new HashRing(nodes);
    this.#hashOn = hashOn;
    this.#fallback = fallback;
  }

  pick(ctx: RequestContext, eligible: Uint8Array): number {
    const key = hashKey(ctx, this.#hashOn);
    if (key === null) return this.#fallback.pick(ctx, eligible);
    return this.#ring.find(hash32(key), eligible);
  }
}

/** The value a request is hashed on; null when it has none (no such header, cookie or subject). */
export function hashKey(ctx: RequestContext, hashOn: HashOn): string | null {
  switch (hashOn.kind) {
    case 'client':
      return ctx.client.address;
    case 'subject':
      return ctx.identity?.subject || null;
    case 'header': {
      const value = ctx.headers[hashOn.name];
      if (value === undefined) return null;
      const text = typeof value === 'string' ? value : value.join(',');
      return text === '' ? null : text;
    }
    case 'cookie':
      return cookieValue(ctx.headers.cookie, hashOn.name);
  }
}

/** The value of cookie `name` in a Cookie header (`a=1; b=2`), or null. */
export function cookieValue(header: string | undefined, name: string): string | null {
  if (!header) return null;
  let from = 0;
  while (from < header.length) {
    let end = header.indexOf(';', from);
    if (end < 0) end = header.length;
    const eq = header.indexOf('=', from);
    if (eq > from && eq < end && header.slice(from, eq).trim() === name) {
      const value = header.slice(eq + 1, end).trim();
      return value === '' ? null : value;
    }
    from = end + 1;
  }
  return null;
}
