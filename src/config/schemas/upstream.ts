import Type, { type Static } from 'typebox';
import { Duration } from '../duration.ts';
import { resourceSchema } from './metadata.ts';

const Target = Type.Object(
  {
    url: Type.String({
      pattern: '^https?://[^/?#]+(/[^?#]*)?$',
      description:
        'Origin of the target, http:// or https://; a path here is put in front of every forwarded path.',
    }),
  },
  { additionalProperties: false },
);

export const UpstreamSpec = Type.Object(
  {
    targets: Type.Array(Target, {
      minItems: 1,
      maxItems: 1,
      description: 'Where requests are sent. One target for now; load balancing over several is planned.',
    }),
    timeouts: Type.Object(
      {
        connect: Duration('Time allowed to open a connection; slower answers 503.', '2s'),
        response: Duration('Time allowed until the response headers arrive; slower answers 504.', '15s'),
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
