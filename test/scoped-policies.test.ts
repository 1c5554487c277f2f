import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { formatConfigError } from '../src/config/errors.ts';
import { parseResources } from '../src/config/load.ts';
import { type CompileResult, compilePlan } from '../src/plan/compile.ts';
import type { Plan } from '../src/plan/types.ts';
import { httpRequest } from './helpers/http.ts';
import {
  freePort,
  type RunningProcess,
  startGateway,
  tempConfigDir,
  writeConfig,
} from './helpers/process.ts';
import { type EchoUpstream, startEchoUpstream } from './helpers/upstream.ts';

const base = (upstreamUrl = 'http://127.0.0.1:9') => `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, port: 8080 }]
---
apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: internal }
spec:
  listeners: [{ name: public, port: 8081 }]
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: echo }
spec: { targets: [{ url: ${upstreamUrl} }] }
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: shop, labels: { app: shop, tier: web } }
spec:
  gateway: edge
  upstream: echo
  rules:
    - { path: /orders, authenticate: [{ noAuth: {} }] }
    - { path: /public, authenticate: [{ noAuth: {} }] }
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: billing, labels: { app: billing } }
spec:
  gateway: edge
  upstream: echo
  rules:
    - { path: /invoices, authenticate: [{ noAuth: {} }] }
`;

function policy(name: string, spec: string, namespace?: string): string {
  const ns = namespace ? `, namespace: ${namespace}` : '';
  return `---\napiVersion: gatehouse.dev/v1\nkind: Policy\nmetadata: { name: ${name}${ns} }\nspec:\n${spec}`;
}

function compile(text: string): CompileResult & { problems: string[] } {
  const parsed = parseResources(text, 'policies.yaml');
  if (parsed.errors.length > 0)
    return { ok: false, errors: parsed.errors, problems: parsed.errors.map(formatConfigError) };
  const result = compilePlan(parsed.resources, { gatewayName: 'edge' });
  return { ...result, problems: result.ok ? [] : result.errors.map(formatConfigError) };
}

function planOf(text: string): Plan {
  const result = compile(text);
  assert.deepEqual(result.problems, []);
  assert.ok(result.ok);
  return result.plan;
}

function lineOf(text: string, fragment: string): number {
  const index = text.split('\n').findIndex((line) => line.includes(fragment));
  assert.notEqual(index, -1, `no line with ${fragment}`);
  return index + 1;
}

describe('Policy resources (compile)', () => {
  test('a targetRef to nothing that exists is an error at the field’s line', () => {
    const text =
      base() +
      policy('no-gateway', '  targetRef: { kind: Gateway, name: edgy }\n  authorize: { groups: [staff] }\n') +
      policy(
        'no-rule',
        '  targetRef: { kind: APIRule, name: shop, rule: 2 }\n  authorize: { groups: [a] }\n',
      ) +
      policy('no-apirule', '  targetRef: { kind: APIRule, name: shoppe }\n  authorize: { groups: [a] }\n') +
      policy(
        'no-match',
        '  targetRef: { kind: APIRule, selector: { app: shop, tier: db } }\n  authorize: { groups: [a] }\n',
      ) +
      policy(
        'elsewhere',
        '  targetRef: { kind: Gateway, name: edge }\n  authorize: { groups: [a] }\n',
        'team-a',
      );
    const { problems } = compile(text);
    assert.deepEqual(
      problems.map((p) => p.replace(/:\d+: /, ': ')),
      [
        `policies.yaml:${lineOf(text, 'name: edgy')}: spec.targetRef.name: no Gateway named edgy in namespace default`,
        `policies.yaml:${lineOf(text, 'rule: 2')}: spec.targetRef.rule: APIRule default/shop has 2 rule(s): no index 2`,
        `policies.yaml:${lineOf(text, 'name: shoppe')}: spec.targetRef.name: no APIRule named shoppe in namespace default`,
        `policies.yaml:${lineOf(text, 'tier: db')}: spec.targetRef.selector: matches no APIRule in namespace default`,
        `policies.yaml:${lineOf(text, 'name: elsewhere') + 2}: spec.targetRef.name: no Gateway named edge in namespace team-a`,
      ],
    );
  });

  test('targetRef shapes that mean nothing, shadow authenticate and empty Policies are refused', () => {
    const text =
      base() +
      policy(
        'both',
        '  targetRef: { kind: APIRule, name: shop, selector: { app: shop } }\n  authorize: { groups: [a] }\n',
      ) +
      policy(
        'gw-selector',
        '  targetRef: { kind: Gateway, name: edge, selector: { app: shop } }\n  authorize: { groups: [a] }\n',
      ) +
      policy('neither', '  targetRef: { kind: APIRule }\n  authorize: { groups: [a] }\n') +
      policy(
        'shadow-authn',
        '  targetRef: { kind: Gateway, name: edge }\n  mode: shadow\n  authenticate: [{ noAuth: {} }]\n',
      ) +
      policy(
        'shadow-mutate',
        '  targetRef: { kind: Gateway, name: edge }\n  mode: shadow\n  mutate: { headers: { X-A: b } }\n',
      ) +
      policy('empty', '  targetRef: { kind: Gateway, name: edge }\n');
    const { problems } = compile(text);
    assert.deepEqual(
      problems.map((p) => p.replace(/^policies\.yaml:\d+:\d+: /, '').replace(/: shadow only .*/, '')),
      [
        'spec.targetRef.name: give either name or selector, not both',
        'spec.targetRef.selector: only for kind APIRule',
        'spec.targetRef.name: kind APIRule needs a name or a selector',
        'spec.authenticate: not allowed in shadow mode',
        'spec.mutate: not allowed in shadow mode',
        'spec: a Policy sets at least one of: request, authenticate, authorize, rateLimit, mutate',
      ],
    );
    assert.match(problems[3]!, new RegExp(`^policies\\.yaml:${lineOf(text, '  authenticate: [{ noAuth')}:`));
    assert.match(problems[4]!, new RegExp(`^policies\\.yaml:${lineOf(text, 'mutate: { headers')}:`));
  });

  test('an unusable config in a Policy is reported once, at the Policy, whatever the number of rules', () => {
    const text =
      base() +
      policy(
        'bad',
        '  targetRef: { kind: Gateway, name: edge }\n  authorize: { deny: [{ group: x, equals: 1 }] }\n',
      );
    const { problems } = compile(text);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(
      problems[0]!,
      new RegExp(`^policies\\.yaml:${lineOf(text, 'deny: [')}:16: spec\\.authorize\\.deny: condition 0: `),
    );
  });

  test('two Policies of one scope setting the same header for a rule are refused; across scopes they merge', () => {
    const text =
      base() +
      policy(
        'a',
        '  targetRef: { kind: APIRule, name: shop }\n  mutate: { headers: { X-Team: a, X-A: a } }\n',
      ) +
      policy(
        'b',
        '  targetRef: { kind: APIRule, name: shop, rule: 1 }\n  mutate: { headers: { x-team: b } }\n',
      );
    const { problems } = compile(text);
    assert.deepEqual(problems, [
      `policies.yaml:${lineOf(text, 'x-team: b')}:24: spec.mutate.headers.x-team: also set by Policy ` +
        'default/a at the same service scope, for a rule both apply to: ambiguous, so refused ' +
        '(set it in one of them, or at a more specific scope)',
    ]);
    const merged = compile(
      base() +
        policy(
          'a',
          '  targetRef: { kind: Gateway, name: edge }\n  mutate: { headers: { X-Team: a, X-A: a } }\n',
        ) +
        policy(
          'b',
          '  targetRef: { kind: APIRule, name: shop, rule: 1 }\n  mutate: { headers: { x-team: b } }\n',
        ),
    );
    assert.deepEqual(merged.problems, []);
  });

  test('the plan records the Policies of each rule: by scope, then by name; other gateways’ left out', () => {
    const plan = planOf(
      base() +
        policy(
          'zz-platform',
          '  targetRef: { kind: Gateway, name: edge }\n  authorize: { groups: [staff] }\n',
        ) +
        policy(
          'aa-platform',
          '  targetRef: { kind: Gateway, name: edge }\n  authorize: { groups: [staff] }\n',
        ) +
        policy(
          'internal-only',
          '  targetRef: { kind: Gateway, name: internal }\n  authorize: { groups: [ops] }\n',
        ) +
        policy(
          'web',
          '  targetRef: { kind: APIRule, selector: { tier: web } }\n  authorize: { groups: [web] }\n',
        ) +
        policy(
          'orders-trial',
          '  targetRef: { kind: APIRule, name: shop, rule: 0 }\n  mode: shadow\n  authorize: { groups: [admins] }\n',
        ) +
        policy('a-shop', '  targetRef: { kind: APIRule, name: shop }\n  authenticate: [{ apiKey: {} }]\n'),
    );
    const byRule = Object.fromEntries(
      plan.rules.map((r) => [r.id, r.policies.map((p) => `${p.scope} ${p.name} ${p.mode}`)]),
    );
    assert.deepEqual(byRule, {
      'default/shop#0': [
        'platform default/aa-platform enforce',
        'platform default/zz-platform enforce',
        'application default/web enforce',
        'service default/a-shop enforce',
        'service default/orders-trial shadow',
      ],
      'default/shop#1': [
        'platform default/aa-platform enforce',
        'platform default/zz-platform enforce',
        'application default/web enforce',
        'service default/a-shop enforce',
      ],
      'default/billing#0': ['platform default/aa-platform enforce', 'platform default/zz-platform enforce'],
    });
    const orders = plan.rules.find((r) => r.id === 'default/shop#0')!;
    assert.deepEqual(
      orders.pipeline.map((s) => `${s.stage}: ${s.policies.map((p) => p.name).join(' ')}`),
      [
        'authenticate: apiKey', // the Policy's chain first, then the rule's own
        'authenticate: noAuth',
        'authorize: groups groups groups shadow:groups',
      ],
    );
  });
});

// ---------------------------------------------------------------------------------------------
// A real gateway: API keys of Consumers, groups, a platform Policy enforced and a service Policy
// in shadow mode.

const keys = { alice: 'alice-key-0123456789', bob: 'bob-key-0123456789', eve: 'eve-key-0123456789' };
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

function consumer(name: string, key: string, groups: string[]): string {
  return `---
apiVersion: gatehouse.dev/v1
kind: Consumer
metadata: { name: ${name} }
spec:
  apiKeys: [{ name: test, sha256: ${sha256(key)} }]
  groups: [${groups.join(', ')}]
`;
}

describe('scoped policies on a running gateway', () => {
  let upstream: EchoUpstream;
  let gateway: RunningProcess;
  let port: number;
  let adminPort: number;

  before(async () => {
    upstream = await startEchoUpstream();
    port = await freePort();
    adminPort = await freePort();
    const dir = tempConfigDir();
    const config = `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, address: 127.0.0.1, port: ${port} }]
  admin: { port: ${adminPort} }
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: echo }
spec: { targets: [{ url: ${upstream.url} }] }
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: shop, labels: { app: shop } }
spec:
  gateway: edge
  upstream: echo
  rules:
    - { path: /orders, methods: [GET], authenticate: [{ apiKey: {} }] }
    - { path: /public, methods: [GET], authenticate: [{ noAuth: {} }] }
${policy('staff-only', '  targetRef: { kind: Gateway, name: edge }\n  authorize: { groups: [staff] }\n')}
${policy('stamp', '  targetRef: { kind: Gateway, name: edge }\n  mutate: { headers: { X-Env: platform, X-Scope: platform } }\n')}
${policy('orders-stamp', '  targetRef: { kind: APIRule, name: shop, rule: 0 }\n  mutate: { headers: { x-scope: service, X-Caller: "{{ identity.sub }}" } }\n')}
${policy('shop-keys', '  targetRef: { kind: APIRule, selector: { app: shop } }\n  authenticate: [{ apiKey: {} }]\n')}
${policy(
  'admins-trial',
  '  targetRef: { kind: APIRule, name: shop, rule: 0 }\n  mode: shadow\n  authorize: { groups: [admins] }\n',
)}
${consumer('alice', keys.alice, ['staff'])}${consumer('bob', keys.bob, ['staff', 'admins'])}${consumer('eve', keys.eve, ['visitors'])}`;
    writeConfig(dir, 'gateway.yaml', config);
    gateway = await startGateway([dir], ['--no-watch']);
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
  });

  const get = (path: string, key?: string) =>
    httpRequest(port, path, { headers: key ? { 'x-api-key': key } : {} });

  async function shadowCount(): Promise<number> {
    const text = (await httpRequest(adminPort, '/metrics')).body;
    const line = text
      .split('\n')
      .find(
        (l) =>
          l.startsWith('gatehouse_shadow_denials_total{') &&
          l.includes('policy="default/admins-trial"') &&
          l.includes('route="default/shop#0"') &&
          l.includes('code="forbidden"'),
      );
    return line === undefined ? 0 : Number(line.split(' ').at(-1));
  }

  test('a staff consumer passes; the shadow Policy’s would-be denial is logged and counted', async () => {
    const res = await get('/orders', keys.alice);
    assert.equal(res.status, 200);
    const requestId = res.headers['x-request-id'];
    assert.equal(typeof requestId, 'string');
    await gateway.waitFor(/"msg":"shadow deny"/, 15_000);
    const line = gateway.logs().find((l) => l.msg === 'shadow deny' && l.requestId === requestId);
    assert.ok(line, 'a shadow deny line for the request');
    assert.equal(line.policy, 'default/admins-trial');
    assert.equal(line.route, 'default/shop#0');
    assert.equal(line.code, 'forbidden');
    assert.equal(await shadowCount(), 1);
    // Headers of the platform and the service Policies, merged by name, the more specific winning.
    const seen = upstream.requests.at(-1)!.headers;
    assert.equal(seen['x-env'], 'platform');
    assert.equal(seen['x-scope'], 'service');
    assert.equal(seen['x-caller'], 'alice');
  });

  test('enforced Policies are unaffected: outside the platform group is 403, no key is 401', async () => {
    const before = await shadowCount();
    const outsider = await get('/orders', keys.eve);
    assert.equal(outsider.status, 403);
    assert.equal(outsider.json().code, 'forbidden');
    assert.equal((await get('/orders')).status, 401);
    const admin = await get('/orders', keys.bob);
    assert.equal(admin.status, 200);
    // eve was denied by the enforced Policy before the shadow one ran; bob is an admin.
    assert.equal(await shadowCount(), before);
  });

  test('a Policy’s authenticate is required on top of the rule’s, and its caller is kept', async () => {
    assert.equal((await get('/public')).status, 401, 'the application Policy requires an API key');
    // The rule says noAuth, but the caller the Policy established is what authorize sees.
    assert.equal((await get('/public', keys.alice)).status, 200);
    assert.equal((await get('/public', keys.eve)).status, 403);
    assert.equal((await get('/public', 'not-a-key')).status, 401);
  });

  test('the admin /plan lists the Policies of each rule', async () => {
    const plan = (await httpRequest(adminPort, '/plan')).json<{
      rules: Array<{ id: string; policies: Array<{ name: string; scope: string; mode: string }> }>;
    }>();
    assert.deepEqual(
      plan.rules.map((r) => [r.id, r.policies.map((p) => `${p.scope}:${p.name}:${p.mode}`)]),
      [
        [
          'default/shop#0',
          [
            'platform:default/staff-only:enforce',
            'platform:default/stamp:enforce',
            'application:default/shop-keys:enforce',
            'service:default/admins-trial:shadow',
            'service:default/orders-stamp:enforce',
          ],
        ],
        [
          'default/shop#1',
          [
            'platform:default/staff-only:enforce',
            'platform:default/stamp:enforce',
            'application:default/shop-keys:enforce',
          ],
        ],
      ],
    );
  });
});
