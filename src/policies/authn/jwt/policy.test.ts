import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Value from 'typebox/value';
import { fakeContext } from '../../../../test/helpers/fake-context.ts';
import { startKeyServer, type TestKeyServer } from '../../../../test/helpers/jwks.ts';
import { IdentityProviderSpec } from '../../../config/schemas/identity-provider.ts';
import type { RequestContext } from '../../../gateway/context.ts';
import { ProviderRegistry } from '../../../identity/providers.ts';
import type { ProviderRuntime } from '../../../identity/types.ts';
import type { CompiledPolicy, PolicyDeps, Verdict } from '../../types.ts';
import { type JwtConfig, jwt } from './policy.ts';

let server: TestKeyServer;
const providers = new ProviderRegistry({ now: Date.now, start: true, env: {}, log: () => {} });

before(async () => {
  server = await startKeyServer();
});

after(async () => {
  providers.closeAll();
  await server.close();
});

function runtime(spec: Record<string, unknown> = {}): ProviderRuntime {
  const full = Value.Default(IdentityProviderSpec, {
    issuer: server.issuer,
    jwksUri: server.jwksUri,
    audiences: ['api', 'admin'],
    ...spec,
  }) as IdentityProviderSpec;
  return providers.resolve('default/corp', full);
}

// The jwt method uses only `namespace` and `provider` of its deps.
function deps(provider: ProviderRuntime | undefined): PolicyDeps {
  const used: Pick<PolicyDeps, 'now' | 'namespace' | 'provider'> = {
    now: Date.now,
    namespace: 'default',
    provider: (name) => (name === 'corp' ? provider : undefined),
  };
  return used as PolicyDeps;
}

async function compiled(
  config: Partial<JwtConfig> = {},
  spec: Record<string, unknown> = {},
): Promise<CompiledPolicy> {
  const provider = runtime(spec);
  const policy = jwt.compile({ provider: 'corp', ...config }, deps(provider));
  for (let i = 0; i < 200 && !provider.jwt.ready(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(provider.jwt.ready(), 'keys loaded');
  return policy;
}

const sign = (claims: Record<string, unknown> = {}) => server.sign({ aud: 'api', sub: 'alice', ...claims });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function run(policy: CompiledPolicy, ctx: RequestContext): Promise<Verdict> {
  return policy.handle(ctx);
}

describe('jwt policy', () => {
  test('compiling checks the provider and the audiences', () => {
    assert.throws(
      () => jwt.compile({ provider: 'nope' }, deps(undefined)),
      (err: Error) =>
        err instanceof TypeError && /no IdentityProvider named nope in namespace default/.test(err.message),
    );
    assert.throws(
      () => jwt.compile({ provider: 'corp', audiences: ['api', 'other'] }, deps(runtime())),
      /audiences other not among those of IdentityProvider corp \(api, admin\)/,
    );
    const noAudiences = runtime({ audiences: [] });
    assert.throws(() => jwt.compile({ provider: 'corp' }, deps(noAudiences)), /lists no audiences/);
    jwt.compile({ provider: 'corp', audiences: ['anything'] }, deps(noAudiences));
  });

  test('a valid bearer JWT sets the identity, with scopes; a repeat is answered synchronously', async () => {
    const policy = await compiled();
    const token = await sign({ scope: 'read orders.read' });
    const ctx = fakeContext({ headers: bearer(token) });
    assert.equal((await run(policy, ctx)).kind, 'continue');
    assert.equal(ctx.identity?.method, 'jwt');
    assert.equal(ctx.identity?.subject, 'alice');
    assert.equal(ctx.identity?.provider, 'default/corp');
    assert.equal(ctx.identity?.claims?.aud, 'api');
    assert.deepEqual([...(ctx.identity?.scopes ?? [])], ['read', 'orders.read']);
    const again = fakeContext({ headers: bearer(token) });
    const verdict = policy.handle(again);
    assert.ok(!(verdict instanceof Promise));
    assert.equal(verdict.kind, 'continue');
    assert.equal(again.identity?.scopes, ctx.identity?.scopes, 'worked out once per cached token');
    const noSub = fakeContext({ headers: bearer(await sign({ sub: undefined })) });
    await run(policy, noSub);
    assert.equal(noSub.identity?.subject, null);
  });

  test('steps aside when there is no token of its kind', async () => {
    const policy = await compiled();
    for (const headers of [
      {},
      { authorization: 'Basic YTpi' },
      bearer('opaque-token-value'),
      bearer('a.b'),
    ]) {
      assert.equal((await run(policy, fakeContext({ headers }))).kind, 'skip', JSON.stringify(headers));
    }
  });

  test('a bad token is a 401 with an RFC 6750 challenge; no fallthrough', async () => {
    const policy = await compiled();
    const expired = await sign({ exp: Math.floor(Date.now() / 1000) - 3600 });
    const verdict = await run(policy, fakeContext({ headers: bearer(expired) }));
    assert.deepEqual(verdict, {
      kind: 'respond',
      code: 'invalid_token',
      detail: 'token expired',
      headers: { 'www-authenticate': 'Bearer error="invalid_token", error_description="token expired"' },
    });
    for (const headers of [
      { authorization: 'Bearer ' },
      { authorization: 'Bearer a b' },
      bearer(`${expired.split('.').slice(0, 2).join('.')}.`),
    ]) {
      const v = await run(policy, fakeContext({ headers }));
      assert.equal(v.kind === 'respond' && v.code, 'invalid_token', JSON.stringify(headers));
    }
  });

  test('a policy may narrow the provider’s audiences', async () => {
    const policy = await compiled({ audiences: ['admin'] });
    const v = await run(policy, fakeContext({ headers: bearer(await sign()) }));
    assert.equal(v.kind === 'respond' && v.detail, 'audience not accepted');
    assert.equal(
      (await run(policy, fakeContext({ headers: bearer(await sign({ aud: ['api', 'admin'] })) }))).kind,
      'continue',
    );
  });

  test('reads the token from a named header, cookie or query parameter', async () => {
    const token = await sign();
    const header = await compiled({ from: { header: 'X-Token' } });
    assert.equal((await run(header, fakeContext({ headers: { 'x-token': token } }))).kind, 'continue');
    assert.equal((await run(header, fakeContext({ headers: bearer(token) }))).kind, 'skip');
    const cookie = await compiled({ from: { cookie: 'tok' } });
    assert.equal(
      (await run(cookie, fakeContext({ headers: { cookie: `a=b; tok=${token}` } }))).kind,
      'continue',
    );
    const twice = await run(cookie, fakeContext({ headers: { cookie: `tok=${token}; tok=${token}` } }));
    assert.equal(twice.kind === 'respond' && twice.code, 'invalid_token', 'a repeated cookie is ambiguous');
    const query = await compiled({ from: { query: 'access_token' } });
    assert.equal((await run(query, fakeContext({ query: `x=1&access_token=${token}` }))).kind, 'continue');
    assert.equal((await run(query, fakeContext({ query: 'x=1' }))).kind, 'skip');
  });

  test('keys not available: 503 identity_provider_unavailable', async () => {
    server.mode = 'down';
    try {
      const provider = runtime({ keySet: { timeout: '2s' } });
      const policy = jwt.compile({ provider: 'corp' }, deps(provider));
      const v = await run(policy, fakeContext({ headers: bearer(await sign()) }));
      assert.equal(v.kind === 'respond' && v.code, 'identity_provider_unavailable');
    } finally {
      server.mode = 'ok';
    }
  });
});
