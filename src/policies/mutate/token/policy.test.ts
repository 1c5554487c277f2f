import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import Value from 'typebox/value';
import { type FakeRequest, fakeContext } from '../../../../test/helpers/fake-context.ts';
import { TokensSpec } from '../../../config/schemas/gateway.ts';
import type { Identity, RequestContext } from '../../../gateway/context.ts';
import type { TokenIssuer } from '../../../identity/token-issuer.ts';
import { TokenIssuerRegistry } from '../../../identity/token-issuers.ts';
import type { CompiledPolicy, PolicyDeps } from '../../types.ts';
import { type TokenConfig, token } from './policy.ts';

let now = Date.parse('2030-01-01T00:00:00Z');
const registry = new TokenIssuerRegistry({ now: () => now, start: false, log: () => {} });
after(() => registry.closeAll());

function issuerWith(tokens: Record<string, unknown> = {}): TokenIssuer {
  const spec = Value.Default(TokensSpec, structuredClone(tokens)) as TokensSpec;
  return registry.resolve({ gatewayName: 'edge', spec, resolvePath: (p) => p });
}
const issuer = issuerWith();

function compile(config: Partial<TokenConfig>, tokenIssuer: TokenIssuer | null = issuer): CompiledPolicy {
  const deps = { tokenIssuer: () => tokenIssuer } as Pick<PolicyDeps, 'tokenIssuer'> as PolicyDeps;
  return token.compile(Value.Default(token.schema, structuredClone(config)) as TokenConfig, deps);
}

async function run(
  policy: CompiledPolicy,
  request: FakeRequest,
): Promise<{ ctx: RequestContext; sync: boolean }> {
  const ctx = fakeContext(request);
  const verdict = policy.handle(ctx);
  const sync = !(verdict instanceof Promise);
  assert.deepEqual(await verdict, { kind: 'continue' });
  return { ctx, sync };
}

async function verify(jwt: string, audience = 'orders') {
  // Current time for jose: the test clock.
  return jwtVerify(jwt, createLocalJWKSet(JSON.parse(issuer.jwks())), {
    issuer: 'gatehouse://edge',
    audience,
    currentDate: new Date(now),
  });
}

const alice: Identity = {
  method: 'jwt',
  subject: 'alice',
  claims: { sub: 'alice', tenant: 'acme', scope: 'orders.read', azp: 'web-app', secret: 'not copied' },
};

describe('mutate.token', () => {
  test('mints a signed token with iss, sub, aud, iat, exp, jti and the chosen claims', async () => {
    const policy = compile({ audience: 'orders', claims: ['tenant', 'scope', 'missing'] });
    const { ctx } = await run(policy, { identity: alice, headers: { authorization: 'Bearer client-token' } });
    const value = ctx.upstreamHeaders?.get('authorization');
    assert.match(value ?? '', /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    const jwt = value!.slice('Bearer '.length);
    assert.equal(ctx.internalToken, jwt);
    const { payload, protectedHeader } = await verify(jwt);
    assert.equal(protectedHeader.alg, 'ES256');
    assert.equal(protectedHeader.typ, 'JWT');
    assert.equal(payload.sub, 'alice');
    assert.equal(payload.iat, now / 1000);
    assert.equal(payload.exp, now / 1000 + 60);
    assert.equal(typeof payload.jti, 'string');
    assert.equal(payload.tenant, 'acme');
    assert.equal(payload.scope, 'orders.read');
    assert.equal(payload.client_id, 'web-app');
    assert.equal('missing' in payload, false);
    assert.equal('secret' in payload, false);
  });

  test('the same caller and claims get the cached token synchronously until shortly before it expires', async () => {
    const policy = compile({ audience: 'orders', claims: ['tenant'], lifetime: '60s' });
    const first = await run(policy, { identity: alice });
    assert.equal(first.sync, false, 'a miss signs');
    const second = await run(policy, { identity: alice });
    assert.equal(second.sync, true, 'a hit answers without a promise');
    assert.equal(second.ctx.internalToken, first.ctx.internalToken);

    const other = await run(policy, {
      identity: { ...alice, claims: { ...alice.claims, tenant: 'globex' } },
    });
    assert.notEqual(other.ctx.internalToken, first.ctx.internalToken, 'other claim values, other token');

    now += 29_000;
    assert.equal((await run(policy, { identity: alice })).ctx.internalToken, first.ctx.internalToken);
    now += 2_000; // within 30s of exp: a new one
    const renewed = await run(policy, { identity: alice });
    assert.notEqual(renewed.ctx.internalToken, first.ctx.internalToken);
    assert.equal((await verify(renewed.ctx.internalToken!)).payload.iat, now / 1000);
  });

  test('concurrent misses sign once', async () => {
    const policy = compile({ audience: 'coalesce' });
    const a = fakeContext({ identity: alice });
    const b = fakeContext({ identity: alice });
    const va = policy.handle(a);
    const vb = policy.handle(b);
    assert.ok(va instanceof Promise && vb instanceof Promise);
    await Promise.all([va, vb]);
    assert.equal(a.internalToken, b.internalToken);
  });

  test('another header carries the bare token, and the client Authorization is still not forwarded', async () => {
    const policy = compile({ audience: 'orders', header: 'X-Internal-Token' });
    const { ctx } = await run(policy, { identity: alice, headers: { authorization: 'Bearer client-token' } });
    assert.equal(ctx.upstreamHeaders?.get('x-internal-token'), ctx.internalToken);
    assert.equal(ctx.upstreamHeaders?.get('authorization'), null);
  });

  test('API key consumers: sub is the consumer, claims come from its metadata', async () => {
    const policy = compile({ audience: 'orders', claims: ['tenant'] });
    const consumer = { name: 'partner-a', groups: [], metadata: { tenant: 'globex' } };
    const { ctx } = await run(policy, { identity: { method: 'apiKey', subject: 'partner-a', consumer } });
    const { payload } = await verify(ctx.internalToken!);
    assert.equal(payload.sub, 'partner-a');
    assert.equal(payload.consumer, 'partner-a');
    assert.equal(payload.tenant, 'globex');
  });

  test('anonymous callers get a token without sub', async () => {
    const policy = compile({ audience: 'public' });
    const { ctx } = await run(policy, { identity: { method: 'noAuth', subject: null } });
    const { payload } = await verify(ctx.internalToken!, 'public');
    assert.equal('sub' in payload, false);
  });

  test('config that cannot work is a compile error', () => {
    assert.throws(
      () => compile({ audience: 'orders', lifetime: '2h' }),
      /longer than the signing-key overlap/,
    );
    assert.throws(() => compile({ audience: 'orders', lifetime: '1500ms' }), /whole seconds/);
    assert.throws(
      () => compile({ audience: 'orders', claims: ['sub', 'exp'] }),
      /claims sub, exp are set by the gateway/,
    );
    assert.throws(() => compile({ audience: 'orders', header: 'Host' }), /set by the gateway/);
    assert.throws(() => compile({ audience: 'orders' }, null), /spec.tokens has errors/);
  });
});
