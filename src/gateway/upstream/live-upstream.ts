import type { CompiledUpstream } from '../../plan/types.ts';
import type { RequestContext } from '../context.ts';
import { type Balancer, createBalancer } from './balancer.ts';
import { eject, mayEject } from './outlier.ts';
import { RetryBudget } from './retry-budget.ts';
import type { TargetRuntime, UpstreamLog } from './target.ts';

/**
 * An upstream as requests use it: its targets' live state, the balancer and the retry budget. A call
 * to a target is `begin` → `settle` (its verdict, once) → `release` (when its response is done), but
 * only when `tracked`: an upstream with one target and none of outlier detection, circuit breaker or
 * least-request has nothing to learn from calls, and its pick is free.
 */
export class LiveUpstream {
  readonly config: CompiledUpstream;
  readonly targets: readonly TargetRuntime[];
  readonly tracked: boolean;
  readonly retryBudget: RetryBudget | null;
  readonly #only: TargetRuntime | null;
  readonly #balancer: Balancer;
  /** Scratch for picks (one request at a time: the event loop does not interleave a pick). */
  readonly #eligible: Uint8Array;
  readonly #now: () => number;
  readonly #log: UpstreamLog;

  constructor(
    config: CompiledUpstream,
    targets: readonly TargetRuntime[],
    deps: { now: () => number; log: UpstreamLog },
  ) {
    this.config = config;
    this.targets = targets;
    this.#now = deps.now;
    this.#log = deps.log;
    this.tracked =
      config.outlierDetection !== null ||
      config.circuitBreaker !== null ||
      config.loadBalancer.algorithm === 'least-request';
    const simple = targets.length === 1 && config.healthCheck === null && !this.tracked;
    this.#only = simple ? targets[0]! : null;
    this.retryBudget = config.retries ? new RetryBudget(config.retries.budget) : null;
    this.#balancer = createBalancer(config, targets);
    this.#eligible = new Uint8Array(targets.length);
  }

  /**
   * The target for a request: an available one (healthy, not ejected, circuit admitting), preferring
   * one not in `avoid` (the targets a retry already tried). Null when no target is available.
   */
  pick(ctx: RequestContext, avoid: readonly TargetRuntime[] | null): TargetRuntime | null {
    if (this.#only !== null) return this.#only;
    const now = this.#now();
    const eligible = this.#eligible;
    const targets = this.targets;
    let available = 0;
    let preferred = 0;
    for (let i = 0; i < targets.length; i++) {
      const target = targets[i]!;
      const ok = target.available(now);
      if (ok) available++;
      const take = ok && (avoid === null || !avoid.includes(target));
      if (take) preferred++;
      eligible[i] = take ? 1 : 0;
    }
    if (available === 0) return null;
    if (preferred === 0)
      for (let i = 0; i < targets.length; i++) eligible[i] = targets[i]!.available(now) ? 1 : 0;
    const index = this.#balancer.pick(ctx, eligible);
    return index < 0 ? null : targets[index]!;
  }

  /** A request (not a retry) to the upstream, for the retry budget. */
  countRequest(): void {
    this.retryBudget?.request(this.#now());
  }

  /** Takes a retry from the budget; false when it is spent. */
  takeRetry(): boolean {
    return this.retryBudget?.tryRetry(this.#now()) ?? false;
  }

  begin(target: TargetRuntime): void {
    target.inFlight++;
    target.circuit?.started(this.#now());
  }

  /** A call's verdict: ok (an answer below 500), failed (5xx or no answer) or null (the client left). */
  settle(target: TargetRuntime, ok: boolean | null): void {
    const now = this.#now();
    target.circuit?.settled(ok, now);
    const outlier = this.config.outlierDetection;
    if (outlier === null || ok === null) return;
    if (ok) {
      target.consecutiveFailures = 0;
      return;
    }
    if (++target.consecutiveFailures < outlier.consecutiveFailures || target.ejectedUntil > now) return;
    if (!mayEject(target, this.targets, outlier, now)) return;
    const ms = eject(target, outlier, now);
    this.#log(
      'warn',
      { upstream: this.config.id, target: target.url, ejectedMs: ms, ejections: target.ejections },
      'upstream target ejected',
    );
  }

  release(target: TargetRuntime): void {
    target.inFlight--;
  }
}
