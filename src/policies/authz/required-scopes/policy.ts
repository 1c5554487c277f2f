import Type, { type Static } from 'typebox';
import { CONTINUE, type PolicyFactory, respond, type Verdict } from '../../types.ts';
import { callerOf, notAuthenticated } from '../conditions.ts';

const RequiredScopesConfig = Type.Array(
  // RFC 6749 §3.3 scope-token: what may stand inside the quoted `scope` of the challenge.
  Type.String({ pattern: '^[\\x21\\x23-\\x5B\\x5D-\\x7E]+$' }),
  {
    minItems: 1,
    uniqueItems: true,
    description:
      'Scopes the token must all grant (from `scp`, `scope` or `scopes`), otherwise 403 `insufficient_scope` ' +
      'with `WWW-Authenticate: Bearer error="insufficient_scope"` naming them.',
  },
);
export type RequiredScopesConfig = Static<typeof RequiredScopesConfig>;

/** `authorize: { requiredScopes: [...] }`: every scope must have been granted (RFC 6750 §3.1). */
export const requiredScopes: PolicyFactory<RequiredScopesConfig> = {
  name: 'requiredScopes',
  stage: 'authorize',
  schema: RequiredScopesConfig,
  compile(config) {
    const required = [...config];
    const list = required.join(' ');
    const insufficient = respond('insufficient_scope', `requires scopes: ${list}`, {
      'www-authenticate': `Bearer error="insufficient_scope", scope="${list}"`,
    });
    return {
      name: 'requiredScopes',
      handle(ctx): Verdict {
        const identity = callerOf(ctx);
        if (identity === null) return notAuthenticated;
        const granted = identity.scopes;
        if (granted === undefined) return insufficient;
        for (const scope of required) if (!granted.has(scope)) return insufficient;
        return CONTINUE;
      },
    };
  },
};
