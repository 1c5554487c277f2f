// The `jwt` method end to end: a real `gatehouse gateway` process on loopback verifying tokens of
// a real OpenID provider (oidc-provider, keys found by discovery) and tokens the test signs itself
// with keys it publishes from a JWKS server it controls (to craft every kind of bad token).

import assert from 'node:assert/strict';
import { createHmac, createPublicKey } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { httpRequest, type SimpleResponse } from './helpers/http.ts';
import { startTestIdp, type TestIdp } from './helpers/idp.ts';
import { newTestKey, startKeyServer, type TestKeyServer } from './helpers/jwks.ts';
import {
  freePort,
  type RunningProcess,
  startGateway,
  tempConfigDir,
  writeConfig,
} from './helpers/process.ts';
import { type EchoUpstream, startEchoUpstream } from './helpers/upstream.ts';

let idp: TestIdp;
let keys: TestKeyServer;
let upstream: EchoUpstream;
let gateway: RunningProcess;
let port: number;
let adminPort: number;

const resource = (name: string, body: string) => `---\napiVersion: gatehouse.dev/v1\n${name}\n${body}`;

function config(): string {
  return [
    resource(
      'kind: Gateway',
      `metadata: { name: edge }
spec:
  listeners: [{ name: public, address: 127.0.0.1, port: ${port} }]
  admin: { port: ${adminPort} }`,
    ),
    resource('kind: Upstream', `metadata: { name: echo }\nspec: { targets: [{ url: ${upstream.url} }] }`),
    resource(
      'kind: IdentityProvider',
      `metadata: { name: corp }
spec:
  issuer: ${idp.issuer}
  audiences: [${idp.jwtResource}]
  algorithms: [ES256]
  typ: at+jwt`,
    ),
    resource(
      'kind: IdentityProvider',
      `metadata: { name: local }
spec:
  issuer: ${keys.issuer}
  jwksUri: ${keys.jwksUri}
  audiences: [api, admin]
  algorithms: [ES256, RS256]
  keySet: { minRefetchInterval: 3s }`,
    ),
    resource(
      'kind: APIRule',
      `metadata: { name: shop }
spec:
  gateway: edge
  upstream: echo
  rules:
    - { path: /corp, methods: [GET], authenticate: [{ jwt: { provider: corp } }] }
    - { path: /local, methods: [GET], authenticate: [{ jwt: { provider: local } }] }
    - { path: /admin, methods: [GET], authenticate: [{ jwt: { provider: local, audiences: [admin] } }] }
    - { path: /header, methods: [GET], authenticate: [{ jwt: { provider: local, from: { header: X-Token } } }] }
    - { path: /cookie, methods: [GET], authenticate: [{ jwt: { provider: local, from: { cookie: tok } } }] }
    - { path: /query, methods: [GET], authenticate: [{ jwt: { provider: local, from: { query: access_token } } }] }`,
    ),
  ].join('\n');
}

const now = () => Math.floor(Date.now() / 1000);
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const sign = (
  claims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
  key = keys.keys[0],
) => keys.sign({ aud: 'api', sub: 'alice', ...claims }, { key, header });
const get = (path: string, token?: string, headers: Record<string, string> = {}) =>
  httpRequest(port, path, { headers: token ? { authorization: `Bearer ${token}`, ...headers } : headers });
const jwksHits = () => keys.hits.get('/jwks') ?? 0;

function assertRefused(res: SimpleResponse, description: string) {
  assert.equal(res.status, 401, res.body);
  assert.equal(res.json().code, 'invalid_token');
  assert.equal(
    res.headers['www-authenticate'],
    `Bearer error="invalid_token", error_description="${description}"`,
  );
}

async function readyz(admin: number): Promise<number> {
  return (await httpRequest(admin, '/readyz')).status;
}

async function until(condition: () => Promise<boolean>, what: string, tries = 240): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await condition()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`timed out waiting for ${what}`);
}

before(async () => {
  idp = await startTestIdp();
  keys = await startKeyServer({ algs: ['ES256', 'RS256'] });
  upstream = await startEchoUpstream();
  port = await freePort();
  adminPort = await freePort();
  const dir = tempConfigDir('gatehouse-jwt-');
  writeConfig(dir, 'gateway.yaml', config());
  gateway = await startGateway([dir], ['--no-watch']);
  await until(async () => (await readyz(adminPort)) === 200, 'readiness (both key sets)');
});

after(async () => {
  await gateway?.stop();
  await upstream?.close();
  await keys?.close();
  await idp?.close();
});

describe('jwt method', () => {
  test('a JWT of the OpenID provider (keys by discovery) reaches the upstream', async () => {
    const token = await idp.token({ jwt: true, scope: 'read' });
    const seen = upstream.requests.length;
    const res = await get('/corp', token);
    assert.equal(res.status, 200, res.body);
    assert.equal(upstream.requests.length, seen + 1);
    assert.equal(upstream.requests.at(-1)!.url, '/corp');
    assert.ok((idp.hits.get('/.well-known/openid-configuration') ?? 0) >= 1);
    assert.equal((await get('/corp', token)).status, 200, 'again, from the verified-token cache');
  });

  test('no token, another scheme or an opaque token: not this method’s, 401 unauthenticated', async () => {
    const opaque = await idp.token({ jwt: false });
    const cases: Array<Record<string, string>> = [
      {},
      { authorization: 'Basic YTpi' },
      { authorization: `Bearer ${opaque}` },
    ];
    for (const headers of cases) {
      const res = await httpRequest(port, '/corp', { headers });
      assert.equal(res.status, 401);
      assert.equal(res.json().code, 'unauthenticated');
      assert.equal(res.headers['www-authenticate'], 'Bearer', 'the 401 says what to send');
    }
  });

  test('bad tokens are refused with a reason, and never reach the upstream', async () => {
    const rsa = keys.keys[1]!;
    const attacker = await newTestKey('ES256', 'attacker');
    const good = await sign();
    const [header, payload, signature] = good.split('.') as [string, string, string];
    const pem = createPublicKey({ key: rsa.publicJwk as never, format: 'jwk' }).export({
      type: 'spki',
      format: 'pem',
    });
    const hsInput = `${b64({ alg: 'HS256', kid: rsa.kid })}.${b64({ iss: keys.issuer, aud: 'api', exp: now() + 60 })}`;
    const cases: Array<[string, string | Promise<string>]> = [
      ['token expired', sign({ exp: now() - 120 })],
      ['token not yet valid', sign({ nbf: now() + 600 })],
      ['token issued in the future', sign({ iat: now() + 600 })],
      ['exp missing or not a number', sign({ exp: undefined })],
      ['issuer not accepted', sign({ iss: 'https://evil.test' })],
      ['audience not accepted', sign({ aud: 'billing' })],
      [
        'signature invalid',
        `${header}.${b64({ iss: keys.issuer, aud: 'api', sub: 'root', exp: now() + 60 })}.${signature}`,
      ],
      ['unsigned tokens are not accepted', `${b64({ alg: 'none' })}.${payload}.${signature}`],
      ['malformed token', `${b64({ alg: 'none' })}.${payload}.`],
      [
        'signature algorithm not accepted',
        `${hsInput}.${createHmac('sha256', pem).update(hsInput).digest('base64url')}`,
      ],
      [
        'critical header extensions are not supported',
        `${b64({ alg: 'ES256', crit: ['x'], x: 1 })}.${payload}.${signature}`,
      ],
      ['signature invalid', sign({}, { kid: undefined, jwk: attacker.publicJwk }, attacker)],
      ['signing key not found', sign({}, { jku: `${keys.url}/evil`, x5u: `${keys.url}/evil` }, attacker)],
    ];
    const seen = upstream.requests.length;
    for (const [description, token] of cases) assertRefused(await get('/local', await token), description);
    assert.equal(upstream.requests.length, seen);
    assert.equal(keys.hits.get('/evil'), undefined, 'keys offered by the token are never fetched');
  });

  test('the token may come from a named header, a cookie or a query parameter', async () => {
    const token = await sign();
    assert.equal((await get('/header', undefined, { 'x-token': token })).status, 200);
    assert.equal((await get('/header', token)).status, 401, 'only the named header is read');
    assert.equal((await get('/cookie', undefined, { cookie: `theme=dark; tok=${token}` })).status, 200);
    const query = await httpRequest(port, `/query?access_token=${token}`);
    assert.equal(query.status, 200);
    assert.equal(query.json().url, `/query?access_token=${token}`);
  });

  test('a rule may narrow the provider’s audiences', async () => {
    assertRefused(await get('/admin', await sign({ aud: 'api' })), 'audience not accepted');
    assert.equal((await get('/admin', await sign({ aud: ['api', 'admin'] }))).status, 200);
  });

  test('a rotated key (new kid) is picked up by a refetch', async () => {
    const rotated = await keys.addKey('ES256');
    const before = jwksHits();
    const token = await sign({}, {}, rotated);
    // The refetch may be held back by minRefetchInterval (3s) after the last fetch: retry until it is not.
    await until(async () => (await get('/local', token)).status === 200, 'the rotated key');
    assert.ok(jwksHits() > before);
    assert.equal((await get('/local', await sign())).status, 200, 'the old key is still published');
  });

  test('unknown kids cause at most one fetch per minRefetchInterval, shared by concurrent requests', async () => {
    await new Promise((r) => setTimeout(r, 3_500)); // past the rate limit of the previous refetch
    const before = jwksHits();
    const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => sign({}, { kid: `ghost-${i}` })));
    const answers = await Promise.all(tokens.map((t) => get('/local', t)));
    for (const res of answers) assertRefused(res, 'signing key not found');
    const fetched = jwksHits() - before;
    assert.ok(fetched >= 1 && fetched <= 2, `${fetched} fetches for 20 requests`);
  });

  test('keys held are kept through an identity provider outage', async () => {
    keys.mode = 'down';
    idp.setDown(true);
    try {
      assert.equal((await get('/local', await sign({ jti: 'fresh' }))).status, 200);
      assert.equal((await get('/local', await sign({}, {}, keys.keys[1]))).status, 200);
      assertRefused(await get('/local', await sign({}, { kid: 'ghost-outage' })), 'signing key not found');
      assert.equal(await readyz(adminPort), 200);
    } finally {
      keys.mode = 'ok';
      idp.setDown(false);
    }
    // A token of the OpenID provider issued after the outage still verifies against the held keys.
    assert.equal((await get('/corp', await idp.token({ jwt: true }))).status, 200);
  });
});

describe('cold identity provider', () => {
  test('503 and not ready until the key set can be fetched, then tokens verify', async () => {
    const coldPort = await freePort();
    const listen = await freePort();
    const admin = await freePort();
    const dir = tempConfigDir('gatehouse-jwt-cold-');
    writeConfig(
      dir,
      'gateway.yaml',
      [
        resource(
          'kind: Gateway',
          `metadata: { name: edge }
spec:
  listeners: [{ name: public, address: 127.0.0.1, port: ${listen} }]
  admin: { port: ${admin} }`,
        ),
        resource('kind: Upstream', `metadata: { name: echo }\nspec: { targets: [{ url: ${upstream.url} }] }`),
        resource(
          'kind: IdentityProvider',
          `metadata: { name: cold }
spec:
  issuer: http://127.0.0.1:${coldPort}
  audiences: [api]
  algorithms: [ES256]`,
        ),
        resource(
          'kind: APIRule',
          `metadata: { name: shop }
spec:
  gateway: edge
  upstream: echo
  rules:
    - { path: /cold, methods: [GET], authenticate: [{ jwt: { provider: cold } }] }`,
        ),
      ].join('\n'),
    );
    const cold = await startGateway([dir], ['--no-watch']);
    let server: TestKeyServer | null = null;
    try {
      assert.equal(await readyz(admin), 503);
      const early = await newTestKey('ES256');
      const token = await keys.sign({ iss: `http://127.0.0.1:${coldPort}`, aud: 'api' }, { key: early });
      const res = await httpRequest(listen, '/cold', { headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.status, 503);
      assert.equal(res.json().code, 'identity_provider_unavailable');
      assert.equal(await readyz(admin), 503);

      server = await startKeyServer({ port: coldPort });
      await until(async () => (await readyz(admin)) === 200, 'readiness once the provider is up');
      assert.ok((server.hits.get('/.well-known/openid-configuration') ?? 0) >= 1, 'found by discovery');
      const valid = await server.sign({ aud: 'api', sub: 'bob' });
      const ok = await httpRequest(listen, '/cold', { headers: { authorization: `Bearer ${valid}` } });
      assert.equal(ok.status, 200, ok.body);
    } finally {
      await cold.stop();
      await server?.close();
    }
  });
});
