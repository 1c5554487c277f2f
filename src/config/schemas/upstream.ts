import Type, { type Static } from 'typebox';
import { Duration } from '../duration.ts';
import { resourceSchema } from './metadata.ts';

const Target = Type.Object(
  {
    url: Type.String({
      pattern: '^https?://[^/?#]+(/[^?#]*)?$',
      description:
        'Origin of the target, http:// or https://; a path here is put in front of every forwarded path ' +
        '(all targets of an upstream must have the same path).',
    }),
    weight: Type.Integer({
      minimum: 1,
      maximum: 100,
      default: 1,
      description:
        'Share of the traffic, relative to the other targets: a target with weight 3 gets three times the ' +
        'requests of one with weight 1 (round-robin), is preferred accordingly (least-request) and has three ' +
        'times the points on the ring (consistent-hash).',
    }),
  },
  { additionalProperties: false },
);

const LoadBalancer = Type.Object(
  {
    algorithm: Type.Union(
      [Type.Literal('round-robin'), Type.Literal('least-request'), Type.Literal('consistent-hash')],
      {
        default: 'round-robin',
        description:
          'round-robin: smooth weighted round-robin. least-request: the target with the fewest requests in ' +
          'flight per unit of weight (ties taken in turn). consistent-hash: a hash ring with 100 virtual nodes ' +
          'per unit of weight, keyed by hashOn; removing a target moves only the keys it held. A request ' +
          'without the key is balanced round-robin.',
      },
    ),
    hashOn: Type.Optional(
      Type.String({
        pattern: "^(header:[A-Za-z0-9!#$%&'*+.^_`|~-]+|cookie:[A-Za-z0-9!#$%&'*+.^_`|~-]+|client|subject)$",
        description:
          'What consistent-hash keys on (required with it, not allowed otherwise): header:<name>, ' +
          'cookie:<name>, client (the caller’s address) or subject (the authenticated identity’s subject).',
      }),
    ),
  },
  { additionalProperties: false, default: {}, description: 'How a request picks its target.' },
);

const HealthCheck = Type.Object(
  {
    path: Type.String({
      pattern: '^/[^\\s]*$',
      description: 'Path of the GET sent to each target, as is (not prefixed with the target’s path).',
    }),
    interval: Duration('Time between the end of one check of a target and the start of the next.', '10s'),
    timeout: Duration('Time allowed for a check’s response; slower counts as a failure.', '2s'),
    healthyThreshold: Type.Integer({
      minimum: 1,
      maximum: 100,
      default: 2,
      description: 'Consecutive passed checks that bring an unhealthy target back.',
    }),
    unhealthyThreshold: Type.Integer({
      minimum: 1,
      maximum: 100,
      default: 3,
      description:
        'Consecutive failed checks that take a healthy target out. A target not yet checked is out at its ' +
        'first failure.',
    }),
    expectedStatuses: Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), {
      minItems: 1,
      uniqueItems: true,
      default: [200],
      description:
        'Status codes that pass a check; anything else, a connection failure or a timeout fails it.',
    }),
  },
  {
    additionalProperties: false,
    description:
      'Active health checks, run in the background by every gateway. No request goes to an unhealthy ' +
      'target while a healthy one exists; with none, requests are answered 503 upstream_unavailable. ' +
      'Readiness (/readyz) does not depend on them.',
  },
);

const OutlierDetection = Type.Object(
  {
    consecutiveFailures: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 5,
      description:
        'Failed calls in a row (a 5xx answer, a connection failure, reset or timeout) that eject a target.',
    }),
    baseEjectionTime: Duration(
      'How long a first ejection lasts; each new ejection of the same target lasts this times the number ' +
        'of its ejections.',
      '30s',
    ),
    maxEjectionTime: Duration(
      'Longest ejection. A target not ejected for this long starts again from baseEjectionTime.',
      '5m',
    ),
    maxEjectionPercent: Type.Integer({
      minimum: 0,
      maximum: 100,
      default: 50,
      description:
        'Most targets ejected at once, in percent of the targets (rounded down). Past it a failing target ' +
        'is ejected only when every other target is ejected, unhealthy or failing too.',
    }),
  },
  {
    additionalProperties: false,
    description:
      'Passive outlier detection: targets that keep failing real requests are ejected for a while.',
  },
);

const RetryOn = Type.Union(
  [
    Type.Literal('connect-failure'),
    Type.Literal('reset'),
    Type.Literal('timeout'),
    Type.Literal(502),
    Type.Literal(503),
    Type.Literal(504),
  ],
  { description: 'connect-failure, reset, timeout (of one try), or an upstream answer 502, 503 or 504.' },
);

const Retries = Type.Object(
  {
    attempts: Type.Integer({
      minimum: 1,
      maximum: 10,
      default: 2,
      description: 'Retries after the first try (at most attempts + 1 tries).',
    }),
    on: Type.Array(RetryOn, {
      minItems: 1,
      uniqueItems: true,
      default: ['connect-failure'],
      description: 'Failures that are retried.',
    }),
    perTryTimeout: Type.Optional(
      Duration(
        'Time allowed for one try’s response headers. All tries together stay within the rule’s timeout ' +
          '(or the upstream’s response timeout).',
      ),
    ),
    retryNonIdempotent: Type.Boolean({
      default: false,
      description:
        'Also retry other methods (POST, PATCH…). By default only GET, HEAD, OPTIONS, PUT and DELETE are. A ' +
        'request with a body is never retried, whatever its method: its body is streamed upstream, not kept.',
    }),
    budget: Type.Object(
      {
        ratio: Type.Number({
          minimum: 0,
          maximum: 1,
          default: 0.2,
          description: 'Retries allowed per request to this upstream over the last 10 seconds.',
        }),
        minPerSecond: Type.Integer({
          minimum: 0,
          maximum: 100000,
          default: 5,
          description: 'Retries allowed per second on top of the ratio, so a quiet upstream can still retry.',
        }),
      },
      {
        additionalProperties: false,
        default: {},
        description:
          'Caps retries so that they cannot amplify an outage: over a sliding 10 s window, at most ' +
          'ratio × requests + 10 × minPerSecond retries. A retry past the budget is not made.',
      },
    ),
  },
  {
    additionalProperties: false,
    description:
      'Retries of failed calls, each to another target when there is one, before anything was answered ' +
      'to the client.',
  },
);

const CircuitBreaker = Type.Object(
  {
    failureRatio: Type.Number({
      exclusiveMinimum: 0,
      maximum: 1,
      default: 0.5,
      description:
        'Share of failed calls (5xx, connection failure, reset, timeout) in the window that opens it.',
    }),
    minRequests: Type.Integer({
      minimum: 1,
      maximum: 100000,
      default: 20,
      description: 'Calls in the window below which the circuit stays closed whatever the ratio.',
    }),
    window: Duration('Sliding window the failure ratio is computed over.', '10s'),
    openFor: Duration('How long an open circuit lets no request through before probing.', '30s'),
    halfOpenRequests: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 3,
      description:
        'Probe requests let through at once when half-open; this many successes close the circuit, one ' +
        'failure opens it again.',
    }),
  },
  {
    additionalProperties: false,
    description:
      'A circuit breaker per target: open, the target gets no traffic; with every target open, requests ' +
      'are answered 503 upstream_unavailable.',
  },
);

const UpstreamTls = Type.Object(
  {
    caCerts: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'PEM file of the CAs trusted for the targets’ certificates, relative to this file; it replaces ' +
          'the default (Node’s bundled roots).',
      }),
    ),
    serverName: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$',
        description:
          'Name sent as SNI and checked against the certificate; default: the target’s host name (an IP ' +
          'address is checked against the certificate’s IP addresses and sends no SNI).',
      }),
    ),
    insecureSkipVerify: Type.Boolean({
      default: false,
      description:
        'Do not verify the targets’ certificates. Only for tests: anyone in the path can listen in.',
    }),
    clientCert: Type.Optional(
      Type.Object(
        {
          cert: Type.String({ minLength: 1, description: 'PEM certificate (chain), relative to this file.' }),
          key: Type.String({ minLength: 1, description: 'PEM private key, relative to this file.' }),
        },
        { additionalProperties: false, description: 'Certificate presented to the targets (mTLS).' },
      ),
    ),
    minVersion: Type.Union([Type.Literal('TLSv1.2'), Type.Literal('TLSv1.3')], {
      default: 'TLSv1.2',
      description: 'Lowest TLS version accepted.',
    }),
  },
  {
    additionalProperties: false,
    description:
      'TLS to https targets. Files are read when the config loads (and on every reload). Certificates are ' +
      'verified unless insecureSkipVerify.',
  },
);

export const UpstreamSpec = Type.Object(
  {
    targets: Type.Array(Target, {
      minItems: 1,
      maxItems: 64,
      description: 'Where requests are sent, balanced by loadBalancer.',
    }),
    loadBalancer: LoadBalancer,
    healthCheck: Type.Optional(HealthCheck),
    outlierDetection: Type.Optional(OutlierDetection),
    circuitBreaker: Type.Optional(CircuitBreaker),
    retries: Type.Optional(Retries),
    tls: Type.Optional(UpstreamTls),
    timeouts: Type.Object(
      {
        connect: Duration('Time allowed to open a connection; slower answers 503.', '2s'),
        response: Duration(
          'Time allowed until the response headers arrive, over all tries; slower answers 504.',
          '15s',
        ),
        idle: Duration(
          'Time allowed between two chunks of a response body before the call is aborted.',
          '60s',
        ),
      },
      { additionalProperties: false, default: {}, description: 'Time limits of calls to this upstream.' },
    ),
    preserveHost: Type.Boolean({
      default: false,
      description: 'Send the client’s Host header upstream instead of the target’s host.',
    }),
    connections: Type.Integer({
      minimum: 1,
      maximum: 10000,
      default: 256,
      description: 'Most keep-alive connections kept open to each target.',
    }),
  },
  { additionalProperties: false },
);

export const Upstream = resourceSchema('Upstream', UpstreamSpec, 'A service that requests are forwarded to.');
export type Upstream = Static<typeof Upstream>;
export type UpstreamSpec = Static<typeof UpstreamSpec>;
export type RetryOn = Static<typeof RetryOn>;
