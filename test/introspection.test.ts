import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Value from 'typebox/value';
import { IdentityProviderSpec } from '../src/config/schemas/identity-provider.ts';
import { createIntrospector } from '../src/identity/introspection.ts';
import type { CredentialCheck, Introspector, ProviderDeps } from '../src/identity/types.ts';
import { policyFactories } from '../src/policies/registry.ts';
import { httpRequest } from './helpers/http.ts';
import { startTestIdp, type TestIdp } from './helpers/idp.ts';
import {
  freePort,
  type RunningProcess,
  runCli,
  startGateway,
  tempConfigDir,
  writeConfig,
} from './helpers/process.ts';
import { type EchoUpstream, startEchoUpstream } from './helpers/upstream.ts';

// ---------------------------------------------------------------------------------------------
// The introspection client against a local endpoint this test controls.
// ---------------------------------------------------------------------------------------------

interface SeenCall {
  path: string;
  headers: IncomingMessage['headers'];
  form: URLSearchParams;
}

type Behaviour = (call: SeenCall, res: ServerResponse) => void;

/** Answers `/introspect` from `answers` (by token; unknown → inactive) unless a test sets `behaviour`. */
const endpoint = {
  server: null as Server | null,
  origin: '',
  calls: [] as SeenCall[],
  answers: new Map<string, Record<string, unknown>>(),
  behaviour: null as Behaviour | null,
  discovery: null as Record<string, unknown> | null,
  held: [] as ServerResponse[],
  introspections(): number {
    return this.calls.filter((c) => c.path === '/introspect').length;
  },
};

function answerJson(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

before(async () => {
  endpoint.server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
    });
    req.on('end', () => {
      const call = { path: req.url ?? '/', headers: req.headers, form: new URLSearchParams(body) };
      endpoint.calls.push(call);
      if (call.path === '/.well-known/openid-configuration') {
        if (endpoint.discovery) answerJson(res, 200, endpoint.discovery);
        else answerJson(res, 404, { error: 'not_found' });
        return;
      }
      if (endpoint.behaviour) {
        endpoint.behaviour(call, res);
        return;
      }
      answerJson(res, 200, endpoint.answers.get(call.form.get('token') ?? '') ?? { active: false });
    });
  });
  await new Promise<void>((resolve) => endpoint.server!.listen(0, '127.0.0.1', resolve));
  endpoint.origin = `http://127.0.0.1:${(endpoint.server!.address() as AddressInfo).port}`;
});

after(() => {
  for (const res of endpoint.held) res.destroy();
  endpoint.server?.closeAllConnections();
  endpoint.server?.close();
});

const clock = { now: Date.now() };
const logged: Array<{ level: string; fields: Record<string, unknown>; message: string }> = [];
const introspectors: Introspector[] = [];

after(() => {
  for (const i of introspectors) i.close();
});

function reset() {
  endpoint.calls.length = 0;
  endpoint.answers.clear();
  endpoint.behaviour = null;
  endpoint.discovery = null;
  logged.length = 0;
  clock.now = Date.now();
}

function introspector(
  settings: Record<string, unknown> = {},
  spec: Record<string, unknown> = {},
  deps: Partial<ProviderDeps> = {},
): Introspector {
  const full = Value.Default(IdentityProviderSpec, {
    issuer: endpoint.origin,
    ...spec,
    introspection: {
      endpoint: `${endpoint.origin}/introspect`,
      clientId: 'gw',
      clientSecret: { env: 'IDP_SECRET' },
      ...settings,
    },
  }) as IdentityProviderSpec;
  const created = createIntrospector('default/corp', full, {
    now: () => clock.now,
    start: true,
    env: { IDP_SECRET: 's3cret' },
    log: (level, fields, message) => logged.push({ level, fields, message }),
    ...deps,
  });
  introspectors.push(created);
  return created;
}

function nowSeconds() {
  return Math.floor(clock.now / 1000);
}

async function check(i: Introspector, token: string): Promise<CredentialCheck> {
  return await i.introspect(token);
}

function assertUnavailable(result: CredentialCheck, reason: RegExp) {
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.equal(result.kind, 'unavailable');
  assert.match(result.reason, reason);
}

function assertRefused(result: CredentialCheck, reason: RegExp) {
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.equal(result.kind, 'invalid');
  assert.match(result.reason, reason);
}

describe('introspector: the call', () => {
  test('client_secret_basic: form-encoded credentials in Authorization, token in the body', async () => {
    reset();
    endpoint.answers.set('tok-1', { active: true, sub: 'alice' });
    const i = introspector({ clientId: 'gw id' }, {}, { env: { IDP_SECRET: 'p@ss word:/+' } });
    const result = await check(i, 'tok-1');
    assert.equal(result.ok, true);
    const [call] = endpoint.calls;
    assert.ok(call);
    assert.equal(call.headers['content-type'], 'application/x-www-form-urlencoded');
    const basic = /^Basic (.+)$/.exec(call.headers.authorization ?? '');
    assert.ok(basic);
    const [id, secret] = Buffer.from(basic[1]!, 'base64').toString('utf8').split(':');
    const formDecode = (s: string) => decodeURIComponent(s.replaceAll('+', ' '));
    assert.equal(formDecode(id!), 'gw id');
    assert.equal(formDecode(secret!), 'p@ss word:/+');
    assert.equal(call.form.get('token'), 'tok-1');
    assert.equal(call.form.get('token_type_hint'), 'access_token');
    assert.equal(call.form.get('client_secret'), null);
  });

  test('client_secret_post: credentials in the body, no Authorization', async () => {
    reset();
    endpoint.answers.set('tok-2', { active: true, sub: 'bob' });
    const i = introspector({ authMethod: 'client_secret_post' });
    assert.equal((await check(i, 'tok-2')).ok, true);
    const [call] = endpoint.calls;
    assert.equal(call?.headers.authorization, undefined);
    assert.equal(call?.form.get('client_id'), 'gw');
    assert.equal(call?.form.get('client_secret'), 's3cret');
    assert.equal(call?.form.get('token'), 'tok-2');
  });

  test('an active answer becomes frozen claims with expiresAt from exp', async () => {
    reset();
    const exp = nowSeconds() + 300;
    endpoint.answers.set('tok-3', { active: true, sub: 'carol', exp, aud: ['a', 'b'] });
    const result = await check(introspector(), 'tok-3');
    assert.equal(result.ok, true);
    if (!result.ok) return;
    assert.equal(result.expiresAt, exp * 1000);
    assert.equal(result.claims.sub, 'carol');
    assert.ok(Object.isFrozen(result.claims));
    assert.ok(Object.isFrozen(result.claims.aud), 'nested values are frozen too');
  });

  test('a silent endpoint times out → unavailable', async () => {
    reset();
    endpoint.behaviour = (_call, res) => {
      endpoint.held.push(res);
    };
    assertUnavailable(await check(introspector({ timeout: '200ms' }), 'tok-slow'), /timed out/);
  });

  test('a response over maxResponseBytes → unavailable, declared or streamed', async () => {
    reset();
    const big = JSON.stringify({ active: true, sub: 'x', pad: 'y'.repeat(2000) });
    endpoint.behaviour = (call, res) => {
      if (call.form.get('token') === 'declared') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(big) });
        res.end(big);
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }); // chunked: no length announced
        for (let i = 0; i < big.length; i += 100) res.write(big.slice(i, i + 100));
        res.end();
      }
    };
    const i = introspector({ maxResponseBytes: 1024 });
    assertUnavailable(await check(i, 'declared'), /larger than 1024 bytes/);
    assertUnavailable(await check(i, 'streamed'), /larger than 1024 bytes/);
  });

  test('bad bodies → unavailable', async () => {
    reset();
    const bodies: Record<string, string> = {
      'not-json': '{"active": tru',
      array: '[{"active": true}]',
      'no-active': '{"sub": "x"}',
      'string-active': '{"active": "true"}',
    };
    endpoint.behaviour = (call, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(bodies[call.form.get('token')!]);
    };
    const i = introspector();
    assertUnavailable(await check(i, 'not-json'), /not JSON/);
    assertUnavailable(await check(i, 'array'), /not a JSON object/);
    assertUnavailable(await check(i, 'no-active'), /"active"/);
    assertUnavailable(await check(i, 'string-active'), /"active"/);
  });

  test('any status but 200 → unavailable (redirects are not followed)', async () => {
    reset();
    endpoint.behaviour = (call, res) => {
      const status = Number(call.form.get('token'));
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (status === 302) headers.location = `${endpoint.origin}/introspect`;
      res.writeHead(status, headers).end(JSON.stringify({ active: true, error: 'x' }));
    };
    const i = introspector();
    for (const status of ['302', '400', '401', '500', '503'])
      assertUnavailable(await check(i, status), new RegExp(`HTTP ${status}`));
    assert.equal(endpoint.introspections(), 5);
  });

  test('an unreachable endpoint → unavailable', async () => {
    reset();
    const port = await freePort();
    assertUnavailable(
      await check(introspector({ endpoint: `http://127.0.0.1:${port}/introspect` }), 'tok'),
      /unreachable/,
    );
  });

  test('failures are logged once per outage, recovery once; tokens never', async () => {
    reset();
    let down = true;
    endpoint.behaviour = (_call, res) => {
      if (down) res.writeHead(503).end();
      else answerJson(res, 200, { active: false });
    };
    const i = introspector();
    for (const token of ['secret-a', 'secret-b', 'secret-c']) await check(i, token);
    down = false;
    await check(i, 'secret-d');
    assert.deepEqual(
      logged.map((l) => l.level),
      ['warn', 'info'],
    );
    assert.ok(!JSON.stringify(logged).includes('secret-'), 'no token in logs');
  });
});

describe('introspector: what an active answer must also satisfy', () => {
  const cases: Array<[string, Record<string, unknown>, RegExp | null]> = [
    ['matching issuer', { iss: '<issuer>' }, null],
    ['other issuer', { iss: 'https://evil.test' }, /issuer/],
    ['accepted audience', { aud: 'orders' }, null],
    ['accepted audience in a list', { aud: ['billing', 'orders'] }, null],
    ['other audience', { aud: ['billing'] }, /audience/],
    ['no audience (not asserted)', {}, null],
    ['Bearer type', { token_type: 'Bearer' }, null],
    ['access_token type', { token_type: 'access_token' }, null],
    ['refresh token', { token_type: 'refresh_token' }, /token type/],
    ['DPoP token', { token_type: 'DPoP' }, /token type/],
    ['sender-constrained (cnf)', { cnf: { 'x5t#S256': 'abc' } }, /sender-constrained/],
    ['expired', { exp: -120 }, /expired/],
    ['expired within clock skew', { exp: -10 }, null],
    ['not yet valid', { nbf: 120 }, /not yet valid/],
    ['exp not a number', { exp: 'soon' }, /exp/],
  ];
  for (const [name, fields, refusal] of cases) {
    test(name, async () => {
      reset();
      const answer: Record<string, unknown> = { active: true, sub: 'dave', ...fields };
      if (answer.iss === '<issuer>') answer.iss = endpoint.origin;
      for (const claim of ['exp', 'nbf'])
        if (typeof answer[claim] === 'number') answer[claim] = nowSeconds() + (answer[claim] as number);
      endpoint.answers.set('tok', answer);
      const result = await check(introspector({}, { audiences: ['orders'] }), 'tok');
      if (refusal === null) assert.equal(result.ok, true, JSON.stringify(result));
      else assertRefused(result, refusal);
    });
  }

  test('inactive → refused', async () => {
    reset();
    assertRefused(await check(introspector(), 'unknown'), /not active/);
  });
});

describe('introspector: cache and coalescing', () => {
  test('an answer is reused synchronously until cacheTtl', async () => {
    reset();
    endpoint.answers.set('tok', { active: true, sub: 'erin' });
    const i = introspector({ cacheTtl: '60s' });
    assert.equal((await check(i, 'tok')).ok, true);
    const again = i.introspect('tok');
    assert.ok(!(again instanceof Promise), 'a cache hit is synchronous');
    assert.equal(again.ok, true);
    clock.now += 59_000;
    assert.ok(!(i.introspect('tok') instanceof Promise));
    assert.equal(endpoint.introspections(), 1);
    clock.now += 2_000;
    assert.equal((await check(i, 'tok')).ok, true);
    assert.equal(endpoint.introspections(), 2);
  });

  test('never past the token’s exp', async () => {
    reset();
    endpoint.answers.set('tok', { active: true, sub: 'frank', exp: nowSeconds() + 5 });
    const i = introspector({ cacheTtl: '60s' }, { clockSkew: '0s' });
    assert.equal((await check(i, 'tok')).ok, true);
    clock.now += 6_000;
    const result = await check(i, 'tok'); // asked again; the same answer is now expired
    assertRefused(result, /expired/);
    assert.equal(endpoint.introspections(), 2);
  });

  test('inactive answers are kept at most 10s (or cacheTtl when shorter)', async () => {
    reset();
    const i = introspector({ cacheTtl: '60s' });
    assertRefused(await check(i, 'bad'), /not active/);
    clock.now += 9_000;
    assertRefused(await check(i, 'bad'), /not active/);
    assert.equal(endpoint.introspections(), 1);
    clock.now += 2_000;
    await check(i, 'bad');
    assert.equal(endpoint.introspections(), 2);

    const short = introspector({ cacheTtl: '2s' });
    await check(short, 'bad');
    clock.now += 2_500;
    await check(short, 'bad');
    assert.equal(endpoint.introspections(), 4);
  });

  test('an outage is not remembered', async () => {
    reset();
    let down = true;
    endpoint.behaviour = (_call, res) => {
      if (down) res.writeHead(503).end();
      else answerJson(res, 200, { active: true, sub: 'gina' });
    };
    const i = introspector();
    assertUnavailable(await check(i, 'tok'), /503/);
    down = false;
    assert.equal((await check(i, 'tok')).ok, true);
    assert.equal(endpoint.introspections(), 2);
  });

  test('concurrent lookups of one token share one call; other tokens do not', async () => {
    reset();
    const waiting: ServerResponse[] = [];
    endpoint.behaviour = (call, res) => {
      waiting.push(res);
      if (call.form.get('token') === 'other') answerJson(res, 200, { active: true, sub: 'other' });
    };
    const i = introspector({ timeout: '60s' });
    const lookups = Array.from({ length: 20 }, () => i.introspect('same'));
    const other = i.introspect('other');
    for (let n = 0; n < 1000 && waiting.length < 2; n++) await sleep(10);
    assert.equal(endpoint.introspections(), 2);
    for (const res of waiting) if (!res.writableEnded) answerJson(res, 200, { active: true, sub: 'hal' });
    const results = await Promise.all(lookups);
    assert.ok(results.every((r) => r.ok && r.claims.sub === 'hal'));
    assert.equal((await other).ok, true);
    assert.equal(endpoint.introspections(), 2);
  });

  test('bounded: the least recently used answer is dropped', async () => {
    reset();
    for (const t of ['t1', 't2', 't3']) endpoint.answers.set(t, { active: true, sub: t });
    const i = introspector({ cacheMaxEntries: 2 });
    for (const t of ['t1', 't2', 't3']) await check(i, t);
    assert.ok(!(i.introspect('t3') instanceof Promise));
    assert.ok(!(i.introspect('t2') instanceof Promise));
    assert.ok(i.introspect('t1') instanceof Promise, 't1 was dropped');
  });

  test('after close every answer is unavailable', async () => {
    reset();
    endpoint.answers.set('tok', { active: true, sub: 'ivy' });
    const i = introspector();
    assert.equal((await check(i, 'tok')).ok, true);
    i.close();
    assertUnavailable(await check(i, 'tok'), /closed/);
  });
});

describe('introspector: settings', () => {
  test('a missing secret fails creation when starting, naming the variable; not offline', () => {
    for (const env of [{}, { IDP_SECRET: '' }]) {
      assert.throws(
        () => introspector({}, {}, { env }),
        (err: Error) => err instanceof TypeError && /IDP_SECRET/.test(err.message),
      );
    }
    assert.doesNotThrow(() => introspector({}, {}, { env: {}, start: false }));
  });

  test('endpoint discovered from the issuer on first use, once', async () => {
    reset();
    endpoint.discovery = { issuer: endpoint.origin, introspection_endpoint: `${endpoint.origin}/introspect` };
    endpoint.answers.set('a', { active: true, sub: 'a' });
    endpoint.answers.set('b', { active: true, sub: 'b' });
    const i = introspector({ endpoint: undefined });
    assert.equal(endpoint.calls.length, 0, 'nothing is fetched at creation');
    assert.equal((await check(i, 'a')).ok, true);
    assert.equal((await check(i, 'b')).ok, true);
    assert.deepEqual(
      endpoint.calls.map((c) => c.path),
      ['/.well-known/openid-configuration', '/introspect', '/introspect'],
    );
  });

  test('discovery failures are unavailable and tried again', async () => {
    reset();
    endpoint.answers.set('a', { active: true, sub: 'a' });
    const i = introspector({ endpoint: undefined });
    assertUnavailable(await check(i, 'a'), /HTTP 404/);
    endpoint.discovery = {
      issuer: 'https://other.test',
      introspection_endpoint: `${endpoint.origin}/introspect`,
    };
    assertUnavailable(await check(i, 'a'), /another issuer/);
    endpoint.discovery = { issuer: endpoint.origin };
    assertUnavailable(await check(i, 'a'), /introspection_endpoint/);
    endpoint.discovery = { issuer: endpoint.origin, introspection_endpoint: `${endpoint.origin}/introspect` };
    assert.equal((await check(i, 'a')).ok, true);
  });

  test('discovery needs an http(s) issuer', () => {
    assert.throws(
      () => introspector({ endpoint: undefined }, { issuer: 'corp' }),
      (err: Error) => err instanceof TypeError && /not an http\(s\) URL/.test(err.message),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// A real gateway process in front of the real OpenID provider.
// ---------------------------------------------------------------------------------------------

describe('introspection through the gateway (oidc-provider)', () => {
  const secretVar = 'GATEHOUSE_TEST_INTROSPECTION_SECRET';
  const withJwt = 'jwt' in policyFactories;
  let idp: TestIdp;
  let upstream: EchoUpstream;
  let gateway: RunningProcess;
  let port: number;
  let configDir: string;
  const tokensSeen: string[] = [];

  before(async () => {
    idp = await startTestIdp();
    upstream = await startEchoUpstream();
    port = await freePort();
    configDir = tempConfigDir();
    writeConfig(
      configDir,
      'gateway.yaml',
      `
apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, address: 127.0.0.1, port: ${port} }]
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: echo }
spec: { targets: [{ url: ${upstream.url} }] }
---
apiVersion: gatehouse.dev/v1
kind: IdentityProvider
metadata: { name: corp }
spec:
  issuer: ${idp.issuer}
  audiences: [${idp.jwtResource}]
  introspection: { clientId: ${idp.clients.gateway.id}, clientSecret: { env: ${secretVar} } }
---
apiVersion: gatehouse.dev/v1
kind: IdentityProvider
metadata: { name: short }
spec:
  issuer: ${idp.issuer}
  introspection:
    endpoint: ${idp.issuer}/token/introspection
    clientId: ${idp.clients.gateway.id}
    clientSecret: { env: ${secretVar} }
    authMethod: client_secret_post
    cacheTtl: 200ms
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: shop }
spec:
  gateway: edge
  upstream: echo
  rules:
    - { path: /orders, authenticate: [{ introspection: { provider: corp } }] }
    - { path: /short, authenticate: [{ introspection: { provider: short } }] }
    - path: /query
      authenticate: [{ introspection: { provider: corp, from: { query: access_token } } }]
${withJwt ? '    - { path: /mixed, authenticate: [{ jwt: { provider: corp } }, { introspection: { provider: corp } }] }' : ''}
`,
    );
    gateway = await startGateway([configDir], ['--no-watch'], { [secretVar]: idp.clients.gateway.secret });
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
    await idp?.close();
  });

  const introspections = () => idp.hits.get('/token/introspection') ?? 0;

  async function opaque(scope = 'read orders.read') {
    const token = await idp.token({ jwt: false, scope });
    tokensSeen.push(token);
    return token;
  }

  function get(path: string, token?: string) {
    return httpRequest(port, path, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  }

  test('an opaque token is accepted', async () => {
    const res = await get('/orders', await opaque());
    assert.equal(res.status, 200, res.body);
  });

  test('a token in the query string, where configured', async () => {
    const token = await opaque();
    assert.equal((await httpRequest(port, `/query?access_token=${token}`)).status, 200);
  });

  test('an unknown token → 401 invalid_token with WWW-Authenticate', async () => {
    const res = await get('/orders', 'garbage-token-that-was-never-issued');
    assert.equal(res.status, 401);
    assert.equal(res.json().code, 'invalid_token');
    assert.equal(res.headers['www-authenticate'], 'Bearer error="invalid_token"');
  });

  test('no token → 401 unauthenticated', async () => {
    const res = await get('/orders');
    assert.equal(res.status, 401);
    assert.equal(res.json().code, 'unauthenticated');
  });

  test('a JWT is not introspected: the method steps aside', async () => {
    const jwt = await idp.token({ jwt: true });
    tokensSeen.push(jwt);
    const before = introspections();
    const res = await get('/orders', jwt);
    assert.equal(res.status, 401);
    assert.equal(res.json().code, 'unauthenticated');
    assert.equal(introspections(), before);
  });

  test('with a jwt method first, JWTs and opaque tokens are both accepted', { skip: !withJwt }, async () => {
    const jwt = await idp.token({ jwt: true });
    tokensSeen.push(jwt);
    assert.equal((await get('/mixed', jwt)).status, 200);
    assert.equal((await get('/mixed', await opaque())).status, 200);
  });

  test('sequential requests with one token → one introspection', async () => {
    const token = await opaque();
    const before = introspections();
    for (let i = 0; i < 5; i++) assert.equal((await get('/orders', token)).status, 200);
    assert.equal(introspections() - before, 1);
  });

  test('20 concurrent requests with a fresh token → one introspection', async () => {
    const token = await opaque();
    const before = introspections();
    const responses = await Promise.all(Array.from({ length: 20 }, () => get('/orders', token)));
    assert.deepEqual(
      responses.map((r) => r.status),
      Array(20).fill(200),
    );
    assert.equal(introspections() - before, 1);
  });

  test('a revoked token is refused once its cache entry is gone', async () => {
    const token = await opaque();
    assert.equal((await get('/short', token)).status, 200);
    const revoked = await fetch(`${idp.issuer}/token/revocation`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${idp.clients.app.id}:${idp.clients.app.secret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
    });
    assert.equal(revoked.status, 200);
    let status = 0;
    for (let attempt = 0; attempt < 100 && status !== 401; attempt++) {
      await sleep(100); // cacheTtl is 200ms
      status = (await get('/short', token)).status;
    }
    assert.equal(status, 401);
  });

  test('provider down: an uncached token → 503, a cached one still passes', async () => {
    const cached = await opaque();
    assert.equal((await get('/orders', cached)).status, 200);
    const fresh = await opaque();
    idp.setDown(true);
    try {
      const res = await get('/orders', fresh);
      assert.equal(res.status, 503);
      assert.equal(res.json().code, 'identity_provider_unavailable');
      assert.equal((await get('/orders', cached)).status, 200);
    } finally {
      idp.setDown(false);
    }
    assert.equal((await get('/orders', fresh)).status, 200, 'answers again once the provider is back');
  });

  test('tokens never reach the logs', () => {
    const logs = gateway.stdout() + gateway.stderr();
    for (const token of tokensSeen) assert.ok(!logs.includes(token));
  });

  test('the gateway does not start without the secret; validate does not need it', async () => {
    const proc = runCli(['gateway', '--config', configDir, '--no-watch']);
    const { code } = await proc.exited;
    assert.notEqual(code, 0);
    assert.match(proc.stderr(), new RegExp(`gateway\\.yaml:\\d+:\\d+: .*${secretVar}.* is not set`));
    const validate = runCli(['validate', configDir]);
    const result = await validate.exited;
    assert.equal(result.code, 0, validate.stderr());
  });
});
