import Type, { type Static } from 'typebox';
import { Duration } from '../duration.ts';
import { resourceSchema } from './metadata.ts';

const SecretRef = Type.Object(
  { env: Type.String({ description: 'Name of the environment variable holding the secret.' }) },
  { additionalProperties: false },
);

export const IdentityProviderSpec = Type.Object(
  {
    issuer: Type.String({
      description: 'Expected `iss`; discovery document is read from it unless jwksUri is set.',
    }),
    jwksUri: Type.Optional(Type.String({ description: 'URL of the JSON Web Key Set.' })),
    audiences: Type.Array(Type.String(), { default: [], description: 'Accepted `aud` values.' }),
    algorithms: Type.Array(
      Type.Union(
        ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'].map((a) =>
          Type.Literal(a),
        ),
      ),
      {
        default: ['RS256', 'ES256'],
        minItems: 1,
        description: 'Signature algorithms accepted; never chosen by the token.',
      },
    ),
    clockSkew: Duration('Tolerance for exp, nbf and iat.', '30s'),
    introspection: Type.Optional(
      Type.Object(
        {
          endpoint: Type.String({ description: 'RFC 7662 introspection endpoint.' }),
          clientId: Type.String(),
          clientSecret: SecretRef,
        },
        { additionalProperties: false, description: 'RFC 7662 token introspection, for opaque tokens.' },
      ),
    ),
  },
  { additionalProperties: false },
);

export const IdentityProvider = resourceSchema(
  'IdentityProvider',
  IdentityProviderSpec,
  'An OpenID / OAuth2 provider whose tokens the gateway will verify. Validated today; used once the jwt and introspection methods land.',
);
export type IdentityProvider = Static<typeof IdentityProvider>;

export type IdentityProviderSpec = Static<typeof IdentityProviderSpec>;
