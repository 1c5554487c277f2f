import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fakeContext } from '../../../../test/helpers/fake-context.ts';
import type { Identity } from '../../../gateway/context.ts';
import type { PolicyDeps } from '../../types.ts';
import { groups } from './policy.ts';

describe('authorize.groups', () => {
  const policy = groups.compile(['partners', 'staff'], {} as PolicyDeps);
  const decide = (identity: Identity | null) => {
    const verdict = policy.handle(fakeContext({ identity }));
    assert.ok(!(verdict instanceof Promise));
    return verdict.kind === 'respond' ? verdict.code : verdict.kind;
  };
  const consumer = (g: string[]): Identity => ({
    method: 'apiKey',
    subject: 'c',
    consumer: { name: 'c', groups: g, metadata: {} },
  });

  test('a consumer in one of the groups passes', () => {
    assert.equal(decide(consumer(['beta', 'staff'])), 'continue');
  });

  test('anyone else is refused', () => {
    assert.equal(decide(consumer(['beta'])), 'forbidden');
    assert.equal(decide({ method: 'jwt', subject: 'u', claims: { groups: ['staff'] } }), 'forbidden');
    assert.equal(decide(null), 'forbidden');
  });
});
