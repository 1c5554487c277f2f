import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fakeCertificate, fakeContext } from '../../../../test/helpers/fake-context.ts';
import type { Identity } from '../../../gateway/context.ts';
import type { PolicyDeps } from '../../types.ts';
import { allow } from './policy.ts';

describe('authorize.allow', () => {
  const policy = allow.compile(
    [
      { group: 'admins' },
      { claim: 'tenant', equals: '{path.tenant}' },
      { certificate: { spiffeId: 'spiffe://corp.test/ns/*/sa/ops' } },
    ],
    {} as PolicyDeps,
  );
  const decide = (identity: Identity | null, request: Parameters<typeof fakeContext>[0] = {}) => {
    const verdict = policy.handle(fakeContext({ ...request, identity }));
    assert.ok(!(verdict instanceof Promise));
    return verdict.kind === 'respond' ? verdict.code : verdict.kind;
  };
  const consumer = (groups: string[], tenant: string): Identity => ({
    method: 'apiKey',
    subject: 'c',
    consumer: { name: 'c', groups, metadata: { tenant } },
  });

  test('one matching condition is enough, whatever its kind', () => {
    assert.equal(decide(consumer(['admins'], 'x'), { params: { tenant: 'acme' } }), 'continue');
    assert.equal(decide(consumer([], 'acme'), { params: { tenant: 'acme' } }), 'continue');
    const ops = fakeCertificate({ spiffeId: 'spiffe://corp.test/ns/infra/sa/ops' });
    assert.equal(decide({ method: 'mtls', subject: 'ops', certificate: ops }), 'continue');
  });

  test('no matching condition is a deny (403 forbidden)', () => {
    assert.equal(decide(consumer([], 'acme'), { params: { tenant: 'other' } }), 'forbidden');
    assert.equal(decide({ method: 'anonymous', subject: 'anonymous' }), 'forbidden');
  });

  test('fails closed without an authenticated caller', () => {
    assert.equal(decide({ method: 'noAuth', subject: null }), 'forbidden');
  });
});
