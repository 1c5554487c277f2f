import Type, { type Static } from 'typebox';
import { CONTINUE, type PolicyFactory, respond, type Verdict } from '../../types.ts';
import { Condition, callerOf, compileConditions, notAuthenticated, paramsFor } from '../conditions.ts';

const AllowConfig = Type.Array(Condition, {
  minItems: 1,
  description:
    'At least one of these conditions must match, otherwise 403 `forbidden` (no matching allow is a deny). ' +
    'Checked last, after every other authorize policy.',
});
export type AllowConfig = Static<typeof AllowConfig>;

const noneMatched = respond('forbidden', 'no authorize.allow condition matched');

/** `authorize: { allow: [...] }`: the request needs one matching condition. */
export const allow: PolicyFactory<AllowConfig> = {
  name: 'allow',
  stage: 'authorize',
  schema: AllowConfig,
  compile(config, deps) {
    const predicates = compileConditions(config, paramsFor(deps));
    return {
      name: 'allow',
      handle(ctx): Verdict {
        const identity = callerOf(ctx);
        if (identity === null) return notAuthenticated;
        for (const matches of predicates) if (matches(ctx, identity)) return CONTINUE;
        return noneMatched;
      },
    };
  },
};
