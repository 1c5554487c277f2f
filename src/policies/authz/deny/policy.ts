import Type, { type Static } from 'typebox';
import { CONTINUE, type PolicyFactory, respond, type Verdict } from '../../types.ts';
import { Condition, callerOf, compileConditions, notAuthenticated, paramsFor } from '../conditions.ts';

const DenyConfig = Type.Array(Condition, {
  minItems: 1,
  description:
    'Refuse (403 `forbidden`) when any of these conditions matches. Checked first: a deny wins over every allow.',
});
export type DenyConfig = Static<typeof DenyConfig>;

/** `authorize: { deny: [...] }`: any matching condition refuses the request. */
export const deny: PolicyFactory<DenyConfig> = {
  name: 'deny',
  stage: 'authorize',
  schema: DenyConfig,
  compile(config, deps) {
    const predicates = compileConditions(config, paramsFor(deps));
    const verdicts = predicates.map((_, i) => respond('forbidden', `denied by authorize.deny[${i}]`));
    return {
      name: 'deny',
      handle(ctx): Verdict {
        const identity = callerOf(ctx);
        if (identity === null) return notAuthenticated;
        for (let i = 0; i < predicates.length; i++) if (predicates[i]!(ctx, identity)) return verdicts[i]!;
        return CONTINUE;
      },
    };
  },
};
