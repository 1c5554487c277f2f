import type { CompiledRule } from '../plan/types.ts';
import type { Verdict } from '../policies/types.ts';
import type { RequestContext } from './context.ts';

export type PipelineResult = { readonly kind: 'forward' } | Extract<Verdict, { kind: 'respond' }>;

const FORWARD: PipelineResult = Object.freeze({ kind: 'forward' });
const UNAUTHENTICATED: PipelineResult = Object.freeze({
  kind: 'respond',
  code: 'unauthenticated',
  detail: 'no credential accepted by this route was presented',
});

/**
 * Runs a rule's stages in order. In `authenticate`, the first method that does not `skip` decides
 * (an invalid credential of its kind fails at once, no fallthrough); if all skip, 401. In the other
 * stages every policy must `continue`. Stays synchronous while policies answer synchronously, so a
 * route of cheap policies pays for no promise.
 */
export function runPipeline(
  rule: CompiledRule,
  ctx: RequestContext,
): PipelineResult | Promise<PipelineResult> {
  return runFrom(rule.pipeline, 0, 0, ctx);
}

function runFrom(
  pipeline: CompiledRule['pipeline'],
  stageIndex: number,
  policyIndex: number,
  ctx: RequestContext,
): PipelineResult | Promise<PipelineResult> {
  for (let s = stageIndex; s < pipeline.length; s++) {
    const { stage, policies } = pipeline[s]!;
    const authn = stage === 'authenticate';
    for (let p = s === stageIndex ? policyIndex : 0; p < policies.length; p++) {
      const outcome = policies[p]!.handle(ctx);
      if (outcome instanceof Promise) {
        return outcome.then((verdict) => {
          const next = afterVerdict(verdict, authn);
          if (next === 'next-policy') return runFrom(pipeline, s, p + 1, ctx).valueOf() as PipelineResult;
          if (next === 'next-stage') return runFrom(pipeline, s + 1, 0, ctx);
          return next;
        });
      }
      const next = afterVerdict(outcome, authn);
      if (next === 'next-stage') break;
      if (next !== 'next-policy') return next;
      if (authn && p === policies.length - 1) return UNAUTHENTICATED;
    }
  }
  return FORWARD;
}

function afterVerdict(verdict: Verdict, authn: boolean): 'next-policy' | 'next-stage' | PipelineResult {
  if (verdict.kind === 'respond') return verdict;
  if (authn) return verdict.kind === 'continue' ? 'next-stage' : 'next-policy';
  // Outside authenticate, "not responsible" and "satisfied" both let the request go on.
  return 'next-policy';
}
