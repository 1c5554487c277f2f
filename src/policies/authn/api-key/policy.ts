import Type, { type Static } from 'typebox';
import { removeUpstreamHeader } from '../../../gateway/context.ts';
import { queryParam } from '../../query-params.ts';
import { CONTINUE, type PolicyFactory, respond, SKIP, type Verdict } from '../../types.ts';

const ApiKeyConfig = Type.Object(
  {
    from: Type.Object(
      {
        header: Type.Optional(
          Type.String({
            pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
            description: 'Header whose whole value is the key.',
          }),
        ),
        query: Type.Optional(
          Type.String({
            pattern: '^[A-Za-z0-9._~-]+$',
            description:
              'Query parameter holding the key. Discouraged: URLs end up in logs. The parameter is ' +
              'removed from the query sent upstream.',
          }),
        ),
      },
      {
        additionalProperties: false,
        minProperties: 1,
        maxProperties: 1,
        default: { header: 'x-api-key' },
        description: 'Where the key is read from: one of header, query. Default: the `X-API-Key` header.',
      },
    ),
  },
  {
    additionalProperties: false,
    description:
      'API key of a Consumer in the same namespace, checked against the SHA-256 hashes it lists. ' +
      'No key: steps aside. Unknown key: 401 `invalid_api_key`. The key is not forwarded upstream.',
  },
);
export type ApiKeyConfig = Static<typeof ApiKeyConfig>;

/** API keys of Consumers: `- apiKey: { from: { header: X-API-Key } }`. */
export const apiKey: PolicyFactory<ApiKeyConfig> = {
  name: 'apiKey',
  stage: 'authenticate',
  schema: ApiKeyConfig,
  compile(config, deps) {
    const consumers = deps.consumers();
    const query = config.from?.query;
    const header = query === undefined ? (config.from?.header ?? 'x-api-key').toLowerCase() : null;
    const challenge = {
      'www-authenticate': header !== null ? `ApiKey header="${header}"` : `ApiKey query="${query}"`,
    };
    // Never the key itself in a detail: it would reach logs and clients.
    const ambiguous = respond('invalid_api_key', 'the API key parameter was sent more than once', challenge);
    const empty = respond('invalid_api_key', 'the API key is empty', challenge);
    const unknown = respond('invalid_api_key', 'unknown API key', challenge);
    return {
      name: 'apiKey',
      challenge: challenge['www-authenticate'],
      handle(ctx): Verdict {
        let key: string;
        let rest: string | null = null;
        if (header !== null) {
          const value = ctx.headers[header];
          if (typeof value !== 'string') return SKIP;
          key = value;
        } else {
          const found = queryParam(ctx.query, query!);
          if (found === undefined) return SKIP;
          if (found === null) return ambiguous;
          key = found.value;
          rest = found.rest;
        }
        if (key === '') return empty;
        const match = consumers.findByKey(key);
        if (match === undefined) return unknown;
        ctx.identity = { method: 'apiKey', subject: match.consumer.name, consumer: match.consumer };
        // The credential goes no further than the gateway.
        if (header !== null) removeUpstreamHeader(ctx, header);
        else ctx.upstreamQuery = rest!;
        return CONTINUE;
      },
    };
  },
};
