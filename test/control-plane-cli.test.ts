import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startControlPlane, type TestControlPlane } from './helpers/control-plane.ts';
import { freePort, runCli } from './helpers/process.ts';

const base = `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, port: 8080 }]
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: orders }
spec:
  targets: [{ url: http://127.0.0.1:7001 }]
`;

function rule(path: string, upstream = 'orders') {
  return `apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: orders, labels: { app: shop } }
spec:
  gateway: edge
  upstream: ${upstream}
  rules:
    - path: ${path}
      methods: [GET]
      authenticate: [{ noAuth: {} }]
`;
}

async function revision(cp: TestControlPlane): Promise<number> {
  const res = await cp.call('GET', '/api/v1/resources', { as: 'root' });
  return res.body.revision as number;
}

describe('gatehouse apply / diff / get / delete / audit', () => {
  let cp: TestControlPlane;
  let dir: string;

  before(async () => {
    cp = await startControlPlane({
      operators: [
        { name: 'root', roles: [{ namespace: '*', role: 'admin' }] },
        { name: 'shop-viewer', roles: [{ namespace: 'shop', role: 'viewer' }] },
      ],
    });
    dir = join(cp.dir, 'config');
    mkdirSync(dir);
    writeFileSync(join(dir, 'base.yaml'), base);
    writeFileSync(join(dir, 'rule.yaml'), rule('/orders/{id}'));
  });
  after(async () => {
    await cp?.stop();
  });

  test('apply creates, then reports unchanged and configured; -n picks the namespace', async () => {
    const first = await cp.cli(['apply', '-f', dir, '-n', 'shop']);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, 'gateway/edge created\nupstream/orders created\napirule/orders created\n');
    const again = await cp.cli(['apply', '-f', dir, '-n', 'shop']);
    assert.equal(
      again.stdout,
      'gateway/edge unchanged\nupstream/orders unchanged\napirule/orders unchanged\n',
    );

    writeFileSync(join(dir, 'rule.yaml'), rule('/orders/{key}'));
    const before = await revision(cp);
    const dry = await cp.cli(['apply', '-f', join(dir, 'rule.yaml'), '-n', 'shop', '--dry-run']);
    assert.equal(dry.stdout, 'apirule/orders configured (dry run)\n');
    assert.equal(await revision(cp), before);
    const applied = await cp.cli(['apply', '-f', join(dir, 'rule.yaml'), '-n', 'shop']);
    assert.equal(applied.code, 0);
    assert.equal(applied.stdout, 'apirule/orders configured\n');
    assert.equal(await revision(cp), before + 1);
  });

  test('diff prints the field diff and exits 1 when different, 0 when not', async () => {
    const same = await cp.cli(['diff', '-f', dir, '-n', 'shop']);
    assert.equal(same.code, 0, same.stderr);
    assert.equal(same.stdout, '');
    writeFileSync(join(dir, 'rule.yaml'), rule('/orders/{number}'));
    const different = await cp.cli(['diff', '-f', dir, '-n', 'shop']);
    assert.equal(different.code, 1, different.stderr);
    assert.match(
      different.stdout,
      /^--- apirule\/orders \(namespace shop\) resourceVersion \d+\n\+\+\+ apirule\/orders \(namespace shop\)\n/,
    );
    assert.match(different.stdout, /^- spec\.rules\[0\]\.path: "\/orders\/\{key\}"$/m);
    assert.match(different.stdout, /^\+ spec\.rules\[0\]\.path: "\/orders\/\{number\}"$/m);
    writeFileSync(join(dir, 'rule.yaml'), rule('/orders/{key}'));
  });

  test('a server-side refusal points at file:line like gatehouse validate, and changes nothing', async () => {
    const badDir = join(cp.dir, 'bad');
    mkdirSync(badDir);
    writeFileSync(
      join(badDir, 'base.yaml'),
      base.replaceAll('metadata: { name', 'metadata: { namespace: shop, name'),
    );
    writeFileSync(
      join(badDir, 'rule.yaml'),
      `# a comment to move lines\n${rule('/orders/{id}', 'missing').replace('metadata: { name', 'metadata: { namespace: shop, name')}`,
    );
    const before = await revision(cp);
    const applied = await cp.cli(['apply', '-f', badDir]);
    assert.equal(applied.code, 1);
    assert.equal(applied.stdout, '');
    const validated = runCli(['validate', badDir]);
    await validated.exited;
    const expected = `${join(badDir, 'rule.yaml')}:7:3: spec.upstream: no Upstream named missing in namespace shop`;
    assert.equal(validated.stderr().split('\n')[0], expected);
    assert.equal(applied.stderr, `${expected}\n1 problem(s) found\n`);
    assert.equal(await revision(cp), before);
  });

  test('a local schema error is reported with file:line:column and nothing is sent', async () => {
    const file = join(cp.dir, 'typo.yaml');
    writeFileSync(
      file,
      'apiVersion: gatehouse.dev/v1\nkind: Upstream\nmetadata: { name: typo }\nspec:\n  targets: [{ url: http://127.0.0.1:1 }]\n  retires: 2\n',
    );
    const before = await revision(cp);
    // Against a port nobody listens on: had anything been sent, the message would say so.
    const port = await freePort();
    const res = await cp.cli(['apply', '-f', file, '--server', `http://127.0.0.1:${port}`]);
    assert.equal(res.code, 1);
    assert.equal(res.stderr, `${file}:6:3: spec.retires: unknown field\n1 problem(s) found\n`);
    assert.equal(await revision(cp), before);
  });

  test('get prints a table, YAML or JSON, filtered by namespace and labels', async () => {
    const table = await cp.cli(['get', 'apirules']);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^NAMESPACE +NAME +VERSION +AGE$/);
    assert.match(lines[1]!, /^shop +orders +\d+ +\d+[smhd]$/);
    const json = await cp.cli(['get', 'upstream', 'orders', '-n', 'shop', '-o', 'json']);
    const upstream = JSON.parse(json.stdout) as { kind: string; metadata: { namespace: string } };
    assert.equal(upstream.kind, 'Upstream');
    assert.equal(upstream.metadata.namespace, 'shop');
    const yaml = await cp.cli(['get', 'apirule', 'orders', '-n', 'shop', '-o', 'yaml']);
    assert.match(yaml.stdout, /^kind: APIRule$/m);
    assert.match(yaml.stdout, /^ {2}resourceVersion: "\d+"$/m);
    const none = await cp.cli(['get', 'apirules', '-l', 'app=other']);
    assert.equal(none.code, 0);
    assert.equal(none.stdout, '');
    const missing = await cp.cli(['get', 'apirule', 'nope', '-n', 'shop']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^not found: APIRule shop\/nope does not exist\n$/);
  });

  test('a stale resourceVersion from get -o yaml is refused with a clear conflict message', async () => {
    const yaml = await cp.cli(['get', 'apirule', 'orders', '-n', 'shop', '-o', 'yaml']);
    const file = join(cp.dir, 'edited.yaml');
    writeFileSync(file, yaml.stdout.replace('/orders/{key}', '/orders/{edited}'));
    const stale = /resourceVersion: "(\d+)"/.exec(yaml.stdout)![1]!;
    // Someone else changes it meanwhile.
    writeFileSync(join(dir, 'rule.yaml'), rule('/orders/{other}'));
    assert.equal((await cp.cli(['apply', '-f', join(dir, 'rule.yaml'), '-n', 'shop'])).code, 0);
    const now = (await cp.call('GET', '/api/v1/namespaces/shop/apirules/orders', { as: 'root' })).body
      .metadata as {
      resourceVersion: string;
    };
    const res = await cp.cli(['apply', '-f', file]);
    assert.equal(res.code, 1);
    assert.equal(
      res.stderr,
      `changed by someone else since you read it (resourceVersion ${stale}, now ${now.resourceVersion}): get it again and retry\n`,
    );
  });

  test('every refusal is one clear line', async () => {
    const noToken = await cp.cli(['get', 'apirules'], null);
    assert.equal(noToken.code, 1);
    assert.equal(noToken.stderr, 'not authenticated: pass --token or set GATEHOUSE_TOKEN\n');
    const badToken = await cp.cli(['get', 'apirules', '--token', 'wrong']);
    assert.equal(badToken.code, 1);
    assert.match(
      badToken.stderr,
      /^not authenticated: the control plane at http:\/\/127\.0\.0\.1:\d+ does not accept this token/,
    );
    const viewer = await cp.cli(['apply', '-f', dir, '-n', 'shop'], 'shop-viewer');
    assert.equal(viewer.code, 1);
    assert.equal(
      viewer.stderr,
      'forbidden: this needs role editor in namespace shop (shop-viewer needs role editor in namespace shop)\n',
    );
    const port = await freePort();
    const down = await cp.cli(['get', 'apirules', '--server', `http://127.0.0.1:${port}`]);
    assert.equal(down.code, 1);
    assert.match(
      down.stderr,
      new RegExp(`^cannot reach the control plane at http://127\\.0\\.0\\.1:${port}: ECONNREFUSED`),
    );
  });

  test('delete by name and by file; audit shows every change with its actor', async () => {
    const one = await cp.cli(['delete', 'apirule', 'orders', '-n', 'shop']);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(one.stdout, 'apirule/orders deleted\n');
    const again = await cp.cli(['delete', 'apirule', 'orders', '-n', 'shop']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^apirule\/orders: not found: /);
    const byFile = await cp.cli(['delete', '-f', join(dir, 'base.yaml'), '-n', 'shop']);
    assert.equal(byFile.code, 0, byFile.stderr);
    assert.equal(byFile.stdout, 'gateway/edge deleted\nupstream/orders deleted\n');

    const audit = await cp.cli(['audit', '-n', 'shop', '--kind', 'apirules']);
    assert.equal(audit.code, 0, audit.stderr);
    const rows = audit.stdout.trimEnd().split('\n');
    assert.match(rows[0]!, /^REVISION +TIME +ACTOR +ACTION +KIND +NAMESPACE +NAME$/);
    assert.deepEqual(
      rows.slice(1).map((r) => r.split(/ +/).slice(2)),
      [
        ['root', 'create', 'APIRule', 'shop', 'orders'],
        ['root', 'update', 'APIRule', 'shop', 'orders'],
        ['root', 'update', 'APIRule', 'shop', 'orders'],
        ['root', 'delete', 'APIRule', 'shop', 'orders'],
      ],
    );
    const viewer = await cp.cli(['audit'], 'shop-viewer');
    assert.equal(viewer.code, 1);
    assert.match(viewer.stderr, /^forbidden: this needs role admin in some namespace/);
  });
});
