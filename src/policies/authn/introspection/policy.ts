import Type from 'typebox';
import type { RequestContext } from '../../../gateway/context.ts';
import { scopesOf } from '../../../identity/scopes.ts';
import type { Claims, CredentialCheck } from '../../../identity/types.ts';
import { CONTINUE, type PolicyFactory, respond, SKIP, type Verdict } from '../../types.ts';
import { bearerTokenSyntax, looksLikeJwt, TokenSource, tokenFrom } from '../token-source.ts';

export interface IntrospectionConfig {
  provider: string;
  from?: TokenSource;
}

const invalidTokenHeaders = Object.freeze({ 'www-authenticate': 'Bearer error="invalid_token"' });
const INVALID_SYNTAX: Verdict = respond(
  'invalid_token',
  'the bearer token is malformed',
  invalidTokenHeaders,
);
const NOT_ACCEPTED: Verdict = respond(
  'invalid_token',
  'the token is not active or not accepted',
  invalidTokenHeaders,
);
const UNAVAILABLE: Verdict = respond('identity_provider_unavailable', 'the token could not be checked');

/**
 * Opaque access tokens checked at the provider's RFC 7662 endpoint. A token that is a JWT is not
 * this method's: it steps aside (skip) so a `jwt` method can verify it locally — providers such as
 * oidc-provider refuse to introspect JWT access tokens, and verifying a signature needs no call.
 * Active but not ours (issuer, audience, token type, expired) → 401; provider unreachable → 503.
 */
export const introspection: PolicyFactory<IntrospectionConfig> = {
  name: 'introspection',
  stage: 'authenticate',
  schema: Type.Object(
    {
      provider: Type.String({
        description: 'Name of the IdentityProvider (same namespace) whose `introspection` settings are used.',
      }),
      from: Type.Optional(TokenSource),
    },
    {
      additionalProperties: false,
      description:
        'Opaque bearer tokens checked by RFC 7662 introspection at the provider, answers cached. ' +
        'Steps aside when no bearer token is sent, and for JWTs: list a `jwt` method for those (providers ' +
        'such as oidc-provider refuse to introspect JWT access tokens, and a signature needs no call).',
    },
  ),
  compile(config, deps) {
    const provider = deps.provider(config.provider);
    if (!provider)
      throw new TypeError(`no IdentityProvider named ${config.provider} in namespace ${deps.namespace}`);
    const introspector = provider.introspector;
    if (!introspector)
      throw new TypeError(`IdentityProvider ${config.provider} has no introspection settings`);
    const from = config.from;
    const providerId = provider.id;
    // Scopes of a cached answer are worked out once: the claims object is shared while cached.
    const scopesByClaims = new WeakMap<Claims, ReadonlySet<string>>();

    const verdictFor = (ctx: RequestContext, check: CredentialCheck): Verdict => {
      if (!check.ok) return check.kind === 'invalid' ? NOT_ACCEPTED : UNAVAILABLE;
      const { claims } = check;
      let scopes = scopesByClaims.get(claims);
      if (!scopes) {
        scopes = scopesOf(claims);
        scopesByClaims.set(claims, scopes);
      }
      ctx.identity = {
        method: 'introspection',
        subject: subjectOf(claims),
        provider: providerId,
        claims,
        scopes,
      };
      return CONTINUE;
    };

    return {
      name: 'introspection',
      challenge: 'Bearer',
      handle(ctx) {
        const token = tokenFrom(ctx, from);
        if (token === null) return SKIP;
        if (!bearerTokenSyntax.test(token)) return INVALID_SYNTAX;
        if (looksLikeJwt(token)) return SKIP;
        const check = introspector.introspect(token);
        if (check instanceof Promise) return check.then((c) => verdictFor(ctx, c));
        return verdictFor(ctx, check);
      },
    };
  },
};

function subjectOf(claims: Claims): string | null {
  for (const name of ['sub', 'username', 'client_id']) {
    const value = claims[name];
    if (typeof value === 'string' && value !== '') return value;
  }
  return null;
}
