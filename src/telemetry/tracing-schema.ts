import Type, { type Static } from 'typebox';
import { Duration } from '../config/duration.ts';

export const TracingSpec = Type.Object(
  {
    enabled: Type.Boolean({ default: true, description: 'Make a span per request and export it.' }),
    otlp: Type.Object(
      {
        url: Type.String({
          pattern: '^https?://',
          description: 'OTLP/HTTP traces endpoint, e.g. `http://127.0.0.1:4318/v1/traces`.',
        }),
        timeout: Duration('Time allowed for one export.', '10s'),
        headers: Type.Record(Type.String(), Type.String(), {
          default: {},
          description: 'Extra headers on every export (e.g. a collector’s API key).',
        }),
      },
      { additionalProperties: false, description: 'Where spans are exported (OTLP/HTTP, JSON).' },
    ),
    sampleRatio: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 0.01,
      description:
        'Share of new traces recorded (0–1). Parent-based: a request whose `traceparent` is sampled is ' +
        'always recorded, one whose parent is not sampled never is. Unrecorded requests still carry a ' +
        'trace id (in their API event, and continued upstream with the sampled flag off) at almost no ' +
        'cost; a recorded request costs the OpenTelemetry SDK about 10 µs of CPU (two spans and their ' +
        'export), so 1 (every request) costs over 10 % of the throughput of a simple route: docs/analytics.md.',
    }),
    serviceName: Type.Optional(
      Type.String({
        minLength: 1,
        description: '`service.name` of the spans; default `gatehouse-<gateway name>`.',
      }),
    ),
    maxQueueSize: Type.Integer({
      minimum: 1,
      default: 8192,
      description: 'Most finished spans waiting for export; more are dropped (never blocks requests).',
    }),
    exportInterval: Duration('How often finished spans are exported.', '1s'),
  },
  {
    additionalProperties: false,
    description:
      'OpenTelemetry traces: a span per request, child spans for the upstream call, key-set fetches and ' +
      'introspection; W3C `traceparent` sent upstream. Fixed at start: a reload does not change it.',
  },
);
export type TracingSpec = Static<typeof TracingSpec>;
