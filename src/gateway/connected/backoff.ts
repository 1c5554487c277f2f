export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  random?: () => number;
}

export const defaultBackoff: BackoffOptions = { baseMs: 500, maxMs: 30_000 };

/**
 * Exponential backoff with full jitter (a uniform delay in [0, min(max, base·2^attempt)]): many
 * gateways losing the same control plane do not come back in lockstep.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = defaultBackoff): number {
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor((options.random ?? Math.random)() * ceiling);
}
