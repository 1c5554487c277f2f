import Type, { type Static } from 'typebox';
import { AnalyticsSpec } from '../../analytics/schema.ts';
import { SecuritySpec } from '../../control-plane/security/schema.ts';
import { SecretRefSchema } from '../../egress/secret-ref.ts';
import { resourceSchema } from './metadata.ts';

// `security` and `analytics` are the schemas of those parts (their own files), imported here.

const dnsLabel = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$';

const RoleBinding = Type.Object(
  {
    namespace: Type.String({
      pattern: `${dnsLabel}|^\\*$`,
      description: 'The namespace the role holds in, or `*` for every namespace.',
    }),
    role: Type.Union([Type.Literal('viewer'), Type.Literal('editor'), Type.Literal('admin')], {
      description:
        'viewer: read, list, watch. editor: also create, update, delete. admin: also the audit log, ' +
        'gateways, bootstrap tokens and everything else.',
    }),
  },
  { additionalProperties: false },
);

const OperatorToken = Type.Object(
  {
    name: Type.String({ minLength: 1, description: 'Who holds the token: the actor in the audit log.' }),
    sha256: Type.String({
      pattern: '^[0-9a-f]{64}$',
      description:
        'sha256 (hex) of the token (`gatehouse hash-key --generate`); the token itself is never stored.',
    }),
    roles: Type.Array(RoleBinding, { minItems: 1, description: 'Roles by namespace.' }),
  },
  { additionalProperties: false },
);

const OperatorJwt = Type.Object(
  {
    provider: Type.String({
      minLength: 1,
      description:
        'Name of an IdentityProvider resource given in the same config files (its namespace is the ' +
        "ControlPlane's); operators' bearer JWTs are verified against its key set.",
    }),
    subjectClaim: Type.String({
      default: 'sub',
      description: 'Claim naming the operator (the actor in the audit log).',
    }),
    rolesClaim: Type.String({
      default: 'gatehouse_roles',
      description:
        'Claim holding the roles: an array (or space-separated string) of `namespace:role`, ' +
        'e.g. `shop:editor` or `*:admin`.',
    }),
  },
  {
    additionalProperties: false,
    description: 'Operators authenticated by bearer JWTs from an IdentityProvider, their roles in a claim.',
  },
);

const SqliteStore = Type.Object(
  {
    backend: Type.Literal('sqlite'),
    path: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'Database file; default `<dataDir>/control-plane.db`. Relative to this file.',
      }),
    ),
  },
  { additionalProperties: false, description: 'Embedded store (node:sqlite), one control plane.' },
);

const PostgresStore = Type.Object(
  {
    backend: Type.Literal('postgres'),
    url: Type.Union([Type.String({ minLength: 1 }), SecretRefSchema('Connection URL.')], {
      description: 'postgres:// URL, or `{ env: NAME }` to read it from the environment.',
    }),
    schema: Type.Optional(
      Type.String({ pattern: '^[a-z_][a-z0-9_]*$', description: 'Schema of the tables (default public).' }),
    ),
  },
  { additionalProperties: false, description: 'PostgreSQL, for several control planes on one database.' },
);

export const ControlPlaneSpec = Type.Object(
  {
    listen: Type.Object(
      {
        address: Type.String({ default: '127.0.0.1', description: 'Address the admin API listens on.' }),
        port: Type.Integer({ minimum: 0, maximum: 65535, default: 9400, description: 'TCP port.' }),
      },
      {
        additionalProperties: false,
        default: {},
        description: 'Where the admin API (and the gateway links) listen.',
      },
    ),
    publicUrl: Type.Optional(
      Type.String({
        pattern: '^https?://',
        description:
          'Base URL gateways and operators reach the control plane at; default http(s)://address:port.',
      }),
    ),
    dataDir: Type.String({
      minLength: 1,
      default: './gatehouse-data',
      description:
        'Directory of the control plane’s files (the embedded store by default). Relative to this file.',
    }),
    store: Type.Union([SqliteStore, PostgresStore], {
      default: { backend: 'sqlite' },
      description: 'Where resources, their versions and the audit log are kept.',
    }),
    operators: Type.Object(
      {
        tokens: Type.Array(OperatorToken, {
          default: [],
          description: 'Admin tokens (bearer), compared by their sha256.',
        }),
        jwt: Type.Optional(OperatorJwt),
      },
      {
        additionalProperties: false,
        default: {},
        description: 'Who may use the admin API: admin tokens and/or JWTs from an IdentityProvider.',
      },
    ),
    // Without the default SecuritySpec carries: absent means no gateway links (admin API only),
    // so the listener stays plain HTTP unless security is asked for.
    security: Type.Optional(
      Type.Object(SecuritySpec.properties, {
        additionalProperties: false,
        description: 'How gateways and the control plane prove who they are (connected mode).',
      }),
    ),
    analytics: Type.Optional(AnalyticsSpec),
    metrics: Type.Object(
      {
        access: Type.Union([Type.Literal('none'), Type.Literal('viewer'), Type.Literal('off')], {
          default: 'none',
          description:
            'Who may read GET /metrics: none (no credential, as Prometheus scrapes by default; the ' +
            'text holds counts by route template and reason, no ids), viewer (an operator with viewer in ' +
            '`*`: give Prometheus its bearer token), or off (not served).',
        }),
      },
      {
        additionalProperties: false,
        default: {},
        description: 'The control plane’s Prometheus endpoint (metrics listed in docs/analytics.md).',
      },
    ),
  },
  { additionalProperties: false },
);

export const ControlPlane = resourceSchema(
  'ControlPlane',
  ControlPlaneSpec,
  'A control plane process: its admin API listener, data directory, store and operators. Ignored by gateways.',
);
export type ControlPlane = Static<typeof ControlPlane>;
export type ControlPlaneSpec = Static<typeof ControlPlaneSpec>;
