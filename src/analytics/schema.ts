import Type, { type Static } from 'typebox';
import { Duration } from '../config/duration.ts';

const TrustedGateway = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      description: 'Gateway name: the `sub` of its link JWTs and the `gateway` of its events.',
    }),
    issuer: Type.String({
      minLength: 1,
      description:
        '`iss` of its link JWTs: the Gateway’s `spec.tokens.issuer` (default `gatehouse://<name>`).',
    }),
    jwksUri: Type.String({
      pattern: '^https?://',
      description: 'Its key set: `http://<admin address>/.well-known/jwks.json` of that gateway.',
    }),
  },
  { additionalProperties: false },
);

const SqliteStore = Type.Object(
  {
    sqlite: Type.Object(
      {
        path: Type.String({
          minLength: 1,
          default: 'analytics.db',
          description: 'Database file, relative to the control plane’s data directory.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false, description: 'Embedded SQLite (node:sqlite): the default.' },
);

const PostgresStore = Type.Object(
  {
    postgres: Type.Object(
      {
        url: Type.Optional(Type.String({ pattern: '^postgres(ql)?://', description: 'Connection URL.' })),
        urlEnv: Type.Optional(
          Type.String({
            description: 'Environment variable holding the connection URL (when it carries a password).',
          }),
        ),
        schema: Type.String({
          pattern: '^[a-z_][a-z0-9_]{0,62}$',
          default: 'gatehouse_analytics',
          description: 'Schema of the events table (created when missing).',
        }),
        poolSize: Type.Integer({ minimum: 1, maximum: 100, default: 4, description: 'Most connections.' }),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false, description: 'PostgreSQL, for scale and several ingestion replicas.' },
);

export const AnalyticsSpec = Type.Object(
  {
    enabled: Type.Boolean({ default: true, description: 'Run analytics ingestion and the query API.' }),
    store: Type.Union([SqliteStore, PostgresStore], {
      default: { sqlite: {} },
      description: 'Where events are kept.',
    }),
    retention: Duration('Events older than this are deleted (checked every few minutes).', '168h'),
    controlPlaneJwks: Type.Boolean({
      default: true,
      description:
        'Accept link JWTs issued by this control plane (connected gateways), verified against its JWKS.',
    }),
    trustedGateways: Type.Array(TrustedGateway, {
      default: [],
      description:
        'Local-mode gateways whose own link JWTs are accepted (Gateway `spec.analytics.auth: gateway-token`).',
    }),
    limits: Type.Object(
      {
        maxBodyBytes: Type.Integer({
          minimum: 1024,
          default: 8388608,
          description: 'Largest compressed batch accepted (413 past it).',
        }),
        maxDecompressedBytes: Type.Integer({
          minimum: 1024,
          default: 67108864,
          description: 'Largest batch once decompressed (413 past it: a compression bomb is cut off there).',
        }),
        maxEvents: Type.Integer({
          minimum: 1,
          maximum: 100000,
          default: 10000,
          description: 'Most events in one batch.',
        }),
      },
      { additionalProperties: false, default: {}, description: 'Bounds on one uploaded batch.' },
    ),
    nats: Type.Optional(
      Type.Object(
        {
          servers: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'NATS servers.' }),
          subject: Type.String({
            default: 'gatehouse.analytics.events',
            description: 'Subject gateways publish on.',
          }),
          stream: Type.String({
            pattern: '^[A-Za-z0-9_-]+$',
            default: 'GATEHOUSE_ANALYTICS',
            description: 'JetStream stream capturing the subject (created when missing).',
          }),
          durable: Type.String({
            pattern: '^[A-Za-z0-9_-]+$',
            default: 'gatehouse-ingest',
            description: 'Durable consumer shared by ingestion replicas.',
          }),
        },
        { additionalProperties: false, description: 'Also consume batches from NATS JetStream.' },
      ),
    ),
  },
  {
    additionalProperties: false,
    description:
      'Analytics ingestion (POST /analytics/v1/events) and the query API (GET /api/v1/analytics/…): see docs/analytics.md.',
  },
);
export type AnalyticsSpec = Static<typeof AnalyticsSpec>;
