import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatConfigError } from '../src/config/errors.ts';
import { loadConfig } from '../src/config/load.ts';
import { kinds } from '../src/config/schemas/index.ts';
import { compilePlan } from '../src/plan/compile.ts';
import { runCli, tempConfigDir, writeConfig } from './helpers/process.ts';

const gateway = `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, port: 8080 }]
`;
const upstream = `apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: orders }
spec: { targets: [{ url: http://127.0.0.1:7001 }] }
`;

function problemsOf(files: Record<string, string>): string[] {
  const dir = tempConfigDir();
  for (const [name, text] of Object.entries(files)) writeConfig(dir, name, text);
  const loaded = loadConfig([dir]);
  const errors = [...loaded.errors];
  if (errors.length === 0) {
    const compiled = compilePlan(loaded.resources);
    if (!compiled.ok) errors.push(...compiled.errors);
  }
  return errors.map((e) => formatConfigError({ ...e, file: e.file.slice(dir.length + 1) }));
}

test('a directory of multi-document files loads, with defaults applied', () => {
  const dir = tempConfigDir();
  writeConfig(dir, 'a.yaml', `${gateway}---\n${upstream}`);
  writeConfig(
    dir,
    'b.yml',
    `apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: orders }
spec:
  gateway: edge
  upstream: orders
  rules: [{ path: /orders, authenticate: [{ noAuth: {} }] }]
`,
  );
  writeConfig(dir, 'notes.txt', 'not config');
  const loaded = loadConfig([dir]);
  assert.deepEqual(loaded.errors, []);
  assert.deepEqual(
    loaded.resources.map((r) => r.kind),
    ['Gateway', 'Upstream', 'APIRule'],
  );
  const gw = loaded.resources[0]!;
  assert.equal(gw.metadata.namespace, 'default');
  assert.deepEqual((gw.spec as { limits: unknown }).limits, {
    maxHeaderBytes: 16384,
    maxBodyBytes: 10485760,
    requestTimeout: '30s',
    idleTimeout: '60s',
  });
  const compiled = compilePlan(loaded.resources);
  assert.ok(compiled.ok);
  assert.equal(compiled.plan.router.match('x', 'GET', '/orders')?.value.id, 'default/orders#0');
});

test('every schema problem of a file is reported at once, with line, column and field path', () => {
  const problems = problemsOf({
    'bad.yaml': `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  mode: ingres
  listeners:
    - name: public
      port: 99999
      bogus: 1
  limits: { requestTimeout: soon }
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: orders }
spec:
  gateway: edge
  upstream: orders
  rules:
    - path: /a
      authenticate: [{ magic: {} }]
    - path: /b
---
apiVersion: gatehouse.dev/v1
kind: Nope
`,
  });
  assert.deepEqual(problems, [
    'bad.yaml:5:3: spec.mode: must be one of: ingress, egress, sidecar',
    'bad.yaml:9:7: spec.listeners[0].bogus: unknown field',
    'bad.yaml:8:7: spec.listeners[0].port: must be <= 65535',
    'bad.yaml:10:13: spec.limits.requestTimeout: must be a duration such as 500ms, 30s, 2m or 1h',
    'bad.yaml:20:24: spec.rules[0].authenticate[0].magic: unknown field',
    'bad.yaml:21:7: spec.rules[1].authenticate: required field is missing',
    `bad.yaml:24:1: kind: unknown kind "Nope"; known kinds: ${kinds.join(', ')}`,
  ]);
});

test('YAML syntax errors name the line', () => {
  const problems = problemsOf({ 'broken.yaml': `${gateway}  oops: [unclosed\n` });
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /^broken\.yaml:\d+:\d+: YAML: /);
});

test('dangling references, duplicate names and a missing Gateway are errors', () => {
  const problems = problemsOf({
    'a.yaml': `${gateway}---\n${upstream}---\n${upstream}---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: orders }
spec:
  gateway: nowhere
  upstream: ghost
  rules:
    - path: /a
      upstream: phantom
      authenticate: [{ noAuth: {} }]
`,
  });
  assert.equal(problems.length, 4, problems.join('\n'));
  assert.match(
    problems[0]!,
    /^a\.yaml:14:13: metadata\.name: Upstream default\/orders is already defined in \S*a\.yaml:7$/,
  );
  assert.deepEqual(problems.slice(1), [
    'a.yaml:21:3: spec.gateway: no Gateway named nowhere',
    'a.yaml:22:3: spec.upstream: no Upstream named ghost in namespace default',
    'a.yaml:25:7: spec.rules[0].upstream: no Upstream named phantom in namespace default',
  ]);
});

test('overlapping rules of equal precedence are compile errors; different precedence is fine', () => {
  const rules = (paths: string[], extra = '') => `apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: r${paths.length}${extra.length} }
spec:
  gateway: edge
  upstream: orders
  rules:
${paths.map((p) => `    - { path: '${p}', methods: [GET], authenticate: [{ noAuth: {} }] }`).join('\n')}
`;
  const clash = problemsOf({ 'a.yaml': `${gateway}---\n${upstream}---\n${rules(['/o/{id}', '/o/{*}'])}` });
  assert.equal(clash.length, 1);
  assert.match(clash[0]!, /a\.yaml:\d+:\d+: spec\.rules\[1\]\.path: .*\/o\/\{id\}/);
  const ok = problemsOf({
    'a.yaml': `${gateway}---\n${upstream}---\n${rules(['/o/{id}', '/o/new', '/o/{**}'])}`,
  });
  assert.deepEqual(ok, []);
});

test('gatehouse validate exits 1 with every problem, 0 when valid', async () => {
  const dir = tempConfigDir();
  writeConfig(dir, 'gw.yaml', `${gateway}---\n${upstream}`);
  writeConfig(
    dir,
    'rules.yaml',
    `apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: orders }
spec:
  gateway: edge
  upstream: orders
  rules:
    - path: /orders
`,
  );
  const bad = runCli(['validate', dir]);
  const badExit = await bad.exited;
  assert.equal(badExit.code, 1);
  assert.match(bad.stderr(), /rules\.yaml:8:7: spec\.rules\[0\]\.authenticate: required field is missing/);
  assert.match(bad.stderr(), /1 problem\(s\) found/);

  writeConfig(
    dir,
    'rules.yaml',
    `apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: orders }
spec:
  gateway: edge
  upstream: orders
  rules: [{ path: /orders, authenticate: [{ noAuth: {} }] }]
`,
  );
  const good = runCli(['validate', dir]);
  assert.equal((await good.exited).code, 0);
  assert.match(good.stdout(), /ok: 3 resource\(s\) in 2 file\(s\)/);
});

test('gatehouse gateway refuses to start on an invalid config and says why', async () => {
  const dir = tempConfigDir();
  writeConfig(dir, 'gw.yaml', gateway.replace('port: 8080', 'port: http'));
  const proc = runCli(['gateway', '--config', dir]);
  const exit = await proc.exited;
  assert.equal(exit.code, 1);
  assert.match(proc.stderr(), /gw\.yaml:5:\d+: spec\.listeners\[0\]\.port: must be integer/);
  assert.match(proc.stderr(), /gateway not started: configuration is invalid/);
});

test('gatehouse schema prints a JSON Schema of every kind', async () => {
  const proc = runCli(['schema']);
  await proc.exited;
  const schema = JSON.parse(proc.stdout()) as { oneOf: Array<{ title: string }> };
  assert.deepEqual(
    schema.oneOf.map((s) => s.title),
    kinds,
  );
});

test('gatehouse validate checks a control plane’s config on its own (no Gateway needed)', async () => {
  const dir = tempConfigDir();
  const controlPlane = (store: string) => `apiVersion: gatehouse.dev/v1
kind: ControlPlane
metadata: { name: main }
spec:
  listen: { port: 9400 }
  store: ${store}
  operators: { tokens: [{ name: ci, sha256: ${'a'.repeat(64)}, roles: [{ namespace: "*", role: admin }] }] }
`;
  writeConfig(dir, 'cp.yaml', controlPlane('{ backend: postgres, url: { env: GATEHOUSE_TEST_UNSET_URL } }'));
  const bad = runCli(['validate', dir]);
  assert.equal((await bad.exited).code, 1);
  assert.match(
    bad.stderr(),
    /cp\.yaml:6:\d+: spec\.store\.url\.env: environment variable GATEHOUSE_TEST_UNSET_URL is not set/,
  );
  assert.doesNotMatch(bad.stderr(), /Gateway/);
  writeConfig(dir, 'cp.yaml', controlPlane('{ backend: sqlite }'));
  const good = runCli(['validate', dir]);
  assert.equal((await good.exited).code, 0, good.stderr());
});

test('a value outside a list of literals names the allowed values, also inside arrays', () => {
  const yaml = `${gateway}---
${upstream}---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: r }
spec:
  gateway: edge
  upstream: orders
  rules: [{ path: /x, methods: [GETX], authenticate: [{ noAuth: {} }] }]
`;
  const dir = tempConfigDir();
  writeConfig(dir, 'all.yaml', yaml);
  const { errors } = loadConfig([dir]);
  assert.deepEqual(
    errors.map((e) => `${e.path}: ${e.message}`),
    ['spec.rules[0].methods[0]: must be one of: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE'],
  );
});
