import Type, { type Static } from 'typebox';
import { Duration, toMillis } from '../../../config/duration.ts';
import { type RequestContext, setResponseHeader } from '../../../gateway/context.ts';
import { type GcraLimit, gcraLimit, nextUnitMs, remaining, retryAfterMs } from '../../../ratelimit/gcra.ts';
import type { RouteDecisions } from '../../../ratelimit/metrics.ts';
import type { RateDecision, RateLimitBackend } from '../../../ratelimit/types.ts';
import { CONTINUE, type PolicyFactory, respond, type Verdict } from '../../types.ts';
import { counterValue, fallbackValue, type KeyReader, keyPattern, keyReader, shortId } from './keys.ts';

const Limit = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 1_000_000_000, description: 'Requests admitted per window.' }),
    window: Duration(
      'What the limit is counted over: a whole number of seconds (1s, 10s, 1m, 1h). The quota comes ' +
        'back continuously, one request every window / limit, not all at once at the end of a window.',
    ),
    key: Type.String({
      pattern: keyPattern,
      description:
        'Who shares one counter: client (address, after trustedProxies), subject (authenticated caller), ' +
        'consumer (Consumer of an API key), route (everyone on the rule), header:<name>, claim:<name>, ' +
        'path:<param>. A request without the value (no caller, no header…) is counted by its client ' +
        'address instead.',
    }),
    burst: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 1_000_000_000,
        description:
          'Requests that may arrive at once when the counter is full; default `limit`. Lower smooths ' +
          'traffic (1: evenly spaced), higher allows bigger bursts at the same average rate.',
      }),
    ),
    name: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9._:-]{1,64}$',
        description:
          'Name in the RateLimit-Policy and RateLimit headers; default `<key>-<limit>-per-<window>`.',
      }),
    ),
  },
  { additionalProperties: false },
);

const RateLimitConfig = Type.Array(Limit, {
  minItems: 1,
  maxItems: 16,
  description:
    'Rate limits (GCRA, docs/rate-limits.md): a request is admitted only when every limit admits it, and ' +
    'then counts against all of them. Refused: 429 `rate_limited` with Retry-After. Every answer of the ' +
    'rule carries RateLimit-Policy (all limits) and RateLimit (the most restrictive). Counters live in ' +
    'the Gateway’s `rateLimits` backend. In a Policy the counters are the Policy’s, shared by the rules it ' +
    'applies to; limits of every scope apply.',
});
export type RateLimitConfig = Static<typeof RateLimitConfig>;

interface CompiledLimit {
  readonly name: string;
  readonly gcra: GcraLimit;
  /** For the 429's detail: never the key's value (it may be a header or a claim). */
  readonly describe: string;
  readonly key: string;
  readonly read: KeyReader;
  /** The key's value when it is the same for every request (`route`). */
  readonly constant: string | null;
  /** Identifies the counter: where the limit is written and what it is. */
  readonly id: string;
}

/** `rateLimit: [{ limit: 10, window: 1s, key: subject }]`, written directly in a rule or a Policy. */
export const rateLimit: PolicyFactory<RateLimitConfig> = {
  name: 'rateLimit',
  stage: 'limit',
  field: 'rateLimit',
  schema: RateLimitConfig,
  compile(config, deps) {
    const limiter = deps.rateLimiter();
    if (limiter === null) throw new TypeError('the Gateway’s spec.rateLimits has errors (reported there)');
    const rule = deps.rule;
    if (rule === undefined) throw new TypeError('rateLimit is compiled for a rule');
    const policy = deps.policy ?? null;
    // Counters belong to where the limits are written: a Policy's are shared by all its rules.
    const scope = policy === null ? `rule ${rule.id}` : `policy ${policy.name}`;
    const names = new Set<string>();
    const limits: CompiledLimit[] = config.map((spec, index) => {
      const windowMs = toMillis(spec.window);
      if (windowMs < 1000 || windowMs % 1000 !== 0)
        throw new TypeError(
          `limit ${index}: window ${spec.window} must be a whole number of seconds (RateLimit-Policy states it in seconds)`,
        );
      const name = spec.name ?? `${spec.key}-${spec.limit}-per-${spec.window}`;
      if (names.has(name)) throw new TypeError(`limit ${index}: two limits are named ${name}`);
      names.add(name);
      let reader: ReturnType<typeof keyReader>;
      try {
        reader = keyReader(spec.key, rule);
      } catch (err) {
        throw new TypeError(`limit ${index}: ${(err as Error).message}`);
      }
      return {
        name,
        gcra: gcraLimit(spec.limit, windowMs, spec.burst ?? spec.limit),
        describe: `${spec.limit} requests per ${spec.window} by ${spec.key}`,
        read: reader.read,
        id: shortId(`${scope}|${spec.key}|${spec.limit}|${windowMs}|${spec.burst ?? spec.limit}`),
        constant: reader.constant,
        key: spec.key,
      };
    });
    const counterKeys = counterKeyBuilder(limiter.backend.prefix, shortId(scope), limits);
    const params = limits.map((l) => l.gcra);
    const policyHeader = config
      .map((spec, i) => `"${limits[i]!.name}";q=${spec.limit};w=${toMillis(spec.window) / 1000}`)
      .join(', ');
    return compiled(limiter.backend, limits, params, counterKeys, {
      policyHeader,
      counts: limiter.metrics.route(rule.id),
      // A shadow Policy must not change what the client gets: it counts and records, no headers.
      headers: policy?.mode !== 'shadow',
    });
  },
};

interface Settings {
  readonly policyHeader: string;
  readonly counts: RouteDecisions;
  readonly headers: boolean;
}

function compiled(
  backend: RateLimitBackend,
  limits: readonly CompiledLimit[],
  params: readonly GcraLimit[],
  counterKeys: (ctx: RequestContext) => readonly string[],
  settings: Settings,
) {
  const { counts } = settings;
  const unavailable = respond('rate_limit_unavailable', 'the rate-limit backend did not answer', {
    'retry-after': '1',
  });
  const settle = (ctx: RequestContext, decision: RateDecision): Verdict => {
    if (!decision.ok) {
      if (settings.headers) addPolicyHeader(ctx, settings.policyHeader);
      if (backend.failOpen) {
        counts.failedOpen++;
        return CONTINUE;
      }
      counts.failedClosed++;
      return unavailable;
    }
    const { aheadMs } = decision;
    if (decision.allowed) {
      counts.allowed++;
      if (settings.headers) {
        // The most restrictive: least remaining, then the longest wait for more.
        let pick = 0;
        let left = remaining(params[0]!, aheadMs[0]!);
        let next = nextUnitMs(params[0]!, aheadMs[0]!);
        for (let i = 1; i < params.length; i++) {
          const r = remaining(params[i]!, aheadMs[i]!);
          const t = nextUnitMs(params[i]!, aheadMs[i]!);
          if (r < left || (r === left && t > next)) [pick, left, next] = [i, r, t];
        }
        addHeaders(ctx, settings.policyHeader, limits[pick]!.name, left, Math.ceil(next / 1000));
      }
      return CONTINUE;
    }
    counts.limited++;
    let pick = 0;
    let wait = 0;
    for (let i = 0; i < params.length; i++) {
      const w = retryAfterMs(params[i]!, aheadMs[i]!);
      if (w > wait) [pick, wait] = [i, w];
    }
    let seconds = Math.max(1, Math.ceil(wait / 1000));
    // A limit of an earlier scope that has just been used up holds the next request back too.
    const earlier = earlierItem(ctx);
    if (earlier !== null && earlier.r === 0 && earlier.t > seconds) seconds = earlier.t;
    if (settings.headers) addHeaders(ctx, settings.policyHeader, limits[pick]!.name, 0, seconds);
    return respond('rate_limited', `limit ${limits[pick]!.name} reached (${limits[pick]!.describe})`, {
      'retry-after': String(seconds),
    });
  };
  return {
    name: 'rateLimit',
    handle(ctx: RequestContext): Verdict | Promise<Verdict> {
      const decision = backend.take(counterKeys(ctx), params);
      if (decision instanceof Promise) return decision.then((d) => settle(ctx, d));
      return settle(ctx, decision);
    },
  };
}

/**
 * Counter keys of one request. Redis Cluster needs all the keys of one decision in one hash slot,
 * so they share a hash tag (`{…}`): a single limit's tag is its own counter, so per-caller counters
 * spread over the cluster; several limits by the same key share the caller's tag; several limits by
 * different keys share the scope's tag (one slot for the rule or Policy).
 */
function counterKeyBuilder(
  prefix: string,
  scopeId: string,
  limits: readonly CompiledLimit[],
): (ctx: RequestContext) => readonly string[] {
  const counterValueOf = (limit: CompiledLimit, ctx: RequestContext) => {
    if (limit.constant !== null) return counterValue(limit.constant);
    const raw = limit.read(ctx);
    return raw === undefined ? fallbackValue(ctx) : counterValue(raw);
  };
  const build =
    limits.length === 1
      ? (ctx: RequestContext) => [`${prefix}{${limits[0]!.id}:${counterValueOf(limits[0]!, ctx)}}`]
      : limits.every((l) => l.key === limits[0]!.key)
        ? (ctx: RequestContext) => {
            const tag = `${prefix}{${scopeId}:${counterValueOf(limits[0]!, ctx)}}`;
            return limits.map((l) => tag + l.id);
          }
        : (ctx: RequestContext) =>
            limits.map((l) => `${prefix}{${scopeId}}${l.id}:${counterValueOf(l, ctx)}`);
  if (limits.every((l) => l.constant !== null)) {
    // Every limit by route: the same keys for every request, built once.
    const keys = Object.freeze(build(undefined as unknown as RequestContext));
    return () => keys;
  }
  return build;
}

function addPolicyHeader(ctx: RequestContext, policyHeader: string): void {
  const earlier = ctx.responseHeaders?.get('ratelimit-policy');
  setResponseHeader(
    ctx,
    'ratelimit-policy',
    earlier === undefined ? policyHeader : `${earlier}, ${policyHeader}`,
  );
}

/** RateLimit-Policy lists every limit of every layer; RateLimit keeps the most restrictive item. */
function addHeaders(
  ctx: RequestContext,
  policyHeader: string,
  name: string,
  left: number,
  seconds: number,
): void {
  addPolicyHeader(ctx, policyHeader);
  const earlier = earlierItem(ctx);
  if (earlier !== null && (earlier.r < left || (earlier.r === left && earlier.t >= seconds))) return;
  setResponseHeader(ctx, 'ratelimit', `"${name}";r=${left};t=${seconds}`);
}

/** The RateLimit item a rateLimit list of an earlier scope recorded for this request, if any. */
function earlierItem(ctx: RequestContext): { r: number; t: number } | null {
  const item = ctx.responseHeaders?.get('ratelimit');
  if (item === undefined) return null;
  const match = /;r=(\d+);t=(\d+)$/.exec(item);
  return match === null ? null : { r: Number(match[1]), t: Number(match[2]) };
}
