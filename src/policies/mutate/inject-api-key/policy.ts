import Type, { type Static } from 'typebox';
import { headerSafe, SecretRefSchema } from '../../../egress/secret-ref.ts';
import { removeUpstreamHeader, setUpstreamHeader } from '../../../gateway/context.ts';
import { isReservedUpstreamHeader } from '../../../gateway/headers.ts';
import { CONTINUE, type PolicyFactory } from '../../types.ts';

const InjectApiKeyConfig = Type.Object(
  {
    header: Type.String({
      pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
      default: 'Authorization',
      description: 'Header that carries the key upstream, e.g. Authorization or X-Api-Key.',
    }),
    value: SecretRefSchema('The API key.'),
    prefix: Type.String({
      pattern: '^[\\x20-\\x7e]*$',
      maxLength: 64,
      default: '',
      description: 'Text put before the key, e.g. `Bearer ` (with its space) or `Basic `.',
    }),
  },
  {
    additionalProperties: false,
    description:
      'Sends an API key the gateway holds, so internal callers hold no secret: the header is set to ' +
      '`prefix` + the key, replacing any copy the client sent, and the client’s own Authorization ' +
      'header is never forwarded. The environment variable must be set when the gateway loads the config.',
  },
);
export type InjectApiKeyConfig = Static<typeof InjectApiKeyConfig>;

/** An upstream API key from the environment: `mutate: { injectApiKey: { header: X-Api-Key, value: { env: K } } }`. */
export const injectApiKey: PolicyFactory<InjectApiKeyConfig> = {
  name: 'injectApiKey',
  stage: 'mutate',
  schema: InjectApiKeyConfig,
  compile(config, deps) {
    const header = config.header.toLowerCase();
    if (isReservedUpstreamHeader(header))
      throw new TypeError(`header ${config.header} is set by the gateway itself`);
    const credentials = deps.credentials();
    const name = config.value.env;
    const key = credentials.secret(config.value);
    if (key === undefined && credentials.live) throw new TypeError(`environment variable ${name} is not set`);
    // Never the value in a message: it would reach logs.
    if (key !== undefined && !headerSafe.test(key))
      throw new TypeError(
        `environment variable ${name} holds characters a header cannot carry (e.g. a newline)`,
      );
    // Offline (validate, explain) no secret is read: a placeholder shows where it would go.
    const value = `${config.prefix}${key ?? `<${name}>`}`;
    const clearAuthorization = header !== 'authorization';
    return {
      name: 'injectApiKey',
      handle(ctx) {
        if (clearAuthorization) removeUpstreamHeader(ctx, 'authorization');
        setUpstreamHeader(ctx, header, value);
        return CONTINUE;
      },
    };
  },
};
