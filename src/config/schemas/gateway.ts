import Type, { type Static } from 'typebox';
import { Duration } from '../duration.ts';
import { resourceSchema } from './metadata.ts';

const Port = (description: string) => Type.Integer({ minimum: 1, maximum: 65535, description });

const Certificate = Type.Object(
  {
    cert: Type.String({ description: 'PEM file with the certificate chain, relative to the config file.' }),
    key: Type.String({ description: 'PEM file with the private key, relative to the config file.' }),
  },
  { additionalProperties: false },
);

const ClientAuth = Type.Object(
  {
    mode: Type.Union([Type.Literal('none'), Type.Literal('optional'), Type.Literal('require')], {
      default: 'none',
      description:
        'none: no client certificate is asked for. optional: one is asked for and, when sent, must verify. ' +
        'require: the handshake fails without a certificate that verifies against caCerts.',
    }),
    caCerts: Type.Optional(
      Type.String({
        description: 'PEM file with the CA certificates that client certificates must chain to.',
      }),
    ),
  },
  { additionalProperties: false, description: 'Whether and how client certificates are verified (mTLS).' },
);

const Tls = Type.Object(
  {
    certificates: Type.Array(Certificate, {
      minItems: 1,
      description:
        'Server certificates. The one whose SAN matches the client’s SNI is used; the first is the default.',
    }),
    clientAuth: Type.Optional(ClientAuth),
    minVersion: Type.Union([Type.Literal('TLSv1.2'), Type.Literal('TLSv1.3')], {
      default: 'TLSv1.2',
      description: 'Lowest TLS version accepted.',
    }),
  },
  { additionalProperties: false, description: 'TLS settings; required when protocol is https.' },
);

const Listener = Type.Object(
  {
    name: Type.String({
      pattern: '^[a-z0-9-]+$',
      description: 'Name of the listener, unique in the gateway.',
    }),
    port: Port('TCP port to listen on.'),
    address: Type.String({ default: '0.0.0.0', description: 'Address to bind.' }),
    protocol: Type.Union([Type.Literal('http'), Type.Literal('https')], {
      default: 'http',
      description: 'http: HTTP/1.1 in clear text. https: HTTP/1.1 over TLS (tls is required).',
    }),
    tls: Type.Optional(Tls),
  },
  { additionalProperties: false },
);

const Admin = Type.Object(
  {
    port: Port('Port of the admin listener: /healthz, /readyz, /metrics, /plan.'),
    address: Type.String({ default: '127.0.0.1', description: 'Address to bind; keep it private.' }),
  },
  { additionalProperties: false, description: 'The admin listener (health, readiness, metrics, plan).' },
);

const Limits = Type.Object(
  {
    maxHeaderBytes: Type.Integer({
      minimum: 1024,
      maximum: 1048576,
      default: 16384,
      description: 'Largest request head (request line and headers) accepted; larger gets 431.',
    }),
    maxBodyBytes: Type.Integer({
      minimum: 0,
      default: 10485760,
      description: 'Largest request body accepted, also for chunked bodies; larger gets 413.',
    }),
    requestTimeout: Duration('Time allowed to receive a whole request; slower gets 408.', '30s'),
    idleTimeout: Duration('A keep-alive connection with no request for this long is closed.', '60s'),
  },
  {
    additionalProperties: false,
    default: {},
    description: 'Bounds on what one client may send and for how long.',
  },
);

const Shutdown = Type.Object(
  {
    drainTimeout: Duration(
      'On SIGTERM, requests in flight get this long to finish before connections are closed.',
      '10s',
    ),
  },
  { additionalProperties: false, default: {}, description: 'Graceful shutdown.' },
);

const AccessLog = Type.Object(
  {
    enabled: Type.Boolean({ default: true, description: 'Write one JSON line per request to stdout.' }),
  },
  { additionalProperties: false, default: {}, description: 'The JSON access log.' },
);

export const GatewaySpec = Type.Object(
  {
    mode: Type.Union([Type.Literal('ingress'), Type.Literal('egress'), Type.Literal('sidecar')], {
      default: 'ingress',
      description:
        'ingress: north–south edge. egress: internal consumers calling external APIs. sidecar: in front of one workload.',
    }),
    listeners: Type.Array(Listener, { minItems: 1, description: 'Where the gateway accepts traffic.' }),
    admin: Type.Optional(Admin),
    trustedProxies: Type.Array(Type.String({ description: 'IPv4 or IPv6 CIDR, e.g. 10.0.0.0/8.' }), {
      default: [],
      description:
        'Peers whose X-Forwarded-*, Forwarded and X-Request-Id headers are kept (and appended to). ' +
        'From every other peer they are replaced.',
    }),
    limits: Limits,
    shutdown: Shutdown,
    accessLog: AccessLog,
  },
  { additionalProperties: false },
);

export const Gateway = resourceSchema(
  'Gateway',
  GatewaySpec,
  'A gateway process: its listeners, limits and admin port.',
);
export type Gateway = Static<typeof Gateway>;
export type GatewaySpec = Static<typeof GatewaySpec>;
export type ListenerSpec = Static<typeof Listener>;
