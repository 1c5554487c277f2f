import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { errors } from 'oidc-provider';

/**
 * A real OpenID provider (oidc-provider) on 127.0.0.1 for tests: client_credentials tokens that are
 * JWTs (with `resource=<jwtResource>`) or opaque (without), introspection, revocation, JWKS.
 * It counts requests per path so tests can assert caching and coalescing, and can be paused
 * (answers 503) or stopped and restarted on the same port to simulate outages.
 */
export interface TestIdp {
  issuer: string;
  port: number;
  jwtResource: string;
  clients: { app: { id: string; secret: string }; gateway: { id: string; secret: string } };
  /** Requests seen, by path (e.g. `/jwks`, `/token/introspection`). */
  hits: Map<string, number>;
  /** A client_credentials access token; JWT when `jwt` is true. */
  token(options?: { scope?: string; jwt?: boolean }): Promise<string>;
  /** While true, every request gets 503. */
  setDown(down: boolean): void;
  /** Rotates the signing keys (new kid), keeping the old key published too when `keepOld`. */
  rotateKeys(keepOld?: boolean): Promise<void>;
  close(): Promise<void>;
}

async function signingKey(alg: 'ES256' | 'RS256') {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, alg, use: 'sig', kid: `${alg.toLowerCase()}-${randomBytes(4).toString('hex')}` };
}

export async function startTestIdp(
  options: {
    port?: number;
    scopes?: string[];
    accessTokenTtl?: number;
    /** Claims added to every access token (oidc-provider `extraTokenClaims`), e.g. a roles claim. */
    extraTokenClaims?: Record<string, unknown>;
  } = {},
): Promise<TestIdp> {
  const scopes = options.scopes ?? ['read', 'write', 'orders.read', 'orders.write', 'admin'];
  const hits = new Map<string, number>();
  let down = false;
  let server: Server | null = null;
  let provider: Provider;
  let keys = [await signingKey('ES256'), await signingKey('RS256')];
  const app = { id: 'app', secret: randomBytes(24).toString('hex') };
  const gateway = { id: 'gateway', secret: randomBytes(24).toString('hex') };
  const port = options.port ?? 0;

  const build = (issuer: string) => {
    const jwtResource = 'https://api.gatehouse.test';
    provider = new Provider(issuer, {
      clients: [
        {
          client_id: app.id,
          client_secret: app.secret,
          grant_types: ['client_credentials'],
          response_types: [],
          redirect_uris: [],
          token_endpoint_auth_method: 'client_secret_basic',
          scope: scopes.join(' '),
        },
        {
          client_id: gateway.id,
          client_secret: gateway.secret,
          grant_types: [],
          response_types: [],
          redirect_uris: [],
        },
      ],
      jwks: { keys },
      cookies: { keys: [randomBytes(16).toString('hex')] },
      scopes,
      ttl: { ClientCredentials: options.accessTokenTtl ?? 600 },
      ...(options.extraTokenClaims ? { extraTokenClaims: async () => options.extraTokenClaims } : {}),
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        introspection: { enabled: true, allowedPolicy: async () => true },
        revocation: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: async (_ctx, _client, oneOf) => oneOf ?? undefined,
          useGrantedResource: async () => true,
          getResourceServerInfo: async (_ctx, resource) => {
            if (resource !== jwtResource) throw new errors.InvalidTarget();
            return {
              scope: scopes.join(' '),
              audience: jwtResource,
              accessTokenTTL: options.accessTokenTtl ?? 600,
              accessTokenFormat: 'jwt',
              jwt: { sign: { alg: 'ES256' } },
            };
          },
        },
      },
    });
    return jwtResource;
  };

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    if (down) {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('down');
      return;
    }
    provider.callback()(req, res);
  };
  server = createServer(handler);
  await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve));
  const actualPort = (server.address() as AddressInfo).port;
  const issuer = `http://127.0.0.1:${actualPort}`;
  let jwtResource = build(issuer);

  const idp: TestIdp = {
    issuer,
    port: actualPort,
    jwtResource,
    clients: { app, gateway },
    hits,
    async token({ scope = 'read', jwt = true } = {}) {
      const body = new URLSearchParams({ grant_type: 'client_credentials', scope });
      if (jwt) body.set('resource', jwtResource);
      const res = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${app.id}:${app.secret}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body,
      });
      const json = (await res.json()) as { access_token?: string; error?: string };
      if (!json.access_token) throw new Error(`token request failed: ${JSON.stringify(json)}`);
      return json.access_token;
    },
    setDown(value) {
      down = value;
    },
    async rotateKeys(keepOld = true) {
      const fresh = [await signingKey('ES256'), await signingKey('RS256')];
      keys = keepOld ? [...fresh, ...keys] : fresh;
      jwtResource = build(issuer);
      idp.jwtResource = jwtResource;
    },
    close: () =>
      new Promise((resolve) => {
        server?.closeAllConnections();
        server?.close(() => resolve());
      }),
  };
  return idp;
}
