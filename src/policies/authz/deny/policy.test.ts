import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fakeContext } from '../../../../test/helpers/fake-context.ts';
import type { Identity } from '../../../gateway/context.ts';
import type { PolicyDeps } from '../../types.ts';
import { deny } from './policy.ts';

const identity: Identity = { method: 'jwt', subject: 'alice', claims: { sub: 'alice', tenant: 'acme' } };

describe('authorize.deny', () => {
  const policy = deny.compile(
    [
      { claim: 'tenant', equals: 'blocked' },
      { claim: 'sub', equals: '{header.x-impersonate}' },
    ],
    {} as PolicyDeps,
  );

  test('any matching condition refuses with 403 forbidden', () => {
    const verdict = policy.handle(fakeContext({ identity, headers: { 'x-impersonate': 'alice' } }));
    assert.deepEqual(verdict, {
      kind: 'respond',
      code: 'forbidden',
      detail: 'denied by authorize.deny[1]',
      headers: undefined,
    });
  });

  test('no matching condition lets the request go on', () => {
    assert.deepEqual(policy.handle(fakeContext({ identity })), { kind: 'continue' });
  });

  test('fails closed without an authenticated caller (noAuth)', () => {
    for (const who of [null, { method: 'noAuth', subject: null }]) {
      const verdict = policy.handle(fakeContext({ identity: who }));
      assert.equal(
        verdict instanceof Promise ? null : verdict.kind === 'respond' && verdict.code,
        'forbidden',
      );
    }
  });
});
