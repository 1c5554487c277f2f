import Type, { type Static } from 'typebox';
import { Duration, toMillis } from '../../../config/duration.ts';
import type { ClientCredentialsSettings } from '../../../egress/client-credentials.ts';
import { SecretRefSchema } from '../../../egress/secret-ref.ts';
import type { RequestContext } from '../../../gateway/context.ts';
import { setUpstreamHeader } from '../../../gateway/context.ts';
import { CONTINUE, type PolicyFactory, respond, type Verdict } from '../../types.ts';

const ClientCredentialsConfig = Type.Object(
  {
    tokenUrl: Type.String({
      pattern: '^https?://[^\\s]+$',
      description:
        'Token endpoint of the authorization server. https:// (verified TLS); http:// only to a loopback address.',
    }),
    clientId: Type.String({ minLength: 1, description: 'The client the gateway authenticates as.' }),
    clientSecret: SecretRefSchema('The client secret.'),
    authMethod: Type.Union([Type.Literal('client_secret_basic'), Type.Literal('client_secret_post')], {
      default: 'client_secret_basic',
      description:
        'How the client authenticates to the token endpoint: HTTP Basic (RFC 6749 §2.3.1) or ' +
        'client_id and client_secret in the form.',
    }),
    scope: Type.Optional(
      Type.String({ minLength: 1, description: 'Scopes asked for, space-separated (`scope` parameter).' }),
    ),
    audience: Type.Optional(
      Type.String({
        minLength: 1,
        description: '`audience` parameter, for servers that want one (Auth0, Okta).',
      }),
    ),
    resource: Type.Optional(
      Type.String({ minLength: 1, description: '`resource` parameter (RFC 8707 resource indicator).' }),
    ),
    timeout: Duration('Time allowed for one token request, body included.', '5s'),
    maxResponseBytes: Type.Integer({
      minimum: 1024,
      maximum: 1048576,
      default: 65536,
      description: 'Largest token response accepted; larger fails.',
    }),
    refreshBefore: Duration(
      'A new token is fetched in the background this long before the cached one expires (at most ' +
        'halfway through its lifetime); until then every request reuses the cached token.',
      '60s',
    ),
    defaultLifetime: Duration('How long a token is reused when the answer carries no `expires_in`.', '60s'),
  },
  {
    additionalProperties: false,
    description:
      'Sends `Authorization: Bearer <token>` with an access token the gateway obtains with the OAuth 2.0 ' +
      'client credentials grant, so internal callers hold no secret. The client’s own Authorization ' +
      'header is never forwarded. The token is cached until shortly before it expires and refreshed ' +
      'once for all requests; with no valid token and the token endpoint failing, the request is ' +
      'answered 503 `upstream_credential_unavailable` (failures are remembered for 1s).',
  },
);
export type ClientCredentialsConfig = Static<typeof ClientCredentialsConfig>;

/** Literal loopback hosts: the only ones a client secret may be sent to without TLS. */
const loopback = /^(127(\.\d{1,3}){3}|\[::1\]|localhost)$/;

/** An OAuth2 client-credentials token for the upstream: `mutate: { clientCredentials: { tokenUrl, … } }`. */
export const clientCredentials: PolicyFactory<ClientCredentialsConfig> = {
  name: 'clientCredentials',
  stage: 'mutate',
  schema: ClientCredentialsConfig,
  compile(config, deps) {
    let url: URL;
    try {
      url = new URL(config.tokenUrl);
    } catch {
      throw new TypeError('tokenUrl is not a URL');
    }
    if (url.username !== '' || url.password !== '' || url.hash !== '')
      throw new TypeError('tokenUrl must not carry credentials or a fragment');
    if (url.protocol === 'http:' && !loopback.test(url.hostname))
      throw new TypeError('tokenUrl must be https:// (the client secret would cross the network in clear)');
    const credentials = deps.credentials();
    const name = config.clientSecret.env;
    const secret = credentials.secret(config.clientSecret);
    if (secret === undefined && credentials.live)
      throw new TypeError(`environment variable ${name} is not set`);
    const settings: ClientCredentialsSettings = {
      tokenUrl: url.href,
      clientId: config.clientId,
      clientSecret: secret ?? '',
      authMethod: config.authMethod,
      scope: config.scope ?? null,
      audience: config.audience ?? null,
      resource: config.resource ?? null,
      timeoutMs: toMillis(config.timeout),
      maxResponseBytes: config.maxResponseBytes,
      refreshBeforeMs: toMillis(config.refreshBefore),
      defaultLifetimeMs: toMillis(config.defaultLifetime),
    };
    if (settings.timeoutMs < 1) throw new TypeError('timeout must be at least 1ms');
    if (settings.defaultLifetimeMs < 1000) throw new TypeError('defaultLifetime must be at least 1s');
    const source = credentials.tokenSource(settings);
    const unavailable = respond(
      'upstream_credential_unavailable',
      'the credential for the upstream could not be obtained',
    );
    const apply = (ctx: RequestContext, token: string): Verdict => {
      // Setting Authorization also removes the client's copy (strip, then inject).
      setUpstreamHeader(ctx, 'authorization', `Bearer ${token}`);
      return CONTINUE;
    };
    return {
      name: 'clientCredentials',
      handle(ctx) {
        const token = source.cached();
        if (token !== null) return apply(ctx, token);
        return source.get().then((result) => (result.ok ? apply(ctx, result.token) : unavailable));
      },
    };
  },
};
