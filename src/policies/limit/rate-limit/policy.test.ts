import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fakeContext } from '../../../../test/helpers/fake-context.ts';
import { formatConfigError } from '../../../config/errors.ts';
import { parseResources } from '../../../config/load.ts';
import type { Identity, RequestContext } from '../../../gateway/context.ts';
import { compilePlan } from '../../../plan/compile.ts';
import { LocalBackend } from '../../../ratelimit/local.ts';
import { RateLimitMetrics } from '../../../ratelimit/metrics.ts';
import { FAILED, type RateLimitBackend } from '../../../ratelimit/types.ts';
import type { CompiledPolicy, PolicyDeps, Verdict } from '../../types.ts';
import { counterValue } from './keys.ts';
import { type RateLimitConfig, rateLimit } from './policy.ts';

const rule = { id: 'default/shop#0', template: '/tenants/{tenant}/orders/{id}' };

function deps(
  backend: RateLimitBackend,
  options: { policy?: PolicyDeps['policy']; metrics?: RateLimitMetrics } = {},
): PolicyDeps {
  const metrics = options.metrics ?? new RateLimitMetrics();
  return { rateLimiter: () => ({ backend, metrics }), rule, policy: options.policy ?? null } as Pick<
    PolicyDeps,
    'rateLimiter' | 'rule' | 'policy'
  > as PolicyDeps;
}

function local(): LocalBackend {
  return new LocalBackend({ maxKeys: 1000, now: () => 1_000_000 });
}

function compile(config: RateLimitConfig, backend: RateLimitBackend = local(), d?: Partial<PolicyDeps>) {
  return rateLimit.compile(config, { ...deps(backend), ...d });
}

function request(
  options: {
    client?: string;
    identity?: Identity;
    headers?: Record<string, string>;
    params?: Record<string, string>;
  } = {},
): RequestContext {
  const ctx = fakeContext({ headers: options.headers, params: options.params, identity: options.identity });
  return { ...ctx, client: { ...ctx.client, address: options.client ?? '203.0.113.7' } };
}

function run(policy: CompiledPolicy, ctx: RequestContext): Verdict {
  const verdict = policy.handle(ctx);
  assert.ok(!(verdict instanceof Promise), 'the local backend answers synchronously');
  return verdict;
}

/** Verdicts of `n` requests made by `make` (a new context each time). */
function verdicts(policy: CompiledPolicy, n: number, make: () => RequestContext): string[] {
  return Array.from({ length: n }, () => run(policy, make()).kind);
}

describe('rateLimit keys', () => {
  test('client: one counter per client address', () => {
    const policy = compile([{ limit: 2, window: '1m', key: 'client' }]);
    assert.deepEqual(
      verdicts(policy, 3, () => request({ client: '198.51.100.1' })),
      ['continue', 'continue', 'respond'],
    );
    assert.equal(run(policy, request({ client: '198.51.100.2' })).kind, 'continue');
  });

  test('subject and consumer; a request without one is counted by its client address', () => {
    const policy = compile([{ limit: 1, window: '1m', key: 'subject' }]);
    const alice = { method: 'jwt', subject: 'alice' };
    assert.equal(run(policy, request({ identity: alice })).kind, 'continue');
    assert.equal(run(policy, request({ identity: alice, client: '198.51.100.9' })).kind, 'respond');
    const anonymous = { method: 'noAuth', subject: null };
    assert.equal(run(policy, request({ identity: anonymous, client: '198.51.100.1' })).kind, 'continue');
    assert.equal(run(policy, request({ identity: anonymous, client: '198.51.100.1' })).kind, 'respond');
    assert.equal(run(policy, request({ identity: anonymous, client: '198.51.100.2' })).kind, 'continue');
    // A subject that happens to look like an address does not share the address's fallback counter.
    assert.equal(
      run(policy, request({ identity: { method: 'jwt', subject: '198.51.100.2' } })).kind,
      'continue',
    );

    const byConsumer = compile([{ limit: 1, window: '1m', key: 'consumer' }]);
    const partner = (name: string): Identity => ({
      method: 'apiKey',
      subject: name,
      consumer: { name, groups: [], metadata: {} },
    });
    assert.equal(run(byConsumer, request({ identity: partner('a') })).kind, 'continue');
    assert.equal(run(byConsumer, request({ identity: partner('a'), client: '192.0.2.1' })).kind, 'respond');
    assert.equal(run(byConsumer, request({ identity: partner('b') })).kind, 'continue');
  });

  test('header, claim and path parameter', () => {
    const byHeader = compile([{ limit: 1, window: '1m', key: 'header:X-Tenant' }]);
    assert.equal(run(byHeader, request({ headers: { 'x-tenant': 'acme' } })).kind, 'continue');
    assert.equal(
      run(byHeader, request({ headers: { 'x-tenant': 'acme' }, client: '192.0.2.1' })).kind,
      'respond',
    );
    assert.equal(run(byHeader, request({ headers: { 'x-tenant': 'globex' } })).kind, 'continue');
    assert.equal(
      run(byHeader, request({ headers: { 'x-tenant': '' }, client: '192.0.2.50' })).kind,
      'continue',
    );

    const byClaim = compile([{ limit: 1, window: '1m', key: 'claim:tenant' }]);
    const claims = (tenant: unknown): Identity => ({ method: 'jwt', subject: 's', claims: { tenant } });
    assert.equal(run(byClaim, request({ identity: claims('acme') })).kind, 'continue');
    assert.equal(run(byClaim, request({ identity: claims('acme') })).kind, 'respond');
    assert.equal(run(byClaim, request({ identity: claims(42) })).kind, 'continue');
    assert.equal(
      run(byClaim, request({ identity: claims({ not: 'one caller' }), client: '192.0.2.7' })).kind,
      'continue',
    );

    const byPath = compile([{ limit: 1, window: '1m', key: 'path:tenant' }]);
    assert.equal(run(byPath, request({ params: { tenant: 'acme', id: '1' } })).kind, 'continue');
    assert.equal(run(byPath, request({ params: { tenant: 'acme', id: '2' } })).kind, 'respond');
    assert.equal(run(byPath, request({ params: { tenant: 'globex', id: '1' } })).kind, 'continue');
  });

  test('route: everyone on the rule shares one counter', () => {
    const policy = compile([{ limit: 2, window: '1m', key: 'route' }]);
    assert.deepEqual(
      ['192.0.2.1', '192.0.2.2', '192.0.2.3'].map((client) => run(policy, request({ client })).kind),
      ['continue', 'continue', 'respond'],
    );
  });

  test('long or unusual values are hashed; plain ones kept', () => {
    assert.equal(counterValue('alice@example.com'), 'alice@example.com');
    assert.match(counterValue('x'.repeat(65)), /^#[\w-]{22}$/);
    assert.match(counterValue('a}b{c'), /^#[\w-]{22}$/);
    assert.notEqual(counterValue('a b'), counterValue('a_b'));
  });
});

describe('rateLimit answers', () => {
  test('RateLimit-Policy and RateLimit on every answer, 429 with Retry-After when refused', () => {
    const policy = compile([
      { limit: 3, window: '1s', key: 'client', name: 'default' },
      { limit: 1000, window: '1m', key: 'route' },
    ]);
    const seen: Array<[string | undefined, string | undefined]> = [];
    let refused: Verdict | undefined;
    for (let i = 0; i < 4; i++) {
      const ctx = request();
      const verdict = run(policy, ctx);
      seen.push([ctx.responseHeaders?.get('ratelimit-policy'), ctx.responseHeaders?.get('ratelimit')]);
      if (verdict.kind === 'respond') refused = verdict;
    }
    const policyHeader = '"default";q=3;w=1, "route-1000-per-1m";q=1000;w=60';
    assert.deepEqual(seen, [
      [policyHeader, '"default";r=2;t=1'],
      [policyHeader, '"default";r=1;t=1'],
      [policyHeader, '"default";r=0;t=1'],
      [policyHeader, '"default";r=0;t=1'],
    ]);
    assert.ok(refused?.kind === 'respond');
    assert.equal(refused.code, 'rate_limited');
    assert.deepEqual(refused.headers, { 'retry-after': '1' });
    assert.equal(refused.detail, 'limit default reached (3 requests per 1s by client)');
  });

  test('the most restrictive limit is reported; ties go to the longer wait', () => {
    const policy = compile([
      { limit: 100, window: '1s', key: 'client', name: 'fast' },
      { limit: 5, window: '1h', key: 'client', name: 'hourly' },
    ]);
    const ctx = request();
    run(policy, ctx);
    assert.equal(ctx.responseHeaders?.get('ratelimit'), '"hourly";r=4;t=720');
  });

  test('limits of two scopes: every list in RateLimit-Policy, the tighter in RateLimit, the longer Retry-After', () => {
    const backend = local();
    const platform = compile([{ limit: 2, window: '1m', key: 'client', name: 'platform' }], backend, {
      policy: { name: 'default/base', mode: 'enforce' },
    });
    const own = compile([{ limit: 10, window: '1s', key: 'client', name: 'own' }], backend);
    const both = (ctx: RequestContext) => {
      const first = run(platform, ctx);
      return first.kind === 'respond' ? first : run(own, ctx);
    };
    const ctx = request();
    both(ctx);
    assert.equal(ctx.responseHeaders?.get('ratelimit-policy'), '"platform";q=2;w=60, "own";q=10;w=1');
    assert.equal(ctx.responseHeaders?.get('ratelimit'), '"platform";r=1;t=30');
    const second = request();
    both(second);
    assert.equal(second.responseHeaders?.get('ratelimit'), '"platform";r=0;t=30');

    // The platform list admits a request the rule's list then refuses: Retry-After waits for both.
    const tightOwn = compile([{ limit: 1, window: '1s', key: 'client', name: 'own' }], backend);
    const loosePlatform = compile([{ limit: 1, window: '1h', key: 'client', name: 'hour' }], backend, {
      policy: { name: 'default/hourly', mode: 'enforce' },
    });
    const c1 = request({ client: '192.0.2.99' });
    run(tightOwn, c1);
    const c2 = request({ client: '192.0.2.99' });
    assert.equal(run(loosePlatform, c2).kind, 'continue');
    const refused = run(tightOwn, c2);
    assert.ok(refused.kind === 'respond');
    assert.deepEqual(refused.headers, { 'retry-after': '3600' });
  });

  test('a shadow Policy counts and refuses (recorded by the shadow wrapper) but sets no header', () => {
    const policy = compile([{ limit: 1, window: '1m', key: 'client' }], local(), {
      policy: { name: 'default/trial', mode: 'shadow' },
    });
    const first = request();
    assert.equal(run(policy, first).kind, 'continue');
    const second = request();
    assert.equal(run(policy, second).kind, 'respond');
    assert.equal(first.responseHeaders, undefined);
    assert.equal(second.responseHeaders, undefined);
  });

  test('backend failure: 503 rate_limit_unavailable when closed, admitted when open; counted', async () => {
    const failing = (failOpen: boolean): RateLimitBackend => ({
      kind: 'redis',
      prefix: '',
      failOpen,
      take: () => Promise.resolve(FAILED),
      close: async () => {},
    });
    const metrics = new RateLimitMetrics();
    const closed = rateLimit.compile(
      [{ limit: 1, window: '1s', key: 'client' }],
      deps(failing(false), { metrics }),
    );
    const open = rateLimit.compile(
      [{ limit: 1, window: '1s', key: 'client' }],
      deps(failing(true), { metrics }),
    );
    const refused = await closed.handle(request());
    assert.ok(refused.kind === 'respond');
    assert.equal(refused.code, 'rate_limit_unavailable');
    assert.equal((await open.handle(request())).kind, 'continue');
    assert.deepEqual(
      { ...metrics.route(rule.id) },
      { allowed: 0, limited: 0, failedOpen: 1, failedClosed: 1 },
    );
  });
});

describe('rateLimit compile errors', () => {
  test('windows in whole seconds, unique names, path parameters of the rule', () => {
    assert.throws(() => compile([{ limit: 1, window: '500ms', key: 'client' }]), /whole number of seconds/);
    assert.throws(() => compile([{ limit: 1, window: '1500ms', key: 'client' }]), /whole number of seconds/);
    assert.throws(
      () =>
        compile([
          { limit: 1, window: '1s', key: 'client', name: 'x' },
          { limit: 2, window: '1s', key: 'route', name: 'x' },
        ]),
      /two limits are named x/,
    );
    assert.throws(() => compile([{ limit: 1, window: '1s', key: 'path:user' }]), /has no parameter \{user\}/);
  });
});

// The rule field `rateLimit` itself, in rules and Policies, through the real compiler.
describe('rateLimit in the configuration', () => {
  const config = (extra: string) => `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, port: 8080 }]
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: echo }
spec: { targets: [{ url: http://127.0.0.1:9 }] }
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: shop, labels: { app: shop } }
spec:
  gateway: edge
  upstream: echo
  rules:
    - path: /orders/{id}
      authenticate: [{ noAuth: {} }]
      rateLimit: [{ limit: 10, window: 1s, key: subject }, { limit: 1000, window: 1m, key: route }]
    - { path: /health, authenticate: [{ noAuth: {} }] }
${extra}`;

  function compileText(text: string) {
    const parsed = parseResources(text, 'rl.yaml');
    if (parsed.errors.length > 0) return { problems: parsed.errors.map(formatConfigError), plan: null };
    const result = compilePlan(parsed.resources, { gatewayName: 'edge' });
    return result.ok
      ? { problems: [], plan: result.plan }
      : { problems: result.errors.map(formatConfigError), plan: null };
  }

  test('written directly in a rule; a Policy of any scope adds its own list (they accumulate)', () => {
    const { problems, plan } = compileText(
      config(`---
apiVersion: gatehouse.dev/v1
kind: Policy
metadata: { name: platform }
spec:
  targetRef: { kind: Gateway, name: edge }
  rateLimit: [{ limit: 100, window: 1s, key: client }]
---
apiVersion: gatehouse.dev/v1
kind: Policy
metadata: { name: shop-limits }
spec:
  targetRef: { kind: APIRule, selector: { app: shop } }
  rateLimit: [{ limit: 50, window: 1s, key: client }]
`),
    );
    assert.deepEqual(problems, []);
    const stagesOf = (index: number) =>
      plan!.rules[index]!.pipeline.map((s) => `${s.stage}: ${s.policies.map((p) => p.name).join(', ')}`);
    assert.deepEqual(stagesOf(0), ['authenticate: noAuth', 'limit: rateLimit, rateLimit, rateLimit']);
    assert.deepEqual(stagesOf(1), ['authenticate: noAuth', 'limit: rateLimit, rateLimit']);
    assert.ok(plan!.rateLimiter?.kind === 'local', 'the plan keeps the backend its rules use');
  });

  test('the old object form does not exist; problems are reported at rateLimit', () => {
    const nested = compileText(
      config('')
        .replace('rateLimit: [{ limit: 10', 'limit: { rateLimit: [{ limit: 10')
        .replace('key: route }]', 'key: route }] }'),
    );
    assert.equal(nested.problems.length, 1);
    assert.match(nested.problems[0]!, /spec\.rules\[0\]\.limit/);

    const badPath = compileText(config('').replace('key: subject', 'key: path:user'));
    assert.equal(badPath.problems.length, 1);
    assert.match(
      badPath.problems[0]!,
      /^rl\.yaml:21:\d+: spec\.rules\[0\]\.rateLimit: limit 0: key path:user/,
    );

    const inPolicy = compileText(
      config(`---
apiVersion: gatehouse.dev/v1
kind: Policy
metadata: { name: platform }
spec:
  targetRef: { kind: Gateway, name: edge }
  rateLimit: [{ limit: 1, window: 250ms, key: client }]
`),
    );
    assert.equal(inPolicy.problems.length, 1, 'reported once however many rules the Policy applies to');
    assert.match(
      inPolicy.problems[0]!,
      /spec\.rateLimit: limit 0: window 250ms must be a whole number of seconds/,
    );
  });

  test('the Gateway section is checked: redis settings need backend redis, one connection kind', () => {
    const withSection = (section: string) =>
      compileText(
        config('').replace(
          'listeners: [{ name: public, port: 8080 }]',
          `listeners: [{ name: public, port: 8080 }]\n  rateLimits: ${section}`,
        ),
      );
    assert.deepEqual(
      withSection('{ backend: redis, redis: { url: "redis://127.0.0.1:6379" } }').problems,
      [],
    );
    assert.match(
      withSection('{ backend: redis }').problems[0]!,
      /spec\.rateLimits\.backend: backend redis needs a `redis` section/,
    );
    assert.match(
      withSection('{ redis: { url: "redis://127.0.0.1:6379" } }').problems[0]!,
      /spec\.rateLimits\.redis: only used with backend: redis/,
    );
    assert.match(
      withSection('{ backend: redis, redis: { url: "redis://a:1", cluster: { nodes: ["redis://b:2"] } } }')
        .problems[0]!,
      /give exactly one of url, cluster, sentinel/,
    );
    assert.match(
      withSection('{ batching: { enabled: true } }').problems[0]!,
      /batching is for backend: redis/,
    );
  });
});
