import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fakeContext } from '../../../../test/helpers/fake-context.ts';
import type { Identity } from '../../../gateway/context.ts';
import type { PolicyDeps } from '../../types.ts';
import { claims } from './policy.ts';

describe('authorize.claims', () => {
  const policy = claims.compile(
    [
      { claim: 'tenant', equals: '{path.tenant}' },
      { claim: 'email_verified', equals: true },
    ],
    {} as PolicyDeps,
  );
  const decide = (identity: Identity | null, tenant = 'acme') => {
    const verdict = policy.handle(fakeContext({ identity, params: { tenant } }));
    assert.ok(!(verdict instanceof Promise));
    return verdict.kind === 'respond' ? `${verdict.code}: ${verdict.detail}` : verdict.kind;
  };
  const user = (c: Record<string, unknown>): Identity => ({ method: 'jwt', subject: 'u', claims: c });

  test('every condition must hold', () => {
    assert.equal(decide(user({ tenant: 'acme', email_verified: true })), 'continue');
    assert.equal(
      decide(user({ tenant: 'acme', email_verified: false })),
      'forbidden: authorize.claims[1] does not hold',
    );
    assert.equal(
      decide(user({ tenant: 'acme', email_verified: true }), 'other'),
      'forbidden: authorize.claims[0] does not hold',
    );
  });

  test('fails closed without an authenticated caller', () => {
    assert.match(decide(null), /^forbidden/);
  });

  test('a malformed condition is a compile error naming it', () => {
    assert.throws(
      () => claims.compile([{ claim: 'a', equals: 'x' }, { claim: 'b' }], {} as PolicyDeps),
      /condition 1/,
    );
  });
});
