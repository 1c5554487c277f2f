import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fakeContext } from '../../../../test/helpers/fake-context.ts';
import type { Identity } from '../../../gateway/context.ts';
import type { PolicyDeps } from '../../types.ts';
import { requiredScopes } from './policy.ts';

describe('authorize.requiredScopes', () => {
  const policy = requiredScopes.compile(['orders.read', 'orders.write'], {} as PolicyDeps);
  const handle = (identity: Identity | null) => {
    const verdict = policy.handle(fakeContext({ identity }));
    assert.ok(!(verdict instanceof Promise));
    return verdict;
  };
  const token = (scopes: string[]): Identity => ({ method: 'jwt', subject: 'u', scopes: new Set(scopes) });

  test('every scope must be granted', () => {
    assert.deepEqual(handle(token(['orders.read', 'orders.write', 'x'])), { kind: 'continue' });
  });

  test('a missing scope is 403 insufficient_scope with an RFC 6750 challenge naming them all', () => {
    for (const who of [token(['orders.read']), { method: 'apiKey', subject: 'c' }]) {
      const verdict = handle(who);
      assert.equal(verdict.kind === 'respond' && verdict.code, 'insufficient_scope');
      assert.equal(
        verdict.kind === 'respond' && verdict.headers?.['www-authenticate'],
        'Bearer error="insufficient_scope", scope="orders.read orders.write"',
      );
    }
  });

  test('fails closed without an authenticated caller', () => {
    const verdict = handle({ method: 'noAuth', subject: null });
    assert.equal(verdict.kind === 'respond' && verdict.code, 'forbidden');
  });
});
