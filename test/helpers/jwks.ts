import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';

/** A signing key a test holds: the private half signs, the public JWK is what gets published. */
export interface TestKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

/**
 * A JWKS and OpenID discovery server on 127.0.0.1 whose keys and behaviour the test controls,
 * for checking token verification precisely (tokens are signed by the test with jose).
 * - `/.well-known/openid-configuration`: `{ issuer: url, jwks_uri: url + '/jwks' }`;
 * - `/jwks`: the published keys, or `body` when set (raw text: oversized or malformed sets).
 * Modes: `ok`; `down` answers 503; `hang` never answers (timeouts).
 */
export interface TestKeyServer {
  url: string;
  issuer: string;
  jwksUri: string;
  /** Requests seen, by path. */
  hits: Map<string, number>;
  /** The keys the test signs with; all published unless `published` is set. */
  keys: TestKey[];
  /** Keys in the JWKS: every TestKey's public JWK unless `published` is set. */
  published: unknown[] | null;
  body: string | null;
  mode: 'ok' | 'down' | 'hang';
  /** Adds a key (published from now on) and returns it. */
  addKey(alg?: string, kid?: string): Promise<TestKey>;
  /** A JWT signed with `key` (default: the first), with iss, exp (+1h) and iat filled in. */
  sign(
    claims?: Record<string, unknown>,
    options?: { key?: TestKey; header?: Record<string, unknown> },
  ): Promise<string>;
  close(): Promise<void>;
}

export async function newTestKey(
  alg = 'ES256',
  kid = `${alg.toLowerCase()}-${randomBytes(4).toString('hex')}`,
): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicJwk };
}

export async function startKeyServer(
  options: { algs?: string[]; port?: number } = {},
): Promise<TestKeyServer> {
  const hanging = new Set<import('node:http').ServerResponse>();
  let server: Server;
  const ks: TestKeyServer = {
    url: '',
    issuer: '',
    jwksUri: '',
    hits: new Map(),
    keys: [],
    published: null,
    body: null,
    mode: 'ok',
    async addKey(alg = 'ES256', kid?: string) {
      const key = await newTestKey(alg, kid);
      ks.keys.push(key);
      return key;
    },
    async sign(claims = {}, { key = ks.keys[0]!, header = {} } = {}) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ iss: ks.issuer, iat: now, exp: now + 3600, ...claims })
        .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header })
        .sign(key.privateKey);
    },
    close: () =>
      new Promise((resolve) => {
        for (const res of hanging) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    ks.hits.set(path, (ks.hits.get(path) ?? 0) + 1);
    if (ks.mode === 'hang') {
      hanging.add(res);
      return;
    }
    if (ks.mode === 'down') {
      res.writeHead(503).end('down');
      return;
    }
    let body: string;
    if (path === '/.well-known/openid-configuration') {
      body = JSON.stringify({ issuer: ks.issuer, jwks_uri: ks.jwksUri });
    } else if (path === '/jwks') {
      body = ks.body ?? JSON.stringify({ keys: ks.published ?? ks.keys.map((k) => k.publicJwk) });
    } else {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  ks.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  ks.issuer = ks.url;
  ks.jwksUri = `${ks.url}/jwks`;
  for (const alg of options.algs ?? ['ES256']) await ks.addKey(alg);
  return ks;
}
