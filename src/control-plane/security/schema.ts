import Type, { type Static } from 'typebox';
import { Duration } from '../../config/duration.ts';

/** `ControlPlane.spec.security`: how gateways (and analytics) and the control plane prove who they are. */
export const SecuritySpec = Type.Object(
  {
    mode: Type.Union([Type.Literal('mtls'), Type.Literal('jwt')], {
      default: 'mtls',
      description:
        'mtls: the control plane CA issues each gateway a client certificate at registration and ' +
        'renews it; the control plane listens on TLS and both sides verify the other. jwt: for ' +
        'links through load balancers that terminate TLS: every call carries a short-lived JWT the ' +
        'control plane signs, verified against its JWKS (`/.well-known/jwks.json`).',
    }),
    certificateLifetime: Duration(
      'Lifetime of a gateway client certificate (mtls); gateways renew after two thirds of it.',
      '24h',
    ),
    tokenLifetime: Duration('Lifetime of a subsystem JWT (jwt mode); at most 1h.', '5m'),
    keyRotation: Duration(
      'How often the JWT signing key is replaced. The new key is published before it signs, the ' +
        'old one stays published until every token it signed has expired.',
      '24h',
    ),
    tls: Type.Optional(
      Type.Object(
        {
          cert: Type.String({ minLength: 1, description: 'PEM file of the server certificate (chain).' }),
          key: Type.String({ minLength: 1, description: 'PEM file of its private key.' }),
        },
        {
          additionalProperties: false,
          description:
            'A server certificate for the control plane listener, instead of one signed by its own ' +
            'CA. Gateways must then be given the CA that signed it (`gatehouse gateway --ca`).',
        },
      ),
    ),
    hostnames: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        minItems: 1,
        description:
          'DNS names and IP addresses of the generated server certificate (default localhost, 127.0.0.1).',
      }),
    ),
  },
  { additionalProperties: false, default: {} },
);

export type SecuritySpec = Static<typeof SecuritySpec>;
