import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import Value from 'typebox/value';
import { fakeContext } from '../../../../test/helpers/fake-context.ts';
import {
  CredentialStore,
  offlineCredentials,
  type OutboundCredentials,
} from '../../../egress/credentials.ts';
import type { PolicyDeps } from '../../types.ts';
import { type InjectApiKeyConfig, injectApiKey } from './policy.ts';

const store = new CredentialStore({
  env: { STRIPE_KEY: 'sk_test_123', BAD_KEY: 'line\nbreak' },
  now: Date.now,
  log: () => {},
});
after(() => store.close());

function compile(config: Record<string, unknown>, credentials: OutboundCredentials = store) {
  const deps = { credentials: () => credentials } as Pick<PolicyDeps, 'credentials'> as PolicyDeps;
  return injectApiKey.compile(
    Value.Default(injectApiKey.schema, structuredClone(config)) as InjectApiKeyConfig,
    deps,
  );
}

describe('mutate.injectApiKey', () => {
  test('sets the header to prefix + key and keeps the client’s Authorization from going upstream', () => {
    const policy = compile({ header: 'X-Api-Key', value: { env: 'STRIPE_KEY' } });
    const ctx = fakeContext({ headers: { authorization: 'Bearer internal', 'x-api-key': 'client-copy' } });
    assert.deepEqual(policy.handle(ctx), { kind: 'continue' });
    assert.deepEqual(
      [...ctx.upstreamHeaders!],
      [
        ['authorization', null],
        ['x-api-key', 'sk_test_123'],
      ],
    );
  });

  test('Authorization with a prefix replaces the client’s', () => {
    const policy = compile({ value: { env: 'STRIPE_KEY' }, prefix: 'Bearer ' });
    const ctx = fakeContext({ headers: { authorization: 'Bearer internal' } });
    policy.handle(ctx);
    assert.deepEqual([...ctx.upstreamHeaders!], [['authorization', 'Bearer sk_test_123']]);
  });

  test('config errors: unset variable, a value a header cannot carry, a gateway-owned header', () => {
    assert.throws(() => compile({ value: { env: 'MISSING' } }), /environment variable MISSING is not set/);
    assert.throws(() => compile({ value: { env: 'BAD_KEY' } }), /BAD_KEY holds characters/);
    assert.throws(
      () => compile({ header: 'Host', value: { env: 'STRIPE_KEY' } }),
      /set by the gateway itself/,
    );
  });

  test('offline (validate, explain): no secret is read, a placeholder stands in', () => {
    const policy = compile({ header: 'X-Api-Key', value: { env: 'MISSING' } }, offlineCredentials);
    const ctx = fakeContext();
    policy.handle(ctx);
    assert.equal(ctx.upstreamHeaders!.get('x-api-key'), '<MISSING>');
  });
});
