import type { CompiledUpstream, Plan } from '../../plan/types.ts';
import type { UpstreamTargetStatus } from '../../telemetry/metrics.ts';
import { LiveUpstream } from './live-upstream.ts';
import { TargetRuntime, type UpstreamLog } from './target.ts';

export interface UpstreamRegistryDeps {
  now: () => number;
  /** Run active health checks (a serving gateway); off, targets stay healthy as far as checks go. */
  start: boolean;
  log: UpstreamLog;
}

/**
 * The live upstreams and their targets. Like identity providers they outlive plans: a reload that
 * leaves a target's settings alone keeps its pool, health and circuit; an upstream or target no plan
 * uses any more is closed gracefully (its requests in flight finish first).
 */
export class UpstreamRegistry {
  readonly #deps: UpstreamRegistryDeps;
  readonly #upstreams = new Map<string, LiveUpstream>();
  readonly #targets = new Map<string, TargetRuntime>();

  constructor(deps: UpstreamRegistryDeps) {
    this.#deps = deps;
  }

  get(upstream: CompiledUpstream): LiveUpstream {
    return this.#upstreams.get(upstream.runtimeKey) ?? this.#create(upstream);
  }

  #create(upstream: CompiledUpstream): LiveUpstream {
    const targets = upstream.targets.map((target) => {
      let runtime = this.#targets.get(target.key);
      if (!runtime) {
        runtime = new TargetRuntime(upstream, target, this.#deps);
        this.#targets.set(target.key, runtime);
      }
      return runtime;
    });
    const live = new LiveUpstream(upstream, targets, this.#deps);
    this.#upstreams.set(upstream.runtimeKey, live);
    return live;
  }

  /**
   * Makes the live state of every upstream `plan`'s rules use (health checks start now, not at the
   * first request) and closes what it does not use.
   */
  async retainOnly(plan: Plan): Promise<void> {
    const used = new Set<string>();
    for (const rule of plan.rules) {
      used.add(rule.upstream.runtimeKey);
      this.get(rule.upstream);
    }
    const keptTargets = new Set<TargetRuntime>();
    for (const [key, live] of this.#upstreams) {
      if (used.has(key)) for (const t of live.targets) keptTargets.add(t);
      else this.#upstreams.delete(key);
    }
    const closing: Promise<void>[] = [];
    for (const [key, target] of this.#targets) {
      if (keptTargets.has(target)) continue;
      this.#targets.delete(key);
      closing.push(target.close());
    }
    await Promise.all(closing);
  }

  async closeAll(): Promise<void> {
    const targets = [...this.#targets.values()];
    this.#upstreams.clear();
    this.#targets.clear();
    await Promise.all(targets.map((t) => t.destroy()));
  }

  /** The targets of the upstreams `plan` uses, for the metrics (read when scraped). */
  status(plan: Plan): UpstreamTargetStatus[] {
    const now = this.#deps.now();
    const out: UpstreamTargetStatus[] = [];
    const seen = new Set<string>();
    for (const rule of plan.rules) {
      const upstream = rule.upstream;
      if (seen.has(upstream.runtimeKey)) continue;
      seen.add(upstream.runtimeKey);
      const live = this.#upstreams.get(upstream.runtimeKey);
      if (!live) continue;
      for (const target of live.targets) {
        out.push({
          upstream: upstream.id,
          target: target.url,
          healthy: target.healthy && target.ejectedUntil <= now,
          circuit: target.circuit ? target.circuit.state(now) : null,
        });
      }
    }
    return out;
  }
}
