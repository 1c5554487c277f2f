// The identity provider `gatehouse dev` runs beside the quickstart, so the protected route can be
// tried without an account anywhere: an OpenID provider (oidc-provider, the certified
// implementation, rather than a hand-made token endpoint) on loopback with one client_credentials
// client (demo-client.ts) whose access tokens are JWTs the gateway verifies like any provider's.

import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { errors } from 'oidc-provider';
import { demoAudience, demoClient, demoScopes } from './demo-client.ts';
import { demoIdpStore } from './demo-idp-store.ts';

export interface DemoIdp {
  /** `http://127.0.0.1:<port>`: discovery at `<issuer>/.well-known/openid-configuration`. */
  readonly issuer: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Demo tokens last an hour: long enough to keep one in a shell variable while trying things. */
const tokenLifetimeSeconds = 3600;

/**
 * Starts the demo provider on `host:port`. Its signing key is generated at every start and kept in
 * memory only: nothing is written to disk, and tokens from an earlier run stop verifying (their
 * `kid` is gone), which is what a demo wants.
 */
export async function startDemoIdp(port: number, host = '127.0.0.1'): Promise<DemoIdp> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const actualPort = (server.address() as AddressInfo).port;
  const issuer = `http://${host}:${actualPort}`;
  try {
    const provider = await demoProvider(issuer);
    server.on('request', provider.callback());
  } catch (err) {
    await closeServer(server);
    throw err;
  }
  return { issuer, port: actualPort, close: () => closeServer(server) };
}

async function demoProvider(issuer: string): Promise<Provider> {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const signingKey = {
    ...(await exportJWK(privateKey)),
    alg: 'ES256',
    use: 'sig',
    kid: `demo-${randomBytes(6).toString('hex')}`,
  };
  const scope = demoScopes.join(' ');
  return new Provider(issuer, {
    adapter: demoIdpStore(),
    clients: [
      {
        client_id: demoClient.id,
        client_secret: demoClient.secret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: 'ES256',
        scope,
      },
    ],
    jwks: { keys: [signingKey] },
    // Only used by the browser flows, which are off; oidc-provider wants a key all the same.
    cookies: { keys: [randomBytes(16).toString('hex')] },
    scopes: [...demoScopes],
    ttl: { ClientCredentials: tokenLifetimeSeconds },
    enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // A token request without `resource` gets the demo API too, so every token is a JWT.
        defaultResource: async () => demoAudience,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resource) => {
          if (resource !== demoAudience)
            throw new errors.InvalidTarget(`unknown resource: use ${demoAudience}`);
          return {
            scope,
            audience: demoAudience,
            accessTokenTTL: tokenLifetimeSeconds,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}
