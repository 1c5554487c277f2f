import Type, { type Static } from 'typebox';
import { CONTINUE, type PolicyFactory, respond, type Verdict } from '../../types.ts';
import { callerOf, notAuthenticated } from '../conditions.ts';

const AudiencesConfig = Type.Array(Type.String({ minLength: 1 }), {
  minItems: 1,
  uniqueItems: true,
  description:
    'The token’s `aud` (a string or an array) must include one of these, otherwise 403 `forbidden`. ' +
    'Identities without a token (API key, certificate) have no audience.',
});
export type AudiencesConfig = Static<typeof AudiencesConfig>;

const wrongAudience = respond('forbidden', 'the token is not meant for this audience');

/** `authorize: { audiences: [...] }`: the token names one of them in `aud`. */
export const audiences: PolicyFactory<AudiencesConfig> = {
  name: 'audiences',
  stage: 'authorize',
  schema: AudiencesConfig,
  compile(config) {
    const accepted = new Set(config);
    return {
      name: 'audiences',
      handle(ctx): Verdict {
        const identity = callerOf(ctx);
        if (identity === null) return notAuthenticated;
        const aud = identity.claims?.aud;
        if (typeof aud === 'string') return accepted.has(aud) ? CONTINUE : wrongAudience;
        if (Array.isArray(aud))
          for (const a of aud) if (typeof a === 'string' && accepted.has(a)) return CONTINUE;
        return wrongAudience;
      },
    };
  },
};
