import type { ProblemCode } from '../errors.ts';
import type { RequestContext } from '../gateway/context.ts';
import { CONTINUE, type CompiledPolicy, type Verdict } from '../policies/types.ts';

/** A denial a shadow-mode Policy would have answered with, had it been enforced. */
export interface ShadowDenial {
  /** `namespace/name` of the Policy. */
  readonly policy: string;
  /** Id of the rule the request was routed to (`namespace/apirule#index`). */
  readonly route: string;
  readonly code: ProblemCode;
  readonly detail?: string;
  readonly requestId: string;
}

/** Where shadow denials go: the running gateway logs and counts them; offline compiles drop them. */
export type ShadowDenialRecorder = (denial: ShadowDenial) => void;

export const dropShadowDenials: ShadowDenialRecorder = () => {};

/** A shadow-mode policy; `inner` is the policy it runs (explain can evaluate it without recording). */
export interface ShadowCompiledPolicy extends CompiledPolicy {
  readonly shadow: { readonly inner: CompiledPolicy; readonly policy: string };
}

export function isShadowPolicy(policy: CompiledPolicy): policy is ShadowCompiledPolicy {
  return 'shadow' in policy;
}

/**
 * Runs `inner` and records a `respond` verdict instead of answering with it: the request goes on
 * as if the policy had passed. A policy that throws is recorded as `internal_error` rather than
 * failing the request, since shadow mode exists to try policies out without affecting traffic.
 */
export function shadowPolicy(
  inner: CompiledPolicy,
  where: { readonly policy: string; readonly route: string },
  record: ShadowDenialRecorder,
): ShadowCompiledPolicy {
  const observe = (ctx: RequestContext, verdict: Verdict): Verdict => {
    if (verdict.kind !== 'respond') return verdict;
    record({ ...where, code: verdict.code, detail: verdict.detail, requestId: ctx.id });
    return CONTINUE;
  };
  const recordThrow = (ctx: RequestContext, err: unknown): Verdict => {
    record({ ...where, code: 'internal_error', detail: (err as Error)?.message, requestId: ctx.id });
    return CONTINUE;
  };
  return Object.freeze({
    name: `shadow:${inner.name}`,
    shadow: Object.freeze({ inner, policy: where.policy }),
    handle(ctx: RequestContext): Verdict | Promise<Verdict> {
      let outcome: Verdict | Promise<Verdict>;
      try {
        outcome = inner.handle(ctx);
      } catch (err) {
        return recordThrow(ctx, err);
      }
      if (outcome instanceof Promise)
        return outcome.then(
          (verdict) => observe(ctx, verdict),
          (err: unknown) => recordThrow(ctx, err),
        );
      return observe(ctx, outcome);
    },
  });
}
