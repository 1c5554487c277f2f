import type { TSchema } from 'typebox';
import type { OutboundCredentials } from '../egress/credentials.ts';
import type { ProblemCode } from '../errors.ts';
import type { RequestContext } from '../gateway/context.ts';
import type { ConsumerIndex } from '../identity/consumers.ts';
import type { TokenIssuer } from '../identity/token-issuer.ts';
import type { ProviderRuntime } from '../identity/types.ts';
import type { RateLimitMetrics } from '../ratelimit/metrics.ts';
import type { RateLimitBackend } from '../ratelimit/types.ts';

/**
 * The stages of the request pipeline, run in this order. `request` comes before `authenticate`:
 * what it checks (client address, CORS) needs no identity, and a CORS preflight carries no credentials.
 */
export const stages = ['request', 'authenticate', 'authorize', 'limit', 'mutate'] as const;
export type Stage = (typeof stages)[number];

/**
 * What a policy decides. Policies return verdicts rather than throw: an exception in `handle`
 * is a bug and becomes a 500 `internal_error`, and the request is denied.
 * - continue: this policy is satisfied (an authenticator has set the identity);
 * - skip: not responsible (an authenticator found no credential of its kind);
 * - respond: stop and answer with the error;
 * - answer: stop and answer with this status and headers, no body — the gateway itself is the
 *   server for this request (a CORS preflight), nothing is forwarded and it is not an error.
 */
export type Verdict =
  | { readonly kind: 'continue' }
  | { readonly kind: 'skip' }
  | {
      readonly kind: 'respond';
      readonly code: ProblemCode;
      readonly detail?: string;
      readonly headers?: Readonly<Record<string, string>>;
    }
  | { readonly kind: 'answer'; readonly status: number; readonly headers: Readonly<Record<string, string>> };

export const CONTINUE: Verdict = Object.freeze({ kind: 'continue' });
export const SKIP: Verdict = Object.freeze({ kind: 'skip' });
export function respond(code: ProblemCode, detail?: string, headers?: Record<string, string>): Verdict {
  return { kind: 'respond', code, detail, headers };
}

/** A policy compiled for one config version: immutable, `handle` only reads prepared state. */
export interface CompiledPolicy {
  readonly name: string;
  /**
   * Authentication methods: the `WWW-Authenticate` challenge to offer when every method of the
   * chain stepped aside (RFC 9110 §11.6.1), e.g. `Bearer` or `ApiKey header="x-api-key"`.
   */
  readonly challenge?: string;
  /**
   * Answers CORS preflights itself (`cors`): a preflight asking for one of the rule's methods is
   * routed to the rule even when its `methods` leave out OPTIONS (src/gateway/request-context.ts).
   */
  readonly answersPreflights?: boolean;
  handle(ctx: RequestContext): Verdict | Promise<Verdict>;
}

/** What a policy may use; passed in, never reached for (no globals, no process.env). */
export interface PolicyDeps {
  readonly now: () => number;
  /** Namespace of the APIRule (or Policy) being compiled: references resolve inside it. */
  readonly namespace: string;
  /** The live IdentityProvider of that name in the namespace; undefined when there is none. */
  provider(name: string): ProviderRuntime | undefined;
  /** The Consumers of the namespace, indexed once per plan (empty when there are none). */
  consumers(): ConsumerIndex;
  /**
   * The gateway's internal token issuer (Gateway `spec.tokens`; made with the defaults on first use
   * when that section is absent); null when that section has errors, which are reported there.
   */
  tokenIssuer(): TokenIssuer | null;
  /**
   * Secrets from the environment and OAuth client-credentials token sources, for policies that
   * send a credential upstream (egress); offline compiles (validate, explain) get no secrets.
   */
  credentials(): OutboundCredentials;
  /**
   * Where rate-limit counters live (Gateway `spec.rateLimits`, local by default; a Redis connection
   * is made on first use) and their metrics; null when that section has errors, reported there.
   */
  rateLimiter(): { readonly backend: RateLimitBackend; readonly metrics: RateLimitMetrics } | null;
  /** The rule being compiled (`namespace/apirule#index` and its path template); absent in unit tests. */
  readonly rule?: { readonly id: string; readonly template: string };
  /** The Policy the config is written in (null: the rule's own); absent in unit tests. */
  readonly policy?: { readonly name: string; readonly mode: 'enforce' | 'shadow' } | null;
}

/**
 * One kind of policy: its config schema (part of the APIRule schema) and its compiler.
 * Where it is written in a rule follows from its stage: `authenticate` is an ordered list of
 * one-key entries (`- jwt: {...}`); the other stages are objects keyed by policy name
 * (`authorize: { requiredScopes: [...] }`, `mutate: { headers: {...} }`), run in registry order.
 * `compile` throws TypeError for a config that is valid by schema but unusable (the message is
 * reported at the policy's line).
 */
export interface PolicyFactory<C = unknown> {
  readonly name: string;
  readonly stage: Stage;
  readonly schema: TSchema;
  /** Must be the last entry of its stage's list when used (e.g. `anonymous` in `authenticate`). */
  readonly mustBeLast?: boolean;
  /**
   * The policy speaks to the client itself — answers requests (`answer` verdicts) or adds response
   * headers — as `cors` does. Such a policy has one config per rule, the most specific layer's
   * (accumulating several would answer twice), and a shadow-mode Policy may not set it: shadow
   * must not change what the client gets.
   */
  readonly answers?: boolean;
  /**
   * Written as this rule field itself rather than inside its stage's object — `rateLimit: [...]`,
   * not `limit: { rateLimit: [...] }` — and merged across scopes like the rest of its stage.
   */
  readonly field?: string;
  compile(config: C, deps: PolicyDeps): CompiledPolicy;
}
