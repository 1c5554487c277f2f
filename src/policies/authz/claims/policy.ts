import Type, { type Static } from 'typebox';
import { CONTINUE, type PolicyFactory, respond, type Verdict } from '../../types.ts';
import { Condition, callerOf, compileConditions, notAuthenticated, paramsFor } from '../conditions.ts';

const ClaimsConfig = Type.Array(Condition, {
  minItems: 1,
  description: 'Every one of these conditions must hold, otherwise 403 `forbidden`.',
});
export type ClaimsConfig = Static<typeof ClaimsConfig>;

/** `authorize: { claims: [...] }`: all conditions must hold. */
export const claims: PolicyFactory<ClaimsConfig> = {
  name: 'claims',
  stage: 'authorize',
  schema: ClaimsConfig,
  compile(config, deps) {
    const predicates = compileConditions(config, paramsFor(deps));
    const verdicts = predicates.map((_, i) => respond('forbidden', `authorize.claims[${i}] does not hold`));
    return {
      name: 'claims',
      handle(ctx): Verdict {
        const identity = callerOf(ctx);
        if (identity === null) return notAuthenticated;
        for (let i = 0; i < predicates.length; i++) if (!predicates[i]!(ctx, identity)) return verdicts[i]!;
        return CONTINUE;
      },
    };
  },
};
