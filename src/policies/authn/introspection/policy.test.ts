import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import Value from 'typebox/value';
import { IdentityProviderSpec } from '../../../config/schemas/identity-provider.ts';
import type { RequestContext } from '../../../gateway/context.ts';
import { ProviderRegistry } from '../../../identity/providers.ts';
import type { ProviderRuntime } from '../../../identity/types.ts';
import type { CompiledPolicy, PolicyDeps, Verdict } from '../../types.ts';
import { type IntrospectionConfig, introspection } from './policy.ts';

// A real RFC 7662 endpoint on loopback: `active-*` tokens are active, `down-*` get 503, others inactive.
let server: Server;
let hits = 0;
const providers = new ProviderRegistry({
  now: Date.now,
  start: true,
  env: { SECRET: 's3cret' },
  log: () => {},
});

before(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      hits++;
      const token = new URLSearchParams(body).get('token') ?? '';
      if (token.startsWith('down-')) {
        res.writeHead(503).end();
        return;
      }
      const answer = token.startsWith('active-')
        ? { active: true, sub: 'alice', client_id: 'app', scope: 'read orders.read', token_type: 'Bearer' }
        : token.startsWith('client-')
          ? { active: true, client_id: 'app' }
          : { active: false };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});

after(() => {
  providers.closeAll();
  server.closeAllConnections();
  server.close();
});

function runtime(withIntrospection = true): ProviderRuntime {
  const port = (server.address() as AddressInfo).port;
  const spec = Value.Default(IdentityProviderSpec, {
    issuer: 'https://idp.test',
    ...(withIntrospection
      ? {
          introspection: {
            endpoint: `http://127.0.0.1:${port}/introspect`,
            clientId: 'gw',
            clientSecret: { env: 'SECRET' },
          },
        }
      : {}),
  }) as IdentityProviderSpec;
  return providers.resolve('default/corp', spec);
}

// The introspection method uses only `namespace` and `provider` of its deps.
function deps(provider: ProviderRuntime | undefined): PolicyDeps {
  const used: Pick<PolicyDeps, 'now' | 'namespace' | 'provider'> = {
    now: Date.now,
    namespace: 'default',
    provider: (name) => (name === 'corp' ? provider : undefined),
  };
  return used as PolicyDeps;
}

function compile(config: Partial<IntrospectionConfig> = {}): CompiledPolicy {
  return introspection.compile({ provider: 'corp', ...config }, deps(runtime()));
}

function ctx(headers: Record<string, string> = {}, query = ''): RequestContext {
  return { headers, query, identity: null } as unknown as RequestContext;
}

async function verdict(policy: CompiledPolicy, c: RequestContext): Promise<Verdict> {
  return await policy.handle(c);
}

describe('introspection policy', () => {
  test('steps aside when no bearer token is sent', async () => {
    const policy = compile();
    assert.equal((await verdict(policy, ctx())).kind, 'skip');
    assert.equal((await verdict(policy, ctx({ authorization: 'Basic YTpi' }))).kind, 'skip');
  });

  test('steps aside for a JWT without calling the provider', async () => {
    const policy = compile();
    const header = Buffer.from(JSON.stringify({ alg: 'ES256', kid: 'k' })).toString('base64url');
    const payload = Buffer.from(JSON.stringify({ sub: 'x' })).toString('base64url');
    const before = hits;
    const v = await verdict(policy, ctx({ authorization: `Bearer ${header}.${payload}.c2ln` }));
    assert.equal(v.kind, 'skip');
    assert.equal(hits, before);
  });

  test('a dotted token that is not a JWT is introspected', async () => {
    const policy = compile();
    const before = hits;
    const v = await verdict(policy, ctx({ authorization: 'Bearer not.a.jwt' }));
    assert.equal(v.kind, 'respond');
    assert.equal(hits, before + 1);
  });

  test('malformed bearer token → 401 invalid_token without a call', async () => {
    const policy = compile();
    const before = hits;
    for (const authorization of ['Bearer', 'Bearer a b', 'Bearer tok,en', 'bearer ä']) {
      const v = await verdict(policy, ctx({ authorization }));
      assert.equal(v.kind, 'respond', authorization);
      if (v.kind !== 'respond') continue;
      assert.equal(v.code, 'invalid_token');
      assert.equal(v.headers?.['www-authenticate'], 'Bearer error="invalid_token"');
    }
    assert.equal(hits, before);
  });

  test('active token → identity; a second request is answered synchronously from the cache', async () => {
    const policy = compile();
    const first = ctx({ authorization: 'Bearer active-1' });
    const pending = policy.handle(first);
    assert.ok(pending instanceof Promise, 'a cache miss waits for the provider');
    assert.equal((await pending).kind, 'continue');
    assert.equal(first.identity?.method, 'introspection');
    assert.equal(first.identity?.subject, 'alice');
    assert.equal(first.identity?.provider, 'default/corp');
    assert.deepEqual([...(first.identity?.scopes ?? [])].sort(), ['orders.read', 'read']);
    assert.equal(first.identity?.claims?.client_id, 'app');

    const second = ctx({ authorization: 'bearer active-1' });
    const cached = policy.handle(second);
    assert.ok(!(cached instanceof Promise), 'a cache hit is synchronous');
    assert.equal(cached.kind, 'continue');
    assert.equal(second.identity?.subject, 'alice');
    assert.equal(second.identity?.scopes, first.identity?.scopes, 'scopes worked out once per answer');
  });

  test('subject falls back to client_id', async () => {
    const policy = compile();
    const c = ctx({ authorization: 'Bearer client-1' });
    assert.equal((await verdict(policy, c)).kind, 'continue');
    assert.equal(c.identity?.subject, 'app');
    assert.equal(c.identity?.scopes?.size, 0);
  });

  test('inactive token → 401 invalid_token with WWW-Authenticate', async () => {
    const v = await verdict(compile(), ctx({ authorization: 'Bearer nope' }));
    assert.equal(v.kind, 'respond');
    if (v.kind !== 'respond') return;
    assert.equal(v.code, 'invalid_token');
    assert.equal(v.headers?.['www-authenticate'], 'Bearer error="invalid_token"');
    assert.ok(!v.detail?.includes('nope'), 'the token never appears in the answer');
  });

  test('provider failure → 503 identity_provider_unavailable', async () => {
    const v = await verdict(compile(), ctx({ authorization: 'Bearer down-1' }));
    assert.equal(v.kind, 'respond');
    if (v.kind === 'respond') assert.equal(v.code, 'identity_provider_unavailable');
  });

  test('token from a header, a cookie or a query parameter', async () => {
    const byHeader = compile({ from: { header: 'X-Token' } });
    assert.equal((await verdict(byHeader, ctx({ 'x-token': 'active-h' }))).kind, 'continue');
    assert.equal((await verdict(byHeader, ctx({ authorization: 'Bearer active-h' }))).kind, 'skip');

    const byCookie = compile({ from: { cookie: 'at' } });
    assert.equal((await verdict(byCookie, ctx({ cookie: 'a=1; at=active-c; b=2' }))).kind, 'continue');
    assert.equal((await verdict(byCookie, ctx({ cookie: 'a=1' }))).kind, 'skip');
    const twice = await verdict(byCookie, ctx({ cookie: 'at=active-c; at=active-d' }));
    assert.equal(twice.kind === 'respond' && twice.code, 'invalid_token', 'a repeated cookie is ambiguous');

    const byQuery = compile({ from: { query: 'access_token' } });
    assert.equal((await verdict(byQuery, ctx({}, 'x=1&access_token=active-q'))).kind, 'continue');
    assert.equal((await verdict(byQuery, ctx({}, 'x=1'))).kind, 'skip');
    const repeated = await verdict(byQuery, ctx({}, 'access_token=active-q&access_token=active-r'));
    assert.equal(repeated.kind === 'respond' && repeated.code, 'invalid_token');

    const authorization = compile({ from: { header: 'Authorization' } });
    assert.equal((await verdict(authorization, ctx({ authorization: 'Bearer active-a' }))).kind, 'continue');
  });

  test('compile errors: unknown provider, provider without introspection', () => {
    assert.throws(
      () => introspection.compile({ provider: 'corp' }, deps(undefined)),
      (err: Error) => err instanceof TypeError && /no IdentityProvider named corp/.test(err.message),
    );
    assert.throws(
      () => introspection.compile({ provider: 'corp' }, deps(runtime(false))),
      (err: Error) => err instanceof TypeError && /has no introspection settings/.test(err.message),
    );
  });
});
