import { toMillis } from '../config/duration.ts';
import type { RateLimitsSpec } from '../config/schemas/gateway.ts';
import type { RateLimitMetrics } from './metrics.ts';
import type { RateLimiterRegistry } from './registry.ts';
import type { RateLimitBackend } from './types.ts';

/** Gateway `spec.rateLimits` for one plan: checked once, its backend made when a rule first uses it. */
export interface CompiledRateLimits {
  /** The backend rate-limit policies use, and their metrics; null when the section has errors (reported there). */
  limiter(): { readonly backend: RateLimitBackend; readonly metrics: RateLimitMetrics } | null;
  /** The backend if some policy used it: what the plan keeps alive (null: no Redis connection made). */
  used(): RateLimitBackend | null;
}

type Fail = (path: Array<string | number>, message: string) => void;

/** Checks what the schema cannot: which Redis settings go together, and with which backend. */
export function compileRateLimits(
  spec: RateLimitsSpec,
  registry: RateLimiterRegistry,
  fail: Fail,
): CompiledRateLimits {
  const at = (...path: Array<string | number>) => ['spec', 'rateLimits', ...path];
  let errors = 0;
  const report: Fail = (path, message) => {
    errors++;
    fail(path, message);
  };
  const redis = spec.redis;
  if (spec.backend === 'redis') {
    if (redis === undefined) report(at('backend'), 'backend redis needs a `redis` section');
    else {
      const given = (['url', 'cluster', 'sentinel'] as const).filter((k) => redis[k] !== undefined);
      if (given.length !== 1)
        report(
          at('redis'),
          `give exactly one of url, cluster, sentinel (found ${given.join(', ') || 'none'})`,
        );
      const urls: Array<[Array<string | number>, string]> = [
        ...(redis.url === undefined
          ? []
          : [[at('redis', 'url'), redis.url] as [Array<string | number>, string]]),
        ...(redis.cluster?.nodes ?? []).map(
          (url, i) => [at('redis', 'cluster', 'nodes', i), url] as [Array<string | number>, string],
        ),
      ];
      for (const [path, url] of urls) {
        if (!URL.canParse(url) || new URL(url).hostname === '') report(path, `not a Redis URL: ${url}`);
      }
      const timeout = toMillis(redis.timeout);
      if (timeout < 1 || timeout > 60_000) report(at('redis', 'timeout'), 'must be between 1ms and 60s');
    }
  } else {
    if (redis !== undefined) report(at('redis'), 'only used with backend: redis (set it, or remove this)');
    if (spec.batching.enabled) report(at('batching', 'enabled'), 'batching is for backend: redis');
  }
  const flush = toMillis(spec.batching.flushInterval);
  if (spec.batching.enabled && (flush < 1 || flush > 60_000))
    report(at('batching', 'flushInterval'), 'must be between 1ms and 60s');

  let backend: RateLimitBackend | null = null;
  return {
    limiter() {
      if (errors > 0) return null;
      backend ??= registry.resolve(spec);
      return { backend, metrics: registry.metrics };
    },
    used: () => backend,
  };
}
