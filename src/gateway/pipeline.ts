import type { CompiledRule } from '../plan/types.ts';
import type { CompiledPolicy, Stage, Verdict } from '../policies/types.ts';
import type { RequestContext } from './context.ts';

export type PipelineResult = { readonly kind: 'forward' } | Extract<Verdict, { kind: 'respond' | 'answer' }>;

/** Sees each policy's verdict as it is given (explain); the request path passes none. */
export type VerdictObserver = (stage: Stage, policy: CompiledPolicy, verdict: Verdict) => void;

const FORWARD: PipelineResult = Object.freeze({ kind: 'forward' });
const UNAUTHENTICATED: PipelineResult = Object.freeze({
  kind: 'respond',
  code: 'unauthenticated',
  detail: 'no credential accepted by this route was presented',
});

/** Each authenticate chain's 401, built on first use and then reused (chains are immutable, per plan). */
const unauthenticatedByChain = new WeakMap<readonly CompiledPolicy[], PipelineResult>();

/** 401 with the challenges of the chain's methods (Bearer, ApiKey…), so a client knows what to send. */
function unauthenticated(policies: readonly CompiledPolicy[]): PipelineResult {
  let result = unauthenticatedByChain.get(policies);
  if (result === undefined) {
    const challenges = [...new Set(policies.map((p) => p.challenge).filter((c) => c !== undefined))];
    result =
      challenges.length === 0
        ? UNAUTHENTICATED
        : (Object.freeze({
            ...UNAUTHENTICATED,
            headers: Object.freeze({ 'www-authenticate': challenges.join(', ') }),
          }) as PipelineResult);
    unauthenticatedByChain.set(policies, result);
  }
  return result;
}

/**
 * Runs a rule's stages in order. In `authenticate`, the first method that does not `skip` decides
 * (an invalid credential of its kind fails at once, no fallthrough); if all skip, 401. In the other
 * stages every policy must `continue`. Stays synchronous while policies answer synchronously, so a
 * route of cheap policies pays for no promise. `onVerdict` is only passed by explain: without it
 * the loop does no extra work.
 */
export function runPipeline(
  rule: CompiledRule,
  ctx: RequestContext,
  onVerdict?: VerdictObserver,
): PipelineResult | Promise<PipelineResult> {
  return runFrom(rule.pipeline, 0, 0, ctx, onVerdict);
}

function runFrom(
  pipeline: CompiledRule['pipeline'],
  stageIndex: number,
  policyIndex: number,
  ctx: RequestContext,
  onVerdict: VerdictObserver | undefined,
): PipelineResult | Promise<PipelineResult> {
  for (let s = stageIndex; s < pipeline.length; s++) {
    const { stage, policies } = pipeline[s]!;
    const authn = stage === 'authenticate';
    for (let p = s === stageIndex ? policyIndex : 0; p < policies.length; p++) {
      const policy = policies[p]!;
      const outcome = policy.handle(ctx);
      if (outcome instanceof Promise) {
        return outcome.then((verdict) => {
          if (onVerdict) onVerdict(stage, policy, verdict);
          const next = afterVerdict(verdict, authn);
          if (next === 'next-policy') {
            if (authn && p === policies.length - 1) return unauthenticated(policies);
            return runFrom(pipeline, s, p + 1, ctx, onVerdict);
          }
          if (next === 'next-stage') return runFrom(pipeline, s + 1, 0, ctx, onVerdict);
          return next;
        });
      }
      if (onVerdict) onVerdict(stage, policy, outcome);
      const next = afterVerdict(outcome, authn);
      if (next === 'next-stage') break;
      if (next !== 'next-policy') return next;
      if (authn && p === policies.length - 1) return unauthenticated(policies);
    }
  }
  return FORWARD;
}

function afterVerdict(verdict: Verdict, authn: boolean): 'next-policy' | 'next-stage' | PipelineResult {
  if (verdict.kind === 'respond' || verdict.kind === 'answer') return verdict;
  if (authn) return verdict.kind === 'continue' ? 'next-stage' : 'next-policy';
  // Outside authenticate, "not responsible" and "satisfied" both let the request go on.
  return 'next-policy';
}
