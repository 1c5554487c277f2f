import Type, { type Static } from 'typebox';
import { resourceSchema } from './metadata.ts';

const ApiKey = Type.Object(
  {
    sha256: Type.String({
      pattern: '^[0-9a-fA-F]{64}$',
      description:
        'SHA-256 of the key, 64 hex digits (`gatehouse hash-key` prints it). The key itself is never stored.',
    }),
    name: Type.String({
      minLength: 1,
      maxLength: 63,
      description: 'Label of the key (e.g. where it is used), so one key can be rotated out by name.',
    }),
  },
  { additionalProperties: false },
);

export const ConsumerSpec = Type.Object(
  {
    apiKeys: Type.Array(ApiKey, {
      default: [],
      description:
        'API keys of this consumer, as hashes. A hash used twice in a namespace is a compile error.',
    }),
    groups: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      uniqueItems: true,
      description: 'Groups the consumer belongs to (matched by `authorize.groups` and `{ group: … }`).',
    }),
    metadata: Type.Record(Type.String(), Type.String(), {
      default: {},
      description:
        'Attributes of the consumer. Authorization conditions read them as claims (`{ claim: tenant, … }`).',
    }),
  },
  { additionalProperties: false },
);

export const Consumer = resourceSchema(
  'Consumer',
  ConsumerSpec,
  'A known caller that is not a token holder: its API keys (hashed), groups and metadata.',
);
export type Consumer = Static<typeof Consumer>;
export type ConsumerSpec = Static<typeof ConsumerSpec>;
