import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import Value from 'typebox/value';
import { fakeContext } from '../../../../test/helpers/fake-context.ts';
import { parseResources } from '../../../config/load.ts';
import { compileConsumers, emptyConsumerIndex, hashApiKey } from '../../../identity/consumers.ts';
import type { CompiledPolicy, PolicyDeps, Verdict } from '../../types.ts';
import { type ApiKeyConfig, apiKey } from './policy.ts';

const ciKey = 'ci-key-0123456789abcdef';
const partnerKey = 'partner/key+with=odd&chars';

const { resources, errors } = parseResources(
  `apiVersion: gatehouse.dev/v1
kind: Consumer
metadata: { name: ci }
spec:
  apiKeys: [{ sha256: ${hashApiKey(ciKey).toUpperCase()}, name: pipeline }]
  groups: [builders]
  metadata: { tenant: acme }
---
apiVersion: gatehouse.dev/v1
kind: Consumer
metadata: { name: partner }
spec:
  apiKeys: [{ sha256: ${hashApiKey(partnerKey)}, name: main }]
`,
  'consumers.yaml',
);
assert.deepEqual(errors, []);
const index = compileConsumers(resources, () => assert.fail('no compile error expected')).get('default')!;

function compile(config: Partial<ApiKeyConfig> = {}, consumers = index): CompiledPolicy {
  const deps = { consumers: () => consumers } as Pick<PolicyDeps, 'consumers'> as PolicyDeps;
  // The loader fills defaults; so does this.
  return apiKey.compile(Value.Default(apiKey.schema, structuredClone(config)) as ApiKeyConfig, deps);
}

function decide(policy: CompiledPolicy, ctx: ReturnType<typeof fakeContext>): Verdict {
  const verdict = policy.handle(ctx);
  assert.ok(!(verdict instanceof Promise), 'apiKey answers synchronously');
  return verdict;
}

describe('apiKey', () => {
  test('reads X-API-Key by default and identifies the consumer', () => {
    const ctx = fakeContext({ headers: { 'x-api-key': ciKey } });
    assert.deepEqual(decide(compile(), ctx), { kind: 'continue' });
    assert.equal(ctx.identity?.method, 'apiKey');
    assert.equal(ctx.identity?.subject, 'ci');
    assert.deepEqual(ctx.identity?.consumer, {
      name: 'ci',
      groups: ['builders'],
      metadata: { tenant: 'acme' },
    });
    // The key is not forwarded upstream.
    assert.equal(ctx.upstreamHeaders?.get('x-api-key'), null);
    assert.ok(ctx.upstreamHeaders?.has('x-api-key'));
  });

  test('steps aside when no key is sent', () => {
    const ctx = fakeContext({ headers: { authorization: 'Bearer abc' } });
    assert.deepEqual(decide(compile(), ctx), { kind: 'skip' });
    assert.equal(ctx.identity, null);
  });

  test('refuses an unknown or empty key with 401 invalid_api_key and a challenge', () => {
    for (const key of ['not-a-key', '', `${ciKey} `]) {
      const verdict = decide(compile(), fakeContext({ headers: { 'x-api-key': key } }));
      assert.equal(verdict.kind, 'respond', JSON.stringify(key));
      if (verdict.kind !== 'respond') continue;
      assert.equal(verdict.code, 'invalid_api_key');
      assert.equal(verdict.headers?.['www-authenticate'], 'ApiKey header="x-api-key"');
      assert.ok(!verdict.detail?.includes(key) || key === '', 'the key is never echoed');
    }
  });

  test('refuses every key when the namespace has no consumers', () => {
    const verdict = decide(compile({}, emptyConsumerIndex), fakeContext({ headers: { 'x-api-key': ciKey } }));
    assert.equal(verdict.kind === 'respond' && verdict.code, 'invalid_api_key');
  });

  test('reads a configured header, case-insensitively', () => {
    const policy = compile({ from: { header: 'X-Partner-Key' } });
    const ctx = fakeContext({ headers: { 'x-partner-key': partnerKey, 'x-api-key': 'ignored' } });
    assert.deepEqual(decide(policy, ctx), { kind: 'continue' });
    assert.equal(ctx.identity?.subject, 'partner');
    assert.ok(ctx.upstreamHeaders?.has('x-partner-key'));
    assert.ok(!ctx.upstreamHeaders?.has('x-api-key'));
  });

  test('reads a query parameter and removes it from the query sent upstream', () => {
    const policy = compile({ from: { query: 'api_key' } });
    const encoded = encodeURIComponent(partnerKey);
    const ctx = fakeContext({ query: `a=1&api_key=${encoded}&b=%2Fx+y` });
    assert.deepEqual(decide(policy, ctx), { kind: 'continue' });
    assert.equal(ctx.identity?.subject, 'partner');
    assert.equal(ctx.upstreamQuery, 'a=1&b=%2Fx+y');
    assert.equal(ctx.upstreamHeaders, null);

    const only = fakeContext({ query: `api_key=${ciKey}` });
    assert.deepEqual(decide(policy, only), { kind: 'continue' });
    assert.equal(only.upstreamQuery, '');

    assert.deepEqual(decide(policy, fakeContext({ query: 'a=1' })), { kind: 'skip' });
    assert.deepEqual(decide(policy, fakeContext({ headers: { 'x-api-key': ciKey } })), { kind: 'skip' });
  });

  test('refuses a query key sent twice (ambiguous)', () => {
    const verdict = decide(
      compile({ from: { query: 'api_key' } }),
      fakeContext({ query: `api_key=${ciKey}&api_key=other` }),
    );
    assert.equal(verdict.kind === 'respond' && verdict.code, 'invalid_api_key');
    assert.equal(
      verdict.kind === 'respond' && verdict.headers?.['www-authenticate'],
      'ApiKey query="api_key"',
    );
  });
});
