import type { CompiledUpstream } from '../../plan/types.ts';
import { SlidingCounts } from './sliding-counts.ts';

/** What the `gatehouse_upstream_circuit_state` gauge reports. */
export const circuitState = { closed: 0, open: 1, halfOpen: 2 } as const;
export type CircuitState = (typeof circuitState)[keyof typeof circuitState];

type Config = NonNullable<CompiledUpstream['circuitBreaker']>;

/**
 * The circuit breaker of one target. Closed: calls are counted over a sliding window, and once there
 * are `minRequests` of them with `failureRatio` failing, it opens. Open: no call for `openFor`, then
 * half-open: up to `halfOpenRequests` probes at once; one failure opens it again, `halfOpenRequests`
 * successes close it. Time moves only when asked (`now`), so nothing runs in the background.
 */
export class CircuitBreaker {
  readonly #config: Config;
  readonly #window: SlidingCounts;
  #state: CircuitState = circuitState.closed;
  #openUntil = 0;
  #probes = 0;
  #probeSuccesses = 0;

  constructor(config: Config) {
    this.#config = config;
    this.#window = new SlidingCounts(config.windowMs);
  }

  state(now: number): CircuitState {
    if (this.#state === circuitState.open && now >= this.#openUntil) {
      this.#state = circuitState.halfOpen;
      this.#probes = 0;
      this.#probeSuccesses = 0;
    }
    return this.#state;
  }

  /** Whether a call may go to the target now. */
  admits(now: number): boolean {
    const state = this.state(now);
    return (
      state === circuitState.closed ||
      (state === circuitState.halfOpen && this.#probes < this.#config.halfOpenRequests)
    );
  }

  /** A call starts (after `admits`). */
  started(now: number): void {
    if (this.state(now) === circuitState.halfOpen) this.#probes++;
  }

  /** A call's verdict: ok, failed, or null when it ended without one (the client went away). */
  settled(ok: boolean | null, now: number): void {
    const state = this.state(now);
    if (state === circuitState.halfOpen) {
      if (this.#probes > 0) this.#probes--;
      if (ok === null) return;
      if (!ok) this.#open(now);
      else if (++this.#probeSuccesses >= this.#config.halfOpenRequests) {
        this.#state = circuitState.closed;
        this.#window.clear();
      }
      return;
    }
    if (state !== circuitState.closed || ok === null) return;
    this.#window.add(now, 1, ok ? 0 : 1);
    const calls = this.#window.totalA(now);
    const failures = this.#window.totalB(now);
    if (calls >= this.#config.minRequests && failures / calls >= this.#config.failureRatio) this.#open(now);
  }

  #open(now: number): void {
    this.#state = circuitState.open;
    this.#openUntil = now + this.#config.openForMs;
    this.#window.clear();
  }
}
