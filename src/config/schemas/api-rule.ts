import Type, { type Static } from 'typebox';
import { stageFields } from '../../policies/registry.ts';
import { Duration } from '../duration.ts';
import { resourceSchema } from './metadata.ts';

const Method = Type.Union(
  ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE'].map((m) => Type.Literal(m)),
);

const Rule = Type.Object(
  {
    path: Type.String({
      pattern: '^/',
      description:
        'Path template: literal segments, {name} (one segment, captured), {*} (one segment) and {**} ' +
        '(the rest, last segment only). Precedence per segment: literal > {name}/{*} > {**}.',
    }),
    methods: Type.Optional(
      Type.Array(Method, { minItems: 1, uniqueItems: true, description: 'Methods matched; omitted = all.' }),
    ),
    ...stageFields(),
    upstream: Type.Optional(
      Type.String({ description: 'Upstream for this rule, overriding the APIRule’s.' }),
    ),
    stripPrefix: Type.Optional(
      Type.String({
        pattern: '^/.*[^/]$',
        description: 'Removed from the front of the path before forwarding (e.g. /api). Must not end with /.',
      }),
    ),
    timeout: Type.Optional(
      Duration('Time allowed until the upstream’s response headers, overriding the Upstream’s.'),
    ),
    maxBodyBytes: Type.Optional(
      Type.Integer({
        minimum: 0,
        description:
          'Largest request body accepted on this route, also for chunked bodies, overriding the Gateway’s ' +
          '`limits.maxBodyBytes` (smaller or larger); larger gets 413 `payload_too_large`.',
      }),
    ),
  },
  { additionalProperties: false },
);

export const APIRuleSpec = Type.Object(
  {
    gateway: Type.Optional(
      Type.String({
        description:
          'Name of the Gateway serving these rules. Give exactly one of `gateway` and `gatewaySelector`.',
      }),
    ),
    gatewaySelector: Type.Optional(
      Type.Object(
        {
          matchLabels: Type.Record(Type.String({ maxLength: 63 }), Type.String({ maxLength: 63 }), {
            minProperties: 1,
            description: 'Labels a Gateway must all carry (with these values) to serve these rules.',
          }),
        },
        {
          additionalProperties: false,
          description:
            'The Gateways of this namespace serving these rules, by label, instead of `gateway`. Locally the ' +
            'Gateway resource’s `metadata.labels` are matched; in connected mode also the labels the gateway ' +
            'registered with. A selector matching no Gateway is not an error.',
        },
      ),
    ),
    hosts: Type.Optional(
      Type.Array(Type.String({ pattern: '^(\\*\\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$' }), {
        minItems: 1,
        description:
          'Host names matched: exact (api.example.com) or wildcard (*.example.com); omitted = any.',
      }),
    ),
    upstream: Type.String({ description: 'Name of the Upstream requests are forwarded to.' }),
    rules: Type.Array(Rule, { minItems: 1, description: 'Routes with their policies.' }),
  },
  { additionalProperties: false },
);

export const APIRule = resourceSchema(
  'APIRule',
  APIRuleSpec,
  'Routes of an API on a gateway, with their policies.',
);
export type APIRule = Static<typeof APIRule>;
export type RuleSpec = Static<typeof Rule>;
