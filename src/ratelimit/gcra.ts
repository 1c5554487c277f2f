// The generic cell rate algorithm (GCRA), the token bucket stated with one number per counter: the
// theoretical arrival time (TAT) of the next request. A limit of `limit` per `window` with a burst
// of `burst` has emission interval T = window / limit and tolerance τ = (burst − 1) · T; a request
// at `now` is admitted when max(TAT, now) − now ≤ τ, and then moves TAT on by T. Why this algorithm:
// docs/decisions/0005-rate-limit-algorithm.md. Every backend stores TATs; everything the answer
// headers say is derived here from how far a TAT is ahead of now (`ahead`, in ms, ≥ 0).

/** One limit as the algorithm sees it, in milliseconds. */
export interface GcraLimit {
  /** T: one unit of the quota comes back every T ms. */
  readonly emissionMs: number;
  /** τ: how far TAT may be ahead of now for a request to be admitted, (burst − 1) · T. */
  readonly toleranceMs: number;
}

export function gcraLimit(limit: number, windowMs: number, burst: number = limit): GcraLimit {
  if (!(limit >= 1) || !(windowMs > 0) || !(burst >= 1))
    throw new TypeError('limit, window and burst must be positive');
  const emissionMs = windowMs / limit;
  return Object.freeze({ emissionMs, toleranceMs: (burst - 1) * emissionMs });
}

// Ratios of floating-point milliseconds land a hair below whole numbers (2.9999999); a request's
// worth of slack is far larger than this.
export const EPSILON = 1e-6;

/** Requests that would be admitted right now, one after the other, given how far TAT is ahead. */
export function remaining(limit: GcraLimit, aheadMs: number): number {
  const ahead = Math.max(aheadMs, 0);
  if (ahead > limit.toleranceMs + EPSILON) return 0;
  return Math.floor((limit.toleranceMs - ahead) / limit.emissionMs + EPSILON) + 1;
}

/** Milliseconds until one more request than `remaining` would be admitted (0 when already full). */
export function nextUnitMs(limit: GcraLimit, aheadMs: number): number {
  const ahead = Math.max(aheadMs, 0);
  const wait = ahead - limit.toleranceMs + remaining(limit, ahead) * limit.emissionMs;
  return wait > EPSILON ? Math.min(wait, ahead) : 0;
}

/** Milliseconds until a request would be admitted again; 0 when one would be now. */
export function retryAfterMs(limit: GcraLimit, aheadMs: number): number {
  const wait = aheadMs - limit.toleranceMs;
  return wait > EPSILON ? wait : 0;
}
