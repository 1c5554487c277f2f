import Type, { type Static } from 'typebox';
import { Duration } from '../config/duration.ts';

const LinkAuth = Type.Union([Type.Literal('gateway-token'), Type.Literal('control-plane')], {
  default: 'gateway-token',
  description:
    'How the gateway proves itself to ingestion. gateway-token (local mode): a short-lived JWT (aud ' +
    '`gatehouse:analytics`, sub = the gateway name) signed with the gateway’s own token keys ' +
    '(`spec.tokens`, published at `/.well-known/jwks.json` on the admin port); ingestion trusts that ' +
    'JWKS URL (ControlPlane `spec.analytics.trustedGateways`). control-plane (connected mode): the JWT ' +
    'issued by the control plane, verified against its JWKS.',
});

const Queue = Type.Object(
  {
    maxEvents: Type.Integer({
      minimum: 1,
      default: 20000,
      description:
        'Most events held in memory (recorded, not yet acknowledged). Past it, events are kept only in the ' +
        'spool (read back when sent); with the spool full too, new events are dropped and counted.',
    }),
  },
  { additionalProperties: false, default: {}, description: 'The memory queue.' },
);

const Spool = Type.Object(
  {
    dir: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'Directory (relative to the config file) for the spool: append-only segment files of ' +
          'checksummed batches, replayed on start. Omitted: memory only (events in the queue are lost ' +
          'on a crash). One gateway process per directory.',
      }),
    ),
    maxBytes: Type.Integer({
      minimum: 65536,
      default: 268435456,
      description:
        'Most bytes of unacknowledged events on disk. Past it (and with the memory queue full), new ' +
        'events are dropped and counted in `gatehouse_analytics_events_dropped_total`.',
    }),
    segmentBytes: Type.Integer({
      minimum: 4096,
      default: 8388608,
      description:
        'A segment file is closed at this size and a new one started; acknowledged segments are deleted.',
    }),
    writeInterval: Duration(
      'Events of calls not answered (the client left) gather this long before their spool write. ' +
        'Answered calls do not wait for it: a response’s last bytes leave once its event is in the ' +
        'spool file (one write for all the responses of a turn or more; see loopWriteLimit).',
      '20ms',
    ),
    loopWriteLimit: Duration(
      'Spool writes run on the event loop (one per turn, into the page cache: cheaper than a ' +
        'thread-pool round trip) while they take less than this; three slower in a row (a slow or ' +
        'throttled disk) send them to the thread pool for a minute. Slower writes are counted in ' +
        '`gatehouse_analytics_spool_slow_writes_total`. While an fsync runs they go there too. ' +
        '0s: always in the thread pool.',
      '2ms',
    ),
    holdTimeout: Duration(
      'Longest a response’s last bytes wait for its event’s spool write. Past it (a hung or very slow ' +
        'disk) the response is sent and its event stays in memory, counted in ' +
        '`gatehouse_analytics_spool_hold_timeouts_total`: a process kill may then lose it. 0s: wait ' +
        'however long.',
      '1s',
    ),
    fsyncInterval: Duration(
      'How often written spool data is flushed to the disk (fsync). A process kill loses nothing ' +
        'written; a machine crash may lose up to this much.',
      '1s',
    ),
  },
  { additionalProperties: false, default: {}, description: 'The disk spool (write-ahead log of events).' },
);

const Http = Type.Object(
  {
    url: Type.String({
      pattern: '^https?://',
      description: 'Ingestion endpoint, e.g. `http://analytics:7070/analytics/v1/events`.',
    }),
    timeout: Duration('Time allowed for one batch upload, answer included.', '10s'),
    caCerts: Type.Optional(
      Type.String({
        description: 'PEM file of CA certificates for an https endpoint, relative to the config file.',
      }),
    ),
  },
  { additionalProperties: false, description: 'Send batches over HTTP(S) with POST.' },
);

const Nats = Type.Object(
  {
    servers: Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      description: 'NATS servers, e.g. `nats://127.0.0.1:4222`.',
    }),
    subject: Type.String({
      minLength: 1,
      default: 'gatehouse.analytics.events',
      description: 'Subject batches are published on; a JetStream stream must capture it.',
    }),
    timeout: Duration('Time allowed for one publish to be acknowledged by JetStream.', '10s'),
  },
  { additionalProperties: false, description: 'Publish batches to NATS JetStream instead of HTTP.' },
);

export const AnalyticsGatewaySpec = Type.Object(
  {
    enabled: Type.Boolean({ default: true, description: 'Record and ship an API event per call.' }),
    http: Type.Optional(Http),
    nats: Type.Optional(Nats),
    auth: LinkAuth,
    compression: Type.Union([Type.Literal('zstd'), Type.Literal('gzip'), Type.Literal('none')], {
      default: 'zstd',
      description: 'Body encoding of a batch.',
    }),
    batch: Type.Object(
      {
        maxEvents: Type.Integer({
          minimum: 1,
          maximum: 10000,
          default: 1000,
          description: 'Most events in one upload.',
        }),
        interval: Duration('Longest an event waits for its batch to fill before it is sent.', '1s'),
      },
      { additionalProperties: false, default: {}, description: 'Batching of uploads.' },
    ),
    retry: Type.Object(
      {
        initialDelay: Duration(
          'Wait before the first retry of a failed upload (then doubled, with jitter).',
          '200ms',
        ),
        maxDelay: Duration('Longest wait between retries.', '30s'),
      },
      {
        additionalProperties: false,
        default: {},
        description: 'Retries of failed uploads; they never stop.',
      },
    ),
    queue: Queue,
    spool: Spool,
  },
  {
    additionalProperties: false,
    description:
      'API event records shipped to analytics ingestion (docs/analytics.md): batched, compressed, signed, ' +
      'spooled to disk, delivered at least once with event ids so ingestion de-duplicates. Exactly one of ' +
      '`http` and `nats`. Fixed at start: a reload does not change it.',
  },
);
export type AnalyticsGatewaySpec = Static<typeof AnalyticsGatewaySpec>;
