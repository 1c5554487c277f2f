import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fakeContext } from '../../../../test/helpers/fake-context.ts';
import type { PolicyDeps } from '../../types.ts';
import { anonymous } from './policy.ts';

const policy = anonymous.compile({}, {} as PolicyDeps);

describe('anonymous', () => {
  test('lets a request without credential through as anonymous', () => {
    const ctx = fakeContext({ headers: { accept: '*/*' } });
    assert.deepEqual(policy.handle(ctx), { kind: 'continue' });
    assert.deepEqual(ctx.identity, { method: 'anonymous', subject: 'anonymous' });
  });

  test('steps aside for an Authorization header no earlier method accepted (401, not anonymous)', () => {
    const ctx = fakeContext({ headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    assert.deepEqual(policy.handle(ctx), { kind: 'skip' });
    assert.equal(ctx.identity, null);
  });

  test('must be written last', () => {
    assert.equal(anonymous.mustBeLast, true);
  });
});
