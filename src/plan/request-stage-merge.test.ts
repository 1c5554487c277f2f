// How Policies and rules combine in the `request` stage (ipDeny, ipAllow, cors), with the real
// registry: docs/policies.md states the rules.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mergeStages, type Scope, type StageLayer } from './scoped-policies.ts';

type Reported = string[];

function layer(
  reported: Reported,
  name: string | null,
  scope: Scope | null,
  stages: Record<string, unknown>,
  mode: 'enforce' | 'shadow' = 'enforce',
): StageLayer {
  return {
    policy: name === null ? null : { name, scope: scope!, mode },
    namespace: 'default',
    stages,
    report: (path, message) => reported.push(`${name ?? 'rule'} ${path.join('.')}: ${message}`),
  };
}

function requestStage(layers: StageLayer[]): string[] {
  const stage = mergeStages(layers).find((s) => s.stage === 'request');
  return (stage?.entries ?? []).map(
    (e) => `${e.key}@${e.layer.policy?.name ?? 'rule'}${e.layer.policy?.mode === 'shadow' ? '(shadow)' : ''}`,
  );
}

describe('request stage merge', () => {
  test('runs first, before authenticate', () => {
    const merged = mergeStages([
      layer([], null, null, { authenticate: [{ noAuth: {} }], request: { ipAllow: ['10.0.0.0/8'] } }),
    ]);
    assert.deepEqual(
      merged.map((s) => s.stage),
      ['request', 'authenticate'],
    );
  });

  test('ip lists accumulate: every layer’s runs, deny before allow, shadow after enforced, cors last', () => {
    const reported: Reported = [];
    const entries = requestStage([
      layer(reported, 'base', 'platform', {
        request: { ipDeny: ['203.0.113.0/24'], cors: { allowOrigins: ['*'] } },
      }),
      layer(reported, 'trial', 'application', { request: { ipAllow: ['10.0.0.0/8'] } }, 'shadow'),
      layer(reported, 'office', 'service', { request: { ipAllow: ['10.1.0.0/16'] } }),
      layer(reported, null, null, { request: { ipDeny: ['10.1.9.0/24'], ipAllow: ['10.1.2.0/24'] } }),
    ]);
    assert.deepEqual(entries, [
      'ipDeny@base',
      'ipDeny@rule',
      'ipAllow@office',
      'ipAllow@rule',
      'ipAllow@trial(shadow)',
      'cors@base',
    ]);
    assert.deepEqual(reported, []);
  });

  test('cors answers the client: one config, the most specific layer’s', () => {
    const reported: Reported = [];
    const merged = mergeStages([
      layer(reported, 'base', 'platform', { request: { cors: { allowOrigins: ['https://a.example.com'] } } }),
      layer(reported, 'shop', 'application', {
        request: { cors: { allowOrigins: ['https://b.example.com'] } },
      }),
      layer(reported, null, null, { authenticate: [{ noAuth: {} }] }),
    ]);
    const request = merged.find((s) => s.stage === 'request')!;
    assert.equal(request.entries.length, 1);
    assert.deepEqual(request.entries[0]!.config, { allowOrigins: ['https://b.example.com'] });
    assert.equal(request.entries[0]!.layer.policy?.name, 'shop');
    assert.deepEqual(reported, []);
  });

  test('two Policies of one scope both setting cors for a rule are ambiguous, so refused', () => {
    const reported: Reported = [];
    mergeStages([
      layer(reported, 'a', 'application', { request: { cors: { allowOrigins: ['https://a.example.com'] } } }),
      layer(reported, 'b', 'application', { request: { cors: { allowOrigins: ['https://b.example.com'] } } }),
    ]);
    assert.equal(reported.length, 1);
    assert.match(reported[0]!, /^b request\.cors: also set by Policy a at the same application scope/);
  });
});
