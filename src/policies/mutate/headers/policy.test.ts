import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type FakeRequest, fakeCertificate, fakeContext } from '../../../../test/helpers/fake-context.ts';
import type { RequestContext } from '../../../gateway/context.ts';
import type { PolicyDeps } from '../../types.ts';
import { type HeadersConfig, headers } from './policy.ts';

const noDeps = {} as PolicyDeps;

/** Runs the policy on a context and returns what it recorded for upstream. */
function run(config: HeadersConfig, request: FakeRequest = {}, edit?: (ctx: RequestContext) => void) {
  const policy = headers.compile(config, noDeps);
  const ctx = fakeContext(request);
  edit?.(ctx);
  const verdict = policy.handle(ctx);
  assert.deepEqual(verdict, { kind: 'continue' }, 'headers answers synchronously and always continues');
  return Object.fromEntries(ctx.upstreamHeaders ?? []);
}

const user = {
  method: 'jwt',
  subject: 'user-1',
  provider: 'default/corp',
  claims: { tenant: 'acme', roles: ['admin', 'dev'], address: { country: 'FR' }, n: 42, empty: '' },
  scopes: new Set(['orders.read', 'orders.write']),
};

describe('mutate.headers', () => {
  test('identity, claims and literals become upstream headers', () => {
    const set = run(
      {
        'X-User-Id': '{{ identity.sub }}',
        'X-Scopes': '{{identity.scopes}}',
        'X-Tenant': '{{ claims.tenant }}',
        'X-Roles': '{{ claims.roles }}',
        'X-Address': '{{ claims.address }}',
        'X-N': 'n={{ claims.n }}',
        'X-Static': 'literal',
        'X-Via': '{{ identity.method }}@{{ identity.provider }}',
      },
      { identity: user },
    );
    assert.deepEqual(set, {
      'x-user-id': 'user-1',
      'x-scopes': 'orders.read orders.write',
      'x-tenant': 'acme',
      'x-roles': 'admin,dev',
      'x-address': '{"country":"FR"}',
      'x-n': 'n=42',
      'x-static': 'literal',
      'x-via': 'jwt@default/corp',
    });
  });

  test('consumer, certificate, request and token variables', () => {
    const consumer = { name: 'partner-a', groups: ['partners', 'beta'], metadata: { tenant: 'globex' } };
    const set = run(
      {
        'X-Consumer': '{{ consumer.name }}',
        'X-Groups': '{{ consumer.groups }}',
        'X-Tenant': '{{ claims.tenant }}',
        'X-Plan': '{{ consumer.metadata.tenant }}',
        'X-Client-Cert': '{{ certificate.spiffeId }}',
        'X-Order': '{{ params.id }}',
        'X-Route': '{{ request.method }} {{ request.path }}',
        'X-Internal': '{{ token }}',
      },
      {
        identity: { method: 'apiKey', subject: 'partner-a', consumer },
        peerCertificate: fakeCertificate({ spiffeId: 'spiffe://corp/ns/shop/sa/web' }),
        params: { id: '42' },
        method: 'POST',
        path: '/orders/42',
      },
      (ctx) => {
        ctx.internalToken = 'minted.jwt.value';
      },
    );
    assert.deepEqual(set, {
      'x-consumer': 'partner-a',
      'x-groups': 'partners,beta',
      'x-tenant': 'globex',
      'x-plan': 'globex',
      'x-client-cert': 'spiffe://corp/ns/shop/sa/web',
      'x-order': '42',
      'x-route': 'POST /orders/42',
      'x-internal': 'minted.jwt.value',
    });
  });

  test('a value that resolves to nothing removes the client copy and sets nothing', () => {
    const set = run(
      {
        'X-User-Id': '{{ identity.sub }}',
        'X-Tenant': 'tenant={{ claims.tenant }}',
        'X-Empty': '{{ claims.empty }}',
        'X-Cleared': '',
      },
      { identity: { method: 'noAuth', subject: null } },
    );
    // null: remove the client's copy, add nothing (src/gateway/headers.ts).
    assert.deepEqual(set, { 'x-user-id': null, 'x-tenant': null, 'x-empty': null, 'x-cleared': null });
  });

  test('CR/LF and other control characters are removed; non-ASCII is percent-encoded', () => {
    const set = run(
      { 'X-Name': '{{ claims.name }}', 'X-Evil': 'v={{ claims.evil }}', 'X-Only': '{{ claims.only }}' },
      {
        identity: {
          method: 'jwt',
          subject: 's',
          claims: { name: 'José 中', evil: 'a\r\nX-Admin: true\u0000', only: '\r\n' },
        },
      },
    );
    assert.equal(set['x-name'], 'Jos%C3%A9 %E4%B8%AD');
    assert.equal(set['x-evil'], 'v=aX-Admin: true');
    assert.equal(set['x-only'], null, 'nothing left after cleaning: not set');
  });

  test('unknown variables are compile errors that name every one', () => {
    assert.throws(
      () =>
        headers.compile(
          { 'X-A': '{{ identity.nope }}', 'X-B': '{{ claim.tenant }} {{ identity.sub }}' },
          noDeps,
        ),
      (err: Error) =>
        err instanceof TypeError &&
        err.message.includes('X-A: unknown template variable identity.nope') &&
        err.message.includes('X-B: unknown template variable claim.tenant'),
    );
  });

  test('malformed templates and reserved or repeated names are compile errors', () => {
    const fails = (config: HeadersConfig, pattern: RegExp) =>
      assert.throws(() => headers.compile(config, noDeps), pattern);
    fails({ 'X-A': '{{ identity.sub' }, /unbalanced/);
    fails({ 'X-A': 'a }} b' }, /unbalanced/);
    fails({ 'X-A': '{{}}' }, /unknown template variable \(empty\)/);
    fails({ 'X-A': 'line\r\nbreak' }, /control characters/);
    fails({ Host: 'evil' }, /Host: set by the gateway/);
    fails({ 'X-Forwarded-For': '1.2.3.4' }, /set by the gateway/);
    fails({ 'Content-Length': '0' }, /set by the gateway/);
    fails({ 'X-A': 'a', 'x-a': 'b' }, /named twice/);
  });
});
