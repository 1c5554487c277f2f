import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RequestContext } from '../gateway/context.ts';
import { CONTINUE, type CompiledPolicy, respond, SKIP, type Stage, type Verdict } from '../policies/types.ts';
import {
  type AppliedPolicy,
  keepEstablishedCaller,
  type MergedStage,
  mergeStages,
  type PolicyKinds,
  type Scope,
  type StageLayer,
} from './scoped-policies.ts';
import { isShadowPolicy, type ShadowDenial, shadowPolicy } from './shadow.ts';

// Policy kinds of this test, independent of the registry: the merge only knows keys, order and maps.
const kinds: PolicyKinds = {
  keysOf: (stage: Stage) =>
    ({
      request: ['ipDeny', 'ipAllow', 'cors'],
      authenticate: ['jwt', 'apiKey', 'noAuth'],
      authorize: ['deny', 'scopes', 'groups', 'allow'],
      limit: ['rateLimit'],
      mutate: ['headers', 'token'],
    })[stage],
  isMap: (_stage, key) => key === 'headers',
};

type Reported = Array<{ from: string; path: string; message: string }>;

function layers(reported: Reported) {
  const make = (
    name: string | null,
    scope: Scope | null,
    stages: Record<string, unknown>,
    mode: 'enforce' | 'shadow' = 'enforce',
  ): StageLayer => {
    const policy: AppliedPolicy | null = name === null ? null : { name, scope: scope!, mode };
    return {
      policy,
      namespace: 'default',
      stages,
      report: (path, message) => reported.push({ from: name ?? 'rule', path: path.join('.'), message }),
    };
  };
  return {
    platform: (name: string, stages: Record<string, unknown>, mode?: 'enforce' | 'shadow') =>
      make(name, 'platform', stages, mode),
    application: (name: string, stages: Record<string, unknown>, mode?: 'enforce' | 'shadow') =>
      make(name, 'application', stages, mode),
    service: (name: string, stages: Record<string, unknown>, mode?: 'enforce' | 'shadow') =>
      make(name, 'service', stages, mode),
    rule: (stages: Record<string, unknown>) => make(null, null, stages),
  };
}

/** The merge as `stage: key@source=config` lines, easy to compare. */
function describeMerge(merged: readonly MergedStage[]): string[] {
  return merged.map(
    (s) =>
      `${s.stage}${s.keepsCaller ? '+keep' : ''}: ${s.entries
        .map((e) => `${e.key}@${e.layer.policy?.name ?? 'rule'}=${JSON.stringify(e.config)}`)
        .join(' ')}`,
  );
}

describe('mergeStages', () => {
  test('authorize accumulates: every scope’s policies run, by policy order then scope, shadow ones last', () => {
    const reported: Reported = [];
    const l = layers(reported);
    const merged = mergeStages(
      [
        l.platform('base', { authorize: { groups: ['staff'], deny: [{ ip: '10.0.0.0/8' }] } }),
        l.application('trial', { authorize: { groups: ['admins'] } }, 'shadow'),
        l.application('shop', { authorize: { scopes: ['shop'] } }),
        l.service('orders', { authorize: { deny: [{ group: 'banned' }], scopes: ['orders.read'] } }),
        l.rule({
          authenticate: [{ jwt: {} }],
          authorize: { allow: [{ group: 'x' }], scopes: ['orders.write'] },
        }),
      ],
      kinds,
    );
    assert.deepEqual(describeMerge(merged), [
      'authenticate: jwt@rule={}',
      'authorize: deny@base=[{"ip":"10.0.0.0/8"}] deny@orders=[{"group":"banned"}] scopes@shop=["shop"] ' +
        'scopes@orders=["orders.read"] scopes@rule=["orders.write"] groups@base=["staff"] allow@rule=[{"group":"x"}] ' +
        'groups@trial=["admins"]',
    ]);
    assert.deepEqual(reported, []);
  });

  test('authenticate: each layer is a chain of its own, least specific first, the rule last', () => {
    const l = layers([]);
    const merged = mergeStages(
      [
        l.platform('mtls-everywhere', { authenticate: [{ jwt: { provider: 'corp' } }] }),
        l.service('keys', { authenticate: [{ apiKey: {} }, { noAuth: {} }] }),
        l.rule({ authenticate: [{ noAuth: {} }] }),
      ],
      kinds,
    );
    assert.deepEqual(describeMerge(merged), [
      'authenticate: jwt@mtls-everywhere={"provider":"corp"}',
      'authenticate+keep: apiKey@keys={} noAuth@keys={}',
      'authenticate+keep: noAuth@rule={}',
    ]);
    assert.deepEqual(
      merged[1]!.entries.map((e) => e.path),
      [
        ['authenticate', 0, 'apiKey'],
        ['authenticate', 1, 'noAuth'],
      ],
    );
  });

  test('mutate: the most specific layer replaces; a rule’s own setting always wins', () => {
    const reported: Reported = [];
    const l = layers(reported);
    const merged = mergeStages(
      [
        l.platform('base', { mutate: { token: { audience: 'platform' } } }),
        l.application('app', { mutate: { token: { audience: 'app' } } }),
        l.service('svc', { mutate: { token: { audience: 'svc' } } }),
        l.rule({ authenticate: [{ noAuth: {} }] }),
      ],
      kinds,
    );
    assert.deepEqual(describeMerge(merged).slice(1), ['mutate: token@svc={"audience":"svc"}']);
    assert.deepEqual(merged[1]!.entries[0]!.path, ['mutate', 'token']);

    const withRule = mergeStages(
      [
        l.service('svc', { mutate: { token: { audience: 'svc' } } }),
        l.rule({ authenticate: [{ noAuth: {} }], mutate: { token: { audience: 'rule' } } }),
      ],
      kinds,
    );
    assert.deepEqual(describeMerge(withRule).slice(1), ['mutate: token@rule={"audience":"rule"}']);
    assert.deepEqual(reported, []);
  });

  test('mutate maps merge by key, case-insensitively, the more specific value and spelling winning', () => {
    const reported: Reported = [];
    const l = layers(reported);
    const merged = mergeStages(
      [
        l.platform('base', { mutate: { headers: { 'X-Env': 'prod', 'X-User': 'platform' } } }),
        l.application('app', { mutate: { headers: { 'X-App': 'shop' } } }),
        l.rule({ authenticate: [{ noAuth: {} }], mutate: { headers: { 'x-user': '{{ identity.sub }}' } } }),
      ],
      kinds,
    );
    const entry = merged[1]!.entries[0]!;
    assert.deepEqual(entry.config, { 'X-Env': 'prod', 'X-App': 'shop', 'x-user': '{{ identity.sub }}' });
    assert.equal(entry.layer.policy, null, 'errors in the merged map point at the most specific contributor');
    assert.deepEqual(reported, []);
  });

  test('two Policies of the same scope setting the same replacing field are refused', () => {
    const reported: Reported = [];
    const l = layers(reported);
    mergeStages(
      [
        l.service('a', { mutate: { token: { audience: 'a' }, headers: { 'X-A': '1', 'X-Same': 'a' } } }),
        l.service('b', { mutate: { token: { audience: 'b' }, headers: { 'X-B': '2', 'x-same': 'b' } } }),
        l.rule({ authenticate: [{ noAuth: {} }] }),
      ],
      kinds,
    );
    assert.deepEqual(
      reported.map((r) => `${r.from} ${r.path}`),
      ['b mutate.headers.x-same', 'b mutate.token'],
    );
    assert.match(reported[1]!.message, /^also set by Policy a at the same service scope/);
  });

  test('the same field at different scopes, or accumulating fields at one scope, are no conflict', () => {
    const reported: Reported = [];
    const l = layers(reported);
    const merged = mergeStages(
      [
        l.platform('p', { mutate: { token: { audience: 'p' } } }),
        l.service('a', { authorize: { groups: ['x'] }, mutate: { token: { audience: 'a' } } }),
        l.service('b', { authorize: { groups: ['y'] } }),
        l.rule({ authenticate: [{ noAuth: {} }] }),
      ],
      kinds,
    );
    assert.deepEqual(reported, []);
    assert.deepEqual(describeMerge(merged).slice(1), [
      'authorize: groups@a=["x"] groups@b=["y"]',
      'mutate: token@a={"audience":"a"}',
    ]);
  });

  test('shadow layers never contribute to authenticate or mutate', () => {
    const l = layers([]);
    const merged = mergeStages(
      [
        l.platform(
          's',
          { authenticate: [{ jwt: {} }], mutate: { token: {} }, limit: { rateLimit: [1] } },
          'shadow',
        ),
        l.rule({ authenticate: [{ noAuth: {} }] }),
      ],
      kinds,
    );
    assert.deepEqual(describeMerge(merged), ['authenticate: noAuth@rule={}', 'limit: rateLimit@s=[1]']);
  });

  test('a rule without Policies merges to its own stages in registry order', () => {
    const l = layers([]);
    const merged = mergeStages(
      [l.rule({ path: '/x', authenticate: [{ noAuth: {} }], authorize: { allow: [1], deny: [2] } })],
      kinds,
    );
    assert.deepEqual(describeMerge(merged), [
      'authenticate: noAuth@rule={}',
      'authorize: deny@rule=[2] allow@rule=[1]',
    ]);
  });
});

function fakeContext(): RequestContext {
  return { id: 'req-1', identity: null } as unknown as RequestContext;
}

function policy(handle: (ctx: RequestContext) => Verdict | Promise<Verdict>): CompiledPolicy {
  return { name: 'inner', handle };
}

describe('shadowPolicy', () => {
  const where = { policy: 'default/trial', route: 'default/shop#0' };

  test('a denial is recorded and becomes continue; other verdicts pass through unrecorded', async () => {
    const recorded: ShadowDenial[] = [];
    const deny = shadowPolicy(
      policy(() => respond('forbidden', 'not in group')),
      where,
      (d) => recorded.push(d),
    );
    assert.equal(deny.handle(fakeContext()), CONTINUE);
    assert.deepEqual(recorded, [{ ...where, code: 'forbidden', detail: 'not in group', requestId: 'req-1' }]);
    assert.ok(isShadowPolicy(deny));
    assert.equal(deny.shadow.policy, 'default/trial');

    const pass = shadowPolicy(
      policy(() => SKIP),
      where,
      (d) => recorded.push(d),
    );
    assert.equal(pass.handle(fakeContext()), SKIP);
    const later = shadowPolicy(
      policy(async () => CONTINUE),
      where,
      (d) => recorded.push(d),
    );
    assert.equal(await later.handle(fakeContext()), CONTINUE);
    assert.equal(recorded.length, 1);
  });

  test('asynchronous denials and exceptions are recorded too, never answered', async () => {
    const recorded: ShadowDenial[] = [];
    const record = (d: ShadowDenial) => recorded.push(d);
    const asyncDeny = shadowPolicy(
      policy(async () => respond('insufficient_scope')),
      where,
      record,
    );
    assert.equal(await asyncDeny.handle(fakeContext()), CONTINUE);
    const throws = shadowPolicy(
      policy(() => {
        throw new Error('bug');
      }),
      where,
      record,
    );
    assert.equal(throws.handle(fakeContext()), CONTINUE);
    const rejects = shadowPolicy(
      policy(() => Promise.reject(new Error('async bug'))),
      where,
      record,
    );
    assert.equal(await rejects.handle(fakeContext()), CONTINUE);
    assert.deepEqual(
      recorded.map((d) => `${d.code} ${d.detail ?? ''}`),
      ['insufficient_scope ', 'internal_error bug', 'internal_error async bug'],
    );
  });
});

describe('keepEstablishedCaller', () => {
  const anonymous = policy((ctx) => {
    ctx.identity = { method: 'noAuth', subject: null };
    return CONTINUE;
  });
  const alice = policy(async (ctx) => {
    ctx.identity = { method: 'apiKey', subject: 'alice' };
    return CONTINUE;
  });

  test('an anonymous success does not replace a caller an earlier chain established', () => {
    const ctx = fakeContext();
    ctx.identity = { method: 'jwt', subject: 'bob' };
    assert.equal(keepEstablishedCaller(anonymous).handle(ctx), CONTINUE);
    assert.equal(ctx.identity?.subject, 'bob');
  });

  test('an established caller replaces an earlier one; with none before, anonymous stands', async () => {
    const ctx = fakeContext();
    ctx.identity = { method: 'jwt', subject: 'bob' };
    assert.equal(await keepEstablishedCaller(alice).handle(ctx), CONTINUE);
    assert.equal(ctx.identity?.subject, 'alice');
    const fresh = fakeContext();
    keepEstablishedCaller(anonymous).handle(fresh);
    assert.deepEqual(fresh.identity, { method: 'noAuth', subject: null });
  });
});
