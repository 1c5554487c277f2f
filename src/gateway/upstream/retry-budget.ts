import { SlidingCounts } from './sliding-counts.ts';

const windowMs = 10_000;

/**
 * Caps retries to a share of recent requests, so that retries cannot multiply the load on an upstream
 * that is already failing: over the last 10 seconds (ten one-second slices), at most
 * `ratio × requests + 10 × minPerSecond` retries.
 */
export class RetryBudget {
  readonly #ratio: number;
  readonly #floor: number;
  /** a: requests, b: retries. */
  readonly #counts = new SlidingCounts(windowMs, 10);

  constructor(budget: { readonly ratio: number; readonly minPerSecond: number }) {
    this.#ratio = budget.ratio;
    this.#floor = (budget.minPerSecond * windowMs) / 1000;
  }

  /** A request (not a retry) to the upstream. */
  request(now: number): void {
    this.#counts.add(now, 1, 0);
  }

  /** Takes one retry from the budget; false (and nothing taken) when it is spent. */
  tryRetry(now: number): boolean {
    const requests = this.#counts.totalA(now);
    const retries = this.#counts.totalB(now);
    if (retries + 1 > this.#ratio * requests + this.#floor) return false;
    this.#counts.add(now, 0, 1);
    return true;
  }
}
