import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fakeContext } from '../../../../test/helpers/fake-context.ts';
import type { Identity } from '../../../gateway/context.ts';
import type { PolicyDeps } from '../../types.ts';
import { audiences } from './policy.ts';

describe('authorize.audiences', () => {
  const policy = audiences.compile(['orders', 'https://api.test'], {} as PolicyDeps);
  const decide = (identity: Identity | null) => {
    const verdict = policy.handle(fakeContext({ identity }));
    assert.ok(!(verdict instanceof Promise));
    return verdict.kind === 'respond' ? verdict.code : verdict.kind;
  };
  const token = (aud: unknown): Identity => ({ method: 'jwt', subject: 'u', claims: { aud } });

  test('aud as a string or an array must include one of them', () => {
    assert.equal(decide(token('orders')), 'continue');
    assert.equal(decide(token(['billing', 'https://api.test'])), 'continue');
    assert.equal(decide(token('billing')), 'forbidden');
    assert.equal(decide(token(['billing'])), 'forbidden');
    assert.equal(decide(token(undefined)), 'forbidden');
  });

  test('identities without a token have no audience', () => {
    assert.equal(
      decide({ method: 'apiKey', subject: 'c', consumer: { name: 'c', groups: [], metadata: {} } }),
      'forbidden',
    );
    assert.equal(decide(null), 'forbidden');
  });
});
