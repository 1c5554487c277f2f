import Type, { type Static } from 'typebox';
import { Duration } from '../duration.ts';
import { resourceSchema } from './metadata.ts';

const SecretRef = Type.Object(
  { env: Type.String({ description: 'Name of the environment variable holding the secret.' }) },
  {
    additionalProperties: false,
    description: 'A secret, read from the environment when the gateway starts; never written in config.',
  },
);

/** Asymmetric signature algorithms only: no HMAC (a public key must never act as a secret), never `none`. */
export const jwsAlgorithms = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;
export type JwsAlgorithm = (typeof jwsAlgorithms)[number];

const KeySetSettings = Type.Object(
  {
    refreshInterval: Duration('How often the key set is fetched again in the background.', '5m'),
    gracePeriod: Duration(
      'How long the last keys fetched keep being used while the provider cannot be reached; after it, ' +
        'tokens cannot be checked (503) until a fetch succeeds.',
      '24h',
    ),
    timeout: Duration('Time allowed for one fetch (discovery and key set together), body included.', '5s'),
    minRefetchInterval: Duration(
      'Shortest time between two fetches caused by requests: a token with an unknown `kid`, or a ' +
        'request while no keys are loaded. Such fetches are shared by all requests waiting for them.',
      '10s',
    ),
    maxBytes: Type.Integer({
      minimum: 1024,
      default: 262144,
      description: 'Largest discovery document or key set accepted; larger fails and the keys held are kept.',
    }),
    maxKeys: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 50,
      description: 'Most keys a key set may list; a larger one fails and the keys held are kept.',
    }),
  },
  {
    additionalProperties: false,
    default: {},
    description:
      'How the JSON Web Key Set is fetched and kept: in the background, never on the request path ' +
      'once warm, with the last good keys kept through an outage.',
  },
);

const VerifiedTokenCache = Type.Object(
  {
    maxEntries: Type.Integer({
      minimum: 0,
      default: 10000,
      description: 'Most verified JWTs remembered (least recently used are dropped); 0 turns the cache off.',
    }),
  },
  {
    additionalProperties: false,
    default: {},
    description:
      'JWTs already verified, remembered under a SHA-256 of the token until their `exp` at the latest; ' +
      'emptied when the key set changes.',
  },
);

export const IdentityProviderSpec = Type.Object(
  {
    issuer: Type.String({
      description: 'Expected `iss`; discovery document is read from it unless jwksUri is set.',
    }),
    jwksUri: Type.Optional(
      Type.String({
        pattern: '^https?://',
        description:
          'URL of the JSON Web Key Set. Omitted: `jwks_uri` of the issuer’s discovery document ' +
          '(`<issuer>/.well-known/openid-configuration`).',
      }),
    ),
    audiences: Type.Array(Type.String(), {
      default: [],
      description:
        'Accepted `aud` values: a token must name at least one. A `jwt` method may narrow them; when ' +
        'this is empty, every `jwt` method must list its own.',
    }),
    algorithms: Type.Array(Type.Union(jwsAlgorithms.map((a) => Type.Literal(a))), {
      default: ['RS256', 'ES256'],
      minItems: 1,
      description: 'Signature algorithms accepted; never chosen by the token.',
    }),
    clockSkew: Duration('Tolerance for exp, nbf and iat.', '30s'),
    typ: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'Required `typ` header of JWTs, e.g. `at+jwt` for RFC 9068 access tokens (compared ' +
          'case-insensitively, an `application/` prefix ignored). Omitted: not checked.',
      }),
    ),
    requiredClaims: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'Claims every JWT must carry, besides `exp` (always required), e.g. [sub].',
    }),
    keySet: KeySetSettings,
    verifiedTokenCache: VerifiedTokenCache,
    introspection: Type.Optional(
      Type.Object(
        {
          endpoint: Type.Optional(
            Type.String({
              pattern: '^https?://',
              description:
                'RFC 7662 introspection endpoint. Omitted: `introspection_endpoint` of the issuer’s ' +
                'discovery document, read on first use.',
            }),
          ),
          clientId: Type.String({ description: 'Client id the gateway authenticates to the endpoint with.' }),
          clientSecret: SecretRef,
          authMethod: Type.Union([Type.Literal('client_secret_basic'), Type.Literal('client_secret_post')], {
            default: 'client_secret_basic',
            description: 'How the client credentials are sent: HTTP Basic, or in the form body.',
          }),
          timeout: Duration('Time allowed for one call to the endpoint (or discovery), body included.', '3s'),
          cacheTtl: Duration(
            'Longest time an answer is reused; never past the token’s `exp`. Inactive answers are kept ' +
              'at most 10s.',
            '60s',
          ),
          cacheMaxEntries: Type.Integer({
            minimum: 1,
            default: 10000,
            description: 'Most answers cached (least recently used are dropped).',
          }),
          maxResponseBytes: Type.Integer({
            minimum: 256,
            default: 65536,
            description: 'Largest response accepted from the endpoint or discovery; larger fails closed.',
          }),
        },
        {
          additionalProperties: false,
          description:
            'RFC 7662 token introspection, for opaque (non-JWT) access tokens. Each answer is cached ' +
            'under a hash of the token.',
        },
      ),
    ),
  },
  { additionalProperties: false },
);

export const IdentityProvider = resourceSchema(
  'IdentityProvider',
  IdentityProviderSpec,
  'An OpenID / OAuth2 provider whose tokens the gateway verifies: JWTs locally against its key set ' +
    '(`jwt` method), opaque tokens by introspection (`introspection` method).',
);
export type IdentityProvider = Static<typeof IdentityProvider>;

export type IdentityProviderSpec = Static<typeof IdentityProviderSpec>;
