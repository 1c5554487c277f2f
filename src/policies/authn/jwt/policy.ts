import Type from 'typebox';
import type { RequestContext } from '../../../gateway/context.ts';
import { audiencesOf } from '../../../identity/jwt-claims.ts';
import { scopesOf } from '../../../identity/scopes.ts';
import type { Claims, CredentialCheck } from '../../../identity/types.ts';
import { CONTINUE, type PolicyFactory, respond, SKIP, type Verdict } from '../../types.ts';
import { bearerTokenSyntax, looksLikeJwt, TokenSource, tokenFrom } from '../token-source.ts';

export interface JwtConfig {
  provider: string;
  from?: TokenSource;
  audiences?: string[];
}

const UNAVAILABLE: Verdict = respond('identity_provider_unavailable', 'the token could not be checked');
const MALFORMED: Verdict = refused('malformed token');

/**
 * JWTs verified locally against the IdentityProvider's key set (identity/jwt-verifier.ts).
 * A request without a token, or whose token is not a JWT (an opaque token, for `introspection`),
 * is not this method's: skip. A JWT that does not verify: 401 `invalid_token` with an RFC 6750
 * `WWW-Authenticate` naming why. Keys not available: 503. Synchronous for a token verified before.
 */
export const jwt: PolicyFactory<JwtConfig> = {
  name: 'jwt',
  stage: 'authenticate',
  schema: Type.Object(
    {
      provider: Type.String({
        description:
          'Name of the IdentityProvider (same namespace) whose key set and rules the JWT must pass.',
      }),
      from: Type.Optional(TokenSource),
      audiences: Type.Optional(
        Type.Array(Type.String({ minLength: 1 }), {
          minItems: 1,
          description:
            'Narrows the accepted `aud` for this route: the token must name one of these. When the ' +
            'provider lists audiences, these must be among them; when it lists none, this is required.',
        }),
      ),
    },
    {
      additionalProperties: false,
      description:
        'JWT access tokens (default: `Authorization: Bearer`) verified against the provider’s key set: ' +
        'algorithm allow-list, issuer, audience, expiry with clock skew. Steps aside when no token is sent ' +
        'or the token is not a JWT (an opaque token, for `introspection`).',
    },
  ),
  compile(config, deps) {
    const provider = deps.provider(config.provider);
    if (!provider)
      throw new TypeError(`no IdentityProvider named ${config.provider} in namespace ${deps.namespace}`);
    const providerAudiences = provider.spec.audiences;
    if (config.audiences) {
      const outside = config.audiences.filter(
        (a) => providerAudiences.length > 0 && !providerAudiences.includes(a),
      );
      if (outside.length > 0)
        throw new TypeError(
          `audiences ${outside.join(', ')} not among those of IdentityProvider ${config.provider} ` +
            `(${providerAudiences.join(', ')}): a jwt method may only narrow them`,
        );
    } else if (providerAudiences.length === 0) {
      throw new TypeError(
        `IdentityProvider ${config.provider} lists no audiences: give this jwt method its own \`audiences\``,
      );
    }
    const verifier = provider.jwt;
    verifier.activate();
    const from = config.from;
    const providerId = provider.id;
    const narrowed = config.audiences ? new Set(config.audiences) : null;
    // Scopes of a cached token are worked out once: the claims object is shared while cached.
    const scopesByClaims = new WeakMap<Claims, ReadonlySet<string>>();

    const verdictFor = (ctx: RequestContext, check: CredentialCheck): Verdict => {
      if (!check.ok) return check.kind === 'invalid' ? refused(check.reason) : UNAVAILABLE;
      const { claims } = check;
      if (narrowed && !audiencesOf(claims.aud)?.some((a) => narrowed.has(a)))
        return refused('audience not accepted');
      let scopes = scopesByClaims.get(claims);
      if (!scopes) {
        scopes = scopesOf(claims);
        scopesByClaims.set(claims, scopes);
      }
      ctx.identity = {
        method: 'jwt',
        subject: typeof claims.sub === 'string' ? claims.sub : null,
        provider: providerId,
        claims,
        scopes,
      };
      return CONTINUE;
    };

    return {
      name: 'jwt',
      challenge: 'Bearer',
      handle(ctx) {
        const token = tokenFrom(ctx, from);
        if (token === null) return SKIP;
        if (!bearerTokenSyntax.test(token)) return MALFORMED; // present but unusable: no fallthrough
        // A token verified before is answered first: the hot path of a warm route is one hash and one lookup.
        const hit = verifier.cached(token);
        if (hit !== undefined) return verdictFor(ctx, hit);
        if (!looksLikeJwt(token)) return SKIP; // an opaque token: another method's
        const check = verifier.verify(token);
        if (check instanceof Promise) return check.then((c) => verdictFor(ctx, c));
        return verdictFor(ctx, check);
      },
    };
  },
};

/** 401 with the RFC 6750 challenge; the reason is one of the verifier's fixed, token-free phrases. */
function refused(reason: string): Verdict {
  const description = reason.replace(/[^\x20-\x7e]|["\\]/g, '');
  return respond('invalid_token', description, {
    'www-authenticate': `Bearer error="invalid_token", error_description="${description}"`,
  });
}
