import Type, { type Static } from 'typebox';
import { toMillis } from '../../../config/duration.ts';
import { Duration } from '../../../config/duration.ts';
import { type Identity, removeUpstreamHeader, setUpstreamHeader } from '../../../gateway/context.ts';
import type { RequestContext } from '../../../gateway/context.ts';
import { isReservedUpstreamHeader } from '../../../gateway/headers.ts';
import { CONTINUE, type PolicyFactory, type Verdict } from '../../types.ts';

const TokenConfig = Type.Object(
  {
    audience: Type.String({ minLength: 1, description: '`aud` of the token: the upstream that accepts it.' }),
    claims: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      uniqueItems: true,
      description:
        'Claims copied from the caller’s verified token (for apiKey callers: the Consumer’s metadata) when ' +
        'present. Not iss, sub, aud, iat, exp, nbf or jti, which the gateway sets.',
    }),
    lifetime: Duration(
      'How long the token is valid (`exp` − `iat`); at most the key rotation overlap.',
      '60s',
    ),
    header: Type.String({
      pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
      default: 'Authorization',
      description:
        'Header that carries the token upstream: `Authorization: Bearer <jwt>`, or the bare JWT in any ' +
        'other header. Either way the client’s Authorization header is not forwarded.',
    }),
  },
  {
    additionalProperties: false,
    description:
      'Replaces the caller’s credential with a short-lived JWT signed by the gateway (Gateway ' +
      '`spec.tokens`; public keys at `/.well-known/jwks.json` on the admin port): iss, sub (the identity’s ' +
      'subject; left out for anonymous callers), aud, iat, exp, jti, the chosen claims, and `client_id` / ' +
      '`consumer` when known. Tokens are reused for the same caller and claims until shortly before they expire.',
  },
);
export type TokenConfig = Static<typeof TokenConfig>;

const registeredClaims = new Set(['iss', 'sub', 'aud', 'iat', 'exp', 'nbf', 'jti']);

/** The OAuth client the caller's token was issued to, when it says. */
function clientIdOf(identity: Identity): string | undefined {
  const claims = identity.claims;
  if (!claims) return undefined;
  const id = claims.client_id ?? claims.azp;
  return typeof id === 'string' && id !== '' ? id : undefined;
}

/** Internal token for the upstream: `mutate: { token: { audience: orders, claims: [tenant] } }`. */
export const token: PolicyFactory<TokenConfig> = {
  name: 'token',
  stage: 'mutate',
  schema: TokenConfig,
  compile(config, deps) {
    const issuer = deps.tokenIssuer();
    if (issuer === null) throw new TypeError('no token issuer: the Gateway’s spec.tokens has errors');
    const lifetimeMs = toMillis(config.lifetime);
    if (lifetimeMs < 1000 || lifetimeMs % 1000 !== 0)
      throw new TypeError(`lifetime must be whole seconds, at least 1s (got ${config.lifetime})`);
    if (lifetimeMs > issuer.maxLifetimeMs)
      throw new TypeError(
        `lifetime ${config.lifetime} is longer than the signing-key overlap (Gateway spec.tokens.rotation.overlap): ` +
          'tokens would outlive their key in the key set',
      );
    const reserved = config.claims.filter((c) => registeredClaims.has(c));
    if (reserved.length > 0) throw new TypeError(`claims ${reserved.join(', ')} are set by the gateway`);
    const header = config.header.toLowerCase();
    if (isReservedUpstreamHeader(header))
      throw new TypeError(`header ${config.header} is set by the gateway itself`);
    const { audience, claims: claimNames } = config;
    const lifetimeSeconds = lifetimeMs / 1000;
    const bearer = header === 'authorization';

    const apply = (ctx: RequestContext, jwt: string): Verdict => {
      ctx.internalToken = jwt;
      if (!bearer) removeUpstreamHeader(ctx, 'authorization');
      setUpstreamHeader(ctx, header, bearer ? `Bearer ${jwt}` : jwt);
      return CONTINUE;
    };

    return {
      name: 'token',
      handle(ctx) {
        const identity = ctx.identity;
        const claims: Record<string, unknown> = {};
        if (identity) {
          const metadata = identity.consumer?.metadata;
          for (const name of claimNames) {
            const value =
              identity.claims && Object.hasOwn(identity.claims, name)
                ? identity.claims[name]
                : metadata && Object.hasOwn(metadata, name)
                  ? metadata[name]
                  : undefined;
            if (value !== undefined) claims[name] = value;
          }
          const clientId = clientIdOf(identity);
          if (clientId !== undefined) claims.client_id = clientId;
          if (identity.consumer) claims.consumer = identity.consumer.name;
        }
        const minted = issuer.mint({ audience, lifetimeSeconds, subject: identity?.subject ?? null, claims });
        if (typeof minted === 'string') return apply(ctx, minted);
        return minted.then((jwt) => apply(ctx, jwt));
      },
    };
  },
};
