import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fakeCertificate, fakeContext } from '../../../test/helpers/fake-context.ts';
import type { Identity } from '../../gateway/context.ts';
import {
  type Condition,
  compileCertificateMatch,
  compileCondition,
  compileTemplate,
  paramsFor,
  routeParams,
} from './conditions.ts';

const token: Identity = {
  method: 'jwt',
  subject: 'alice',
  claims: {
    sub: 'alice',
    tenant: 'acme',
    customer_id: 42,
    admin: true,
    roles: ['reader', 'writer'],
    org: { id: 'o-1', region: { code: 'eu' } },
    'https://corp.test/team': 'payments',
    'a.b': 'literal dotted name',
    a: { b: 'nested' },
  },
};

const consumer: Identity = {
  method: 'apiKey',
  subject: 'partner-a',
  consumer: { name: 'partner-a', groups: ['partners', 'beta'], metadata: { tenant: 'acme', tier: 'gold' } },
};

function holds(condition: Condition, identity: Identity, request: Parameters<typeof fakeContext>[0] = {}) {
  return compileCondition(condition)(fakeContext({ ...request, identity }), identity);
}

describe('claim conditions', () => {
  test('equals, oneOf, exists and pattern on token claims', () => {
    assert.equal(holds({ claim: 'tenant', equals: 'acme' }, token), true);
    assert.equal(holds({ claim: 'tenant', equals: 'other' }, token), false);
    assert.equal(holds({ claim: 'admin', equals: true }, token), true);
    assert.equal(holds({ claim: 'customer_id', equals: 42 }, token), true);
    assert.equal(holds({ claim: 'customer_id', equals: '42' }, token), true, 'a number compares by its text');
    assert.equal(holds({ claim: 'tenant', oneOf: ['x', 'acme'] }, token), true);
    assert.equal(holds({ claim: 'tenant', oneOf: ['x', 'y'] }, token), false);
    assert.equal(holds({ claim: 'tenant', exists: true }, token), true);
    assert.equal(holds({ claim: 'missing', exists: false }, token), true);
    assert.equal(holds({ claim: 'missing', exists: true }, token), false);
    assert.equal(holds({ claim: 'tenant', pattern: 'ac.e' }, token), true);
    assert.equal(holds({ claim: 'tenant', pattern: 'ac' }, token), false, 'patterns are anchored');
    assert.equal(holds({ claim: 'tenant', pattern: 'x|acme' }, token), true, 'alternation stays anchored');
    assert.equal(holds({ claim: 'customer_id', pattern: '4.' }, token), false, 'patterns match strings only');
  });

  test('every operator given must hold', () => {
    assert.equal(holds({ claim: 'tenant', exists: true, equals: 'acme', pattern: 'a.*' }, token), true);
    assert.equal(holds({ claim: 'tenant', exists: true, equals: 'acme', pattern: 'b.*' }, token), false);
  });

  test('array claims match when one element does', () => {
    assert.equal(holds({ claim: 'roles', equals: 'writer' }, token), true);
    assert.equal(holds({ claim: 'roles', oneOf: ['admin', 'reader'] }, token), true);
    assert.equal(holds({ claim: 'roles', pattern: 'wri.*' }, token), true);
    assert.equal(holds({ claim: 'roles', equals: 'admin' }, token), false);
  });

  test('dotted paths walk nested claims; a name that exists as written wins', () => {
    assert.equal(holds({ claim: 'org.region.code', equals: 'eu' }, token), true);
    assert.equal(holds({ claim: 'org.id', equals: 'o-1' }, token), true);
    assert.equal(holds({ claim: 'org.nothing.here', exists: false }, token), true);
    assert.equal(holds({ claim: 'https://corp.test/team', equals: 'payments' }, token), true);
    assert.equal(holds({ claim: 'a.b', equals: 'literal dotted name' }, token), true);
    assert.equal(holds({ claim: 'roles.length', exists: true }, token), false, 'no walking into arrays');
    assert.equal(holds({ claim: 'tenant.constructor', exists: true }, token), false, 'own properties only');
    assert.equal(holds({ claim: 'constructor', exists: true }, token), false);
  });

  test('consumers: metadata are claims, with sub and groups', () => {
    assert.equal(holds({ claim: 'tenant', equals: 'acme' }, consumer), true);
    assert.equal(holds({ claim: 'tier', oneOf: ['gold', 'platinum'] }, consumer), true);
    assert.equal(holds({ claim: 'sub', equals: 'partner-a' }, consumer), true);
    assert.equal(holds({ claim: 'groups', equals: 'beta' }, consumer), true);
    assert.equal(holds({ claim: 'toString', exists: true }, consumer), false);
  });

  test('other identities only have sub', () => {
    const cert: Identity = { method: 'mtls', subject: 'spiffe://corp.test/sa/orders' };
    assert.equal(holds({ claim: 'sub', pattern: 'spiffe://corp\\.test/.*' }, cert), true);
    assert.equal(holds({ claim: 'tenant', exists: true }, cert), false);
  });
});

describe('references to the request', () => {
  const request = {
    params: { tenant: 'acme', id: '42' },
    headers: { 'x-tenant': 'acme', 'x-empty': '' },
    query: 'org=acme&dup=1&dup=2&sp=a+b',
  };

  test('path, header and query values compare per request', () => {
    assert.equal(holds({ claim: 'tenant', equals: '{path.tenant}' }, token, request), true);
    assert.equal(holds({ claim: 'tenant', equals: '{header.X-Tenant}' }, token, request), true);
    assert.equal(holds({ claim: 'tenant', equals: '{query.org}' }, token, request), true);
    assert.equal(holds({ claim: 'customer_id', equals: '{path.id}' }, token, request), true);
    assert.equal(holds({ claim: 'tenant', oneOf: ['x', '{path.tenant}'] }, consumer, request), true);
    assert.equal(
      holds({ claim: 'tenant', equals: '{path.tenant}' }, token, { ...request, params: { tenant: 'evil' } }),
      false,
    );
  });

  test('a reference that resolves to nothing never matches', () => {
    const noTenant: Identity = { method: 'jwt', subject: 'x', claims: { tenant: '' } };
    for (const ref of ['{path.nope}', '{header.x-nope}', '{header.x-empty}', '{query.nope}', '{query.dup}']) {
      assert.equal(holds({ claim: 'tenant', equals: ref }, noTenant, request), false, ref);
      assert.equal(holds({ claim: 'tenant', equals: `t-${ref}` }, token, request), false, ref);
    }
  });

  test('templates mix literals and references; braces are escaped by doubling', () => {
    const ctx = fakeContext(request);
    const t = compileTemplate('t-{path.tenant}-{query.sp}');
    assert.equal(typeof t === 'function' ? t(ctx) : t, 't-acme-a b');
    assert.equal(compileTemplate('{{literal}}'), '{literal}');
    assert.equal(compileTemplate('plain'), 'plain');
  });

  test('malformed references are compile errors', () => {
    for (const bad of ['{tenant}', '{paths.tenant}', '{path.}', 'x{path.a', 'a}b', '{}']) {
      assert.throws(() => compileTemplate(bad), TypeError, bad);
    }
  });
});

describe('group and certificate conditions', () => {
  test('group: the consumer is in it', () => {
    assert.equal(holds({ group: 'beta' }, consumer), true);
    assert.equal(holds({ group: 'admins' }, consumer), false);
    assert.equal(holds({ group: 'beta' }, token), false, 'token holders are in no consumer group');
  });

  test('certificate: the identity’s or the connection’s certificate', () => {
    const peerCertificate = fakeCertificate({
      commonName: 'orders',
      subject: 'CN=orders,O=Corp',
      spiffeId: 'spiffe://corp.test/ns/shop/sa/orders',
      dnsNames: ['orders.shop.svc'],
    });
    const spiffe = { certificate: { spiffeId: 'spiffe://corp.test/ns/*/sa/orders' } };
    assert.equal(holds(spiffe, token, { peerCertificate }), true, 'a jwt caller over mTLS');
    assert.equal(holds(spiffe, token), false, 'no certificate');
    assert.equal(holds(spiffe, { method: 'mtls', subject: 'x', certificate: peerCertificate }), true);
  });

  test('names match exactly or with * for one segment or label', () => {
    const cert = fakeCertificate({
      subject: 'CN=orders\\, inc,O=Corp',
      spiffeId: 'spiffe://corp.test/ns/shop/sa/orders',
      dnsNames: ['other.test', 'Orders.Shop.svc'],
    });
    const match = (m: Parameters<typeof compileCertificateMatch>[0]) => compileCertificateMatch(m)(cert);
    assert.equal(match({ spiffeId: 'spiffe://corp.test/ns/shop/sa/orders' }), true);
    assert.equal(match({ spiffeId: 'spiffe://corp.test/ns/*/sa/orders' }), true);
    assert.equal(match({ spiffeId: 'spiffe://corp.test/*/sa/orders' }), false, '* is one segment');
    assert.equal(match({ spiffeId: 'spiffe://corp.test/ns/shop/sa/order' }), false);
    assert.equal(match({ dnsName: 'orders.shop.svc' }), true, 'DNS names are case-insensitive');
    assert.equal(match({ dnsName: '*.shop.svc' }), true);
    assert.equal(match({ dnsName: '*.svc' }), false, '* is one label');
    assert.equal(match({ subject: 'CN=orders\\, inc,O=Corp' }), true);
    assert.equal(match({ subject: 'CN=*,O=Corp' }), true, '* spans an escaped comma');
    assert.equal(match({ subject: 'CN=*' }), false);
    assert.equal(
      match({ subject: 'CN=*,O=Corp', spiffeId: 'spiffe://other/x' }),
      false,
      'all names must match',
    );
  });
});

describe('compile errors', () => {
  test('unusable conditions are refused at compile time', () => {
    const bad: Condition[] = [
      { claim: 'tenant' },
      { claim: 'tenant', group: 'x', equals: 'a' },
      { group: 'x', equals: 'a' },
      { claim: 'tenant', pattern: '(' },
      { claim: 'tenant', equals: '{bogus}' },
      { certificate: { spiffeId: 'spiffe://x/**' } },
    ];
    for (const condition of bad)
      assert.throws(() => compileCondition(condition), TypeError, JSON.stringify(condition));
  });
});

describe('path references checked against the route', () => {
  test('a rule’s own condition may only name its route’s parameters', () => {
    const params = routeParams('/tenants/{tenant}/items/{id}/{**}');
    assert.deepEqual([...params], ['tenant', 'id', '**']);
    assert.doesNotThrow(() => compileCondition({ claim: 'tenant', equals: '{path.tenant}' }, params));
    assert.throws(
      () => compileCondition({ claim: 'tenant', equals: '{path.tenat}' }, params),
      /\{path\.tenat\}: the route has no parameter tenat/,
      'a typo would silently disable a deny condition',
    );
  });

  test('where the route is not known (a Policy over several routes) any name is accepted', () => {
    assert.doesNotThrow(() => compileCondition({ claim: 'tenant', equals: '{path.anything}' }, null));
    const deps = {
      rule: { id: 'default/r#0', template: '/t/{tenant}' },
      policy: { name: 'p', mode: 'enforce' },
    };
    assert.equal(paramsFor(deps as never), null);
    assert.deepEqual([...(paramsFor({ ...deps, policy: null } as never) ?? [])], ['tenant']);
  });
});
