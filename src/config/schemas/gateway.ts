import Type, { type Static } from 'typebox';
import { AnalyticsGatewaySpec } from '../../analytics/gateway-schema.ts';
import { ForwardProxySpec } from '../../egress/schema.ts';
import { TracingSpec } from '../../telemetry/tracing-schema.ts';
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
    port: Port(
      'Port of the admin listener: /healthz, /readyz, /metrics, /plan, /.well-known/jwks.json, POST /explain.',
    ),
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

const TokenKeysDir = Type.Object(
  {
    dir: Type.String({
      minLength: 1,
      description:
        'Directory (relative to the config file) where the gateway keeps its signing keys, one private ' +
        'JWK per file (`<kid>.jwk.json`, mode 0600). Created with a first key when missing; keys are ' +
        'generated here on rotation and deleted once out of the key set. One gateway process per directory.',
    }),
  },
  { additionalProperties: false },
);

const TokenKeyFile = Type.Object(
  {
    private: Type.String({
      minLength: 1,
      description: 'Private key file (PEM, or a JSON private JWK), relative to the config file.',
    }),
    kid: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9._~-]{1,128}$',
        description: 'Key id published in the key set; default: the key’s RFC 7638 thumbprint.',
      }),
    ),
  },
  { additionalProperties: false },
);

const TokenKeyFiles = Type.Object(
  {
    files: Type.Array(TokenKeyFile, {
      minItems: 1,
      description:
        'Keys managed outside the gateway: the first signs, the others are only published (for tokens ' +
        'signed before a manual rotation). Rotate by putting a new key first and reloading.',
    }),
  },
  { additionalProperties: false },
);

export const TokensSpec = Type.Object(
  {
    issuer: Type.Optional(
      Type.String({
        minLength: 1,
        description: '`iss` of the tokens the gateway mints; default `gatehouse://<gateway name>`.',
      }),
    ),
    algorithm: Type.Union([Type.Literal('ES256'), Type.Literal('RS256'), Type.Literal('EdDSA')], {
      default: 'ES256',
      description: 'Signature algorithm: ES256 (P-256), RS256 (RSA 2048), EdDSA (Ed25519).',
    }),
    keys: Type.Optional(
      Type.Union([TokenKeysDir, TokenKeyFiles], {
        description:
          'Where signing keys come from: `{ dir }` (generated and kept by the gateway) or `{ files }` ' +
          '(managed outside). Omitted: generated in memory, so tokens stop verifying after a restart.',
      }),
    ),
    rotation: Type.Object(
      {
        interval: Duration(
          'A generated key signs for this long, then a new one takes over. Not used with `keys.files`.',
          '24h',
        ),
        overlap: Duration(
          'A replaced key stays published this long, so tokens it signed still verify. Token lifetimes ' +
            'may not exceed it.',
          '1h',
        ),
      },
      { additionalProperties: false, default: {}, description: 'Rotation of generated signing keys.' },
    ),
    cacheSize: Type.Integer({
      minimum: 1,
      default: 10000,
      description: 'Most minted tokens kept for reuse (least recently used are dropped).',
    }),
    publishOn: Type.Optional(
      Type.String({
        description:
          'Name of a listener that also answers `/.well-known/jwks.json` itself, before routing ' +
          '(the admin port always does).',
      }),
    ),
  },
  {
    additionalProperties: false,
    description:
      'Internal tokens minted by `mutate.token`: issuer, signing keys and their rotation. The public keys ' +
      'are served at `/.well-known/jwks.json` on the admin port. Omitted: defaults, with in-memory keys.',
  },
);

const Decision = Type.Object(
  {
    listener: Type.String({
      description:
        'Name of the listener that answers the decision endpoint. Best a dedicated one bound to a ' +
        'private address: only the proxy in front needs to reach it.',
    }),
    path: Type.String({
      pattern: '^/[^?#]*[^/?#]$',
      default: '/_gatehouse/decide',
      description:
        'Path of the decision endpoint on that listener; it is answered before routing, so it hides a ' +
        'route with the same path there. `<path>/<original path>` is accepted too (Envoy ext_authz path_prefix).',
    }),
  },
  {
    additionalProperties: false,
    description:
      'Decision API for forward auth (nginx auth_request, Traefik forwardAuth, Envoy ext_authz): a request ' +
      'described by X-Forwarded-Method, -Proto, -Host and -Uri (plus its original headers) is routed and ' +
      'run through its rule’s policies like a proxied one, but not forwarded. 200 with the headers the rule ' +
      'would set upstream, or the problem (401, 403, 404, 503…) with WWW-Authenticate. X-Forwarded-* are ' +
      'believed as told, so only peers in trustedProxies get an answer; everyone else gets 403.',
  },
);

const RedisUrl = Type.String({
  pattern: '^rediss?://',
  description: 'redis://host:port (or rediss:// for TLS); a database number may follow as /n.',
});

const RateLimitRedis = Type.Object(
  {
    url: Type.Optional(RedisUrl),
    cluster: Type.Optional(
      Type.Object(
        {
          nodes: Type.Array(RedisUrl, {
            minItems: 1,
            description: 'Some nodes of the Redis Cluster; the others are discovered from them.',
          }),
        },
        { additionalProperties: false, description: 'A Redis Cluster, instead of `url`.' },
      ),
    ),
    sentinel: Type.Optional(
      Type.Object(
        {
          nodes: Type.Array(
            Type.String({ pattern: '^[^:/\\s]+:[0-9]+$', description: 'host:port of a Sentinel.' }),
            { minItems: 1, description: 'Redis Sentinels that know the primary.' },
          ),
          name: Type.String({ minLength: 1, description: 'Name of the primary the Sentinels monitor.' }),
        },
        {
          additionalProperties: false,
          description: 'A primary found through Redis Sentinel, instead of `url`.',
        },
      ),
    ),
    password: Type.Optional(
      Type.Object(
        { env: Type.String({ description: 'Name of the environment variable holding the password.' }) },
        {
          additionalProperties: false,
          description: 'Password (Redis AUTH), read from the environment when the gateway starts.',
        },
      ),
    ),
    timeout: Duration(
      'Longest wait for one decision from Redis (connecting and reconnecting included); past it, ' +
        '`onBackendFailure` decides.',
      '50ms',
    ),
    prefix: Type.String({
      pattern: '^[^{}]*$',
      default: 'gatehouse:rl:',
      description:
        'Put in front of every counter key, to share a Redis with other applications. No braces: they ' +
        'would change the cluster hash slot.',
    }),
  },
  {
    additionalProperties: false,
    description: 'Where the Redis backend keeps its counters: exactly one of `url`, `cluster`, `sentinel`.',
  },
);

const RateLimitBatching = Type.Object(
  {
    enabled: Type.Boolean({
      default: false,
      description: 'Admit some requests locally between Redis round trips.',
    }),
    maxLocal: Type.Integer({
      minimum: 1,
      maximum: 10000,
      default: 10,
      description:
        'Most requests one gateway admits for one counter without asking Redis. All gateways together may ' +
        'admit up to gateways × maxLocal more than a limit (docs/rate-limits.md).',
    }),
    flushInterval: Duration('How often requests admitted locally are reported to Redis.', '100ms'),
  },
  {
    additionalProperties: false,
    default: {},
    description:
      'Bounded local batching for the redis backend: fewer round trips, at the price of a bounded overshoot.',
  },
);

export const RateLimitsSpec = Type.Object(
  {
    backend: Type.Union([Type.Literal('local'), Type.Literal('redis')], {
      default: 'local',
      description:
        'local: counters in this process (each gateway counts alone). redis: counters in Redis, shared by ' +
        'every gateway that uses it, so a limit holds across replicas.',
    }),
    redis: Type.Optional(RateLimitRedis),
    onBackendFailure: Type.Union([Type.Literal('closed'), Type.Literal('open')], {
      default: 'closed',
      description:
        'When Redis does not answer within its timeout: closed refuses the request (503 ' +
        '`rate_limit_unavailable`), open lets it through unlimited. Either way it is counted in ' +
        '`gatehouse_ratelimit_backend_errors_total` and logged (at most one line per 10 s).',
    }),
    maxKeys: Type.Integer({
      minimum: 1,
      default: 100000,
      description:
        'Most counters (local backend) or batched leases (redis with batching) kept in the process; the ' +
        'least recently used go first.',
    }),
    batching: RateLimitBatching,
  },
  {
    additionalProperties: false,
    default: {},
    description: 'Where rate-limit counters live (rules and Policies set the limits: `rateLimit`).',
  },
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
    decision: Type.Optional(Decision),
    tokens: Type.Optional(TokensSpec),
    rateLimits: RateLimitsSpec,
    forwardProxy: Type.Optional(ForwardProxySpec),
    analytics: Type.Optional(AnalyticsGatewaySpec),
    tracing: Type.Optional(TracingSpec),
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
export type TokensSpec = Static<typeof TokensSpec>;
export type RateLimitsSpec = Static<typeof RateLimitsSpec>;
