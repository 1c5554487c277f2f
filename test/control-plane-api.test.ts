import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startControlPlane, type TestControlPlane } from './helpers/control-plane.ts';
import { startTestIdp, type TestIdp } from './helpers/idp.ts';

const v1 = 'gatehouse.dev/v1';

function gateway(namespace: string, name = 'edge') {
  return {
    apiVersion: v1,
    kind: 'Gateway',
    metadata: { name, namespace },
    spec: { listeners: [{ name: 'public', port: 8080 }] },
  };
}
function upstream(namespace: string, name = 'orders') {
  return {
    apiVersion: v1,
    kind: 'Upstream',
    metadata: { name, namespace },
    spec: { targets: [{ url: 'http://127.0.0.1:7001' }] },
  };
}
function apiRule(
  namespace: string,
  name = 'orders',
  opts: { upstream?: string; path?: string; labels?: Record<string, string> } = {},
) {
  return {
    apiVersion: v1,
    kind: 'APIRule',
    metadata: { name, namespace, ...(opts.labels ? { labels: opts.labels } : {}) },
    spec: {
      gateway: 'edge',
      upstream: opts.upstream ?? 'orders',
      rules: [{ path: opts.path ?? '/orders/{id}', methods: ['GET'], authenticate: [{ noAuth: {} }] }],
    },
  };
}

async function revision(cp: TestControlPlane): Promise<number> {
  const res = await cp.call('GET', '/api/v1/resources', { as: 'root' });
  assert.equal(res.status, 200);
  return res.body.revision as number;
}

/** Reads an SSE stream until `count` change events arrived (bounded by a timeout). */
async function readEvents(url: string, token: string, count: number, onOpen?: () => Promise<void>) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 15_000);
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  assert.equal(res.headers.get('x-accel-buffering'), 'no');
  assert.equal(res.headers.get('cache-control'), 'no-store');
  const events: Array<{ id: string; data: Record<string, unknown> }> = [];
  const decoder = new TextDecoder();
  let buffer = '';
  let opened = false;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      if (!opened && onOpen) {
        opened = true;
        await onOpen();
      }
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const id = /^id: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (id !== undefined && data !== undefined) events.push({ id, data: JSON.parse(data) });
        end = buffer.indexOf('\n\n');
      }
      if (events.length >= count) break;
    }
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return events;
}

describe('control plane admin API', () => {
  let cp: TestControlPlane;
  let idp: TestIdp;

  before(async () => {
    idp = await startTestIdp({ extraTokenClaims: { gatehouse_roles: ['shop:editor', 'billing:viewer'] } });
    cp = await startControlPlane({
      operators: [
        { name: 'root', roles: [{ namespace: '*', role: 'admin' }] },
        { name: 'shop-editor', roles: [{ namespace: 'shop', role: 'editor' }] },
        { name: 'shop-viewer', roles: [{ namespace: 'shop', role: 'viewer' }] },
        { name: 'shop-admin', roles: [{ namespace: 'shop', role: 'admin' }] },
      ],
      spec: '    jwt: { provider: corp, subjectClaim: sub }',
      extraYaml: `apiVersion: gatehouse.dev/v1
kind: IdentityProvider
metadata: { name: corp }
spec:
  issuer: ${idp.issuer}
  audiences: [${idp.jwtResource}]
  algorithms: [ES256]
`,
    });
    // The namespaces the tests use, each with a gateway its rules compile against.
    const seeded = await cp.call('POST', '/api/v1/apply', {
      as: 'root',
      body: { resources: [gateway('shop'), upstream('shop'), gateway('billing'), upstream('billing')] },
    });
    assert.equal(seeded.status, 200, JSON.stringify(seeded.body));
  });

  after(async () => {
    await cp?.stop();
    await idp?.close();
  });

  test('create, read, update with resourceVersion, list by label, delete', async () => {
    const created = await cp.call('POST', '/api/v1/namespaces/shop/apirules', {
      as: 'shop-editor',
      body: apiRule('shop', 'crud', { labels: { app: 'shop', tier: 'web' } }),
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const meta = created.body.metadata as Record<string, string>;
    assert.match(meta.resourceVersion!, /^[1-9][0-9]*$/);
    assert.ok(meta.uid);

    const again = await cp.call('POST', '/api/v1/namespaces/shop/apirules', {
      as: 'shop-editor',
      body: apiRule('shop', 'crud'),
    });
    assert.equal(again.status, 409);
    assert.equal(again.body.code, 'already_exists');
    assert.match(again.headers.get('content-type') ?? '', /application\/problem\+json/);

    const read = await cp.call('GET', '/api/v1/namespaces/shop/apirules/crud', { as: 'shop-viewer' });
    assert.equal(read.status, 200);
    assert.deepEqual((read.body.spec as { rules: Array<{ path: string }> }).rules[0]!.path, '/orders/{id}');

    const changed = apiRule('shop', 'crud', { path: '/orders/{key}', labels: { app: 'shop' } });
    const updated = await cp.call('PUT', '/api/v1/namespaces/shop/apirules/crud', {
      as: 'shop-editor',
      body: { ...changed, metadata: { ...changed.metadata, resourceVersion: meta.resourceVersion } },
    });
    assert.equal(updated.status, 200, JSON.stringify(updated.body));
    const newVersion = (updated.body.metadata as Record<string, string>).resourceVersion!;
    assert.ok(Number(newVersion) > Number(meta.resourceVersion));
    assert.equal((updated.body.metadata as Record<string, string>).uid, meta.uid);

    await cp.call('POST', '/api/v1/namespaces/shop/apirules', {
      as: 'shop-editor',
      body: apiRule('shop', 'other', { path: '/other', labels: { app: 'other' } }),
    });
    const byLabel = await cp.call('GET', '/api/v1/namespaces/shop/apirules?labelSelector=app%3Dshop', {
      as: 'shop-viewer',
    });
    assert.deepEqual(
      (byLabel.body.items as Array<{ metadata: { name: string } }>).map((i) => i.metadata.name),
      ['crud'],
    );
    const allOther = await cp.call('GET', '/api/v1/apirules?labelSelector=app=other', { as: 'root' });
    assert.deepEqual(
      (allOther.body.items as Array<{ metadata: { name: string } }>).map((i) => i.metadata.name),
      ['other'],
    );
    const badSelector = await cp.call('GET', '/api/v1/apirules?labelSelector=app', { as: 'root' });
    assert.equal(badSelector.status, 400);

    const deleted = await cp.call('DELETE', '/api/v1/namespaces/shop/apirules/crud', { as: 'shop-editor' });
    assert.equal(deleted.status, 200);
    const gone = await cp.call('GET', '/api/v1/namespaces/shop/apirules/crud', { as: 'shop-viewer' });
    assert.equal(gone.status, 404);
    assert.equal(gone.body.code, 'resource_not_found');
    await cp.call('DELETE', '/api/v1/namespaces/shop/apirules/other', { as: 'shop-editor' });
  });

  test('an invalid apply is refused with every problem and changes nothing', async () => {
    const before = await revision(cp);
    const res = await cp.call('POST', '/api/v1/apply', {
      as: 'root',
      body: {
        resources: [
          apiRule('shop', 'good', { path: '/good' }),
          apiRule('shop', 'bad', { upstream: 'missing', path: '/bad' }),
        ],
      },
    });
    assert.equal(res.status, 422);
    assert.equal(res.body.code, 'invalid_config');
    assert.deepEqual(res.body.errors, [
      {
        kind: 'APIRule',
        namespace: 'shop',
        name: 'bad',
        path: 'spec.upstream',
        message: 'no Upstream named missing in namespace shop',
      },
    ]);
    // A schema problem is answered the same way, with the loader's message.
    const schema = await cp.call('POST', '/api/v1/apply', {
      as: 'root',
      body: {
        resources: [
          { ...upstream('shop', 'typo'), spec: { targets: [{ url: 'http://127.0.0.1:1' }], retires: 2 } },
        ],
      },
    });
    assert.equal(schema.status, 422);
    assert.deepEqual(schema.body.errors, [
      { kind: 'Upstream', namespace: 'shop', name: 'typo', path: 'spec.retires', message: 'unknown field' },
    ]);
    // Two rules of one gateway overlapping: the compiler's own error.
    const overlap = await cp.call('POST', '/api/v1/apply', {
      as: 'root',
      body: {
        resources: [apiRule('shop', 'o1', { path: '/o/{id}' }), apiRule('shop', 'o2', { path: '/o/{*}' })],
      },
    });
    assert.equal(overlap.status, 422);
    assert.match(JSON.stringify(overlap.body.errors), /spec\.rules\[0\]\.path/);
    assert.equal(await revision(cp), before);
    const listed = await cp.call('GET', '/api/v1/namespaces/shop/apirules', { as: 'root' });
    assert.deepEqual(listed.body.items, []);
  });

  test('a TLS listener is checked without reading its files (they live on the gateway host)', async () => {
    const tlsGateway = {
      ...gateway('shop', 'secure'),
      spec: {
        listeners: [
          {
            name: 'tls',
            port: 8443,
            protocol: 'https',
            tls: { certificates: [{ cert: '/nonexistent/cert.pem', key: '/nonexistent/key.pem' }] },
          },
        ],
      },
    };
    const ok = await cp.call('POST', '/api/v1/apply?dryRun=true', {
      as: 'root',
      body: { resources: [tlsGateway] },
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const missing = { ...tlsGateway, spec: { listeners: [{ name: 'tls', port: 8443, protocol: 'https' }] } };
    const refused = await cp.call('POST', '/api/v1/apply?dryRun=true', {
      as: 'root',
      body: { resources: [missing] },
    });
    assert.equal(refused.status, 422);
    assert.deepEqual(
      (refused.body.errors as Array<{ path: string; message: string }>).map((e) => [e.path, e.message]),
      [['spec.listeners[0].tls', 'required for protocol https']],
    );
  });

  test('apply answers each action with a field diff; dry run commits nothing', async () => {
    const first = await cp.call('POST', '/api/v1/apply', {
      as: 'root',
      body: { resources: [apiRule('shop', 'applied', { path: '/a' })] },
    });
    assert.equal(first.status, 200);
    assert.equal((first.body.results as Array<{ action: string }>)[0]!.action, 'created');
    const same = await cp.call('POST', '/api/v1/apply', {
      as: 'root',
      body: { resources: [apiRule('shop', 'applied', { path: '/a' })] },
    });
    assert.equal((same.body.results as Array<{ action: string }>)[0]!.action, 'unchanged');
    const before = await revision(cp);
    const dry = await cp.call('POST', '/api/v1/apply?dryRun=true', {
      as: 'root',
      body: { resources: [apiRule('shop', 'applied', { path: '/b' })] },
    });
    assert.equal(dry.status, 200);
    const result = (dry.body.results as Array<{ action: string; diff: unknown[]; diffText: string[] }>)[0]!;
    assert.equal(result.action, 'updated');
    assert.deepEqual(result.diff, [{ op: 'change', path: 'spec.rules[0].path', before: '/a', after: '/b' }]);
    assert.deepEqual(result.diffText, ['- spec.rules[0].path: "/a"', '+ spec.rules[0].path: "/b"']);
    assert.equal(await revision(cp), before);
    await cp.call('DELETE', '/api/v1/namespaces/shop/apirules/applied', { as: 'root' });
  });

  test('two updates from the same resourceVersion: one succeeds, the other conflicts', async () => {
    const created = await cp.call('POST', '/api/v1/namespaces/shop/apirules', {
      as: 'root',
      body: apiRule('shop', 'race', { path: '/race' }),
    });
    const version = (created.body.metadata as Record<string, string>).resourceVersion!;
    const put = (path: string) => {
      const r = apiRule('shop', 'race', { path });
      return cp.call('PUT', '/api/v1/namespaces/shop/apirules/race', {
        as: 'root',
        body: { ...r, metadata: { ...r.metadata, resourceVersion: version } },
      });
    };
    const answers = await Promise.all([put('/race/a'), put('/race/b')]);
    const statuses = answers.map((a) => a.status).sort();
    assert.deepEqual(statuses, [200, 409]);
    const conflict = answers.find((a) => a.status === 409)!;
    assert.equal(conflict.body.code, 'conflict');
    assert.equal(conflict.body.resourceVersion, version);
    const winner = answers.find((a) => a.status === 200)!;
    assert.equal(
      conflict.body.currentResourceVersion,
      (winner.body.metadata as Record<string, string>).resourceVersion,
    );
    await cp.call('DELETE', '/api/v1/namespaces/shop/apirules/race', { as: 'root' });
  });

  test('the audit log records who changed what, with before and after', async () => {
    const start = await revision(cp);
    await cp.call('POST', '/api/v1/namespaces/shop/apirules', {
      as: 'shop-editor',
      body: apiRule('shop', 'audited', { path: '/x' }),
    });
    await cp.call('PUT', '/api/v1/namespaces/shop/apirules/audited', {
      as: 'shop-editor',
      body: apiRule('shop', 'audited', { path: '/y' }),
    });
    await cp.call('DELETE', '/api/v1/namespaces/shop/apirules/audited', { as: 'root' });
    const audit = await cp.call('GET', `/api/v1/audit?after=${start}&name=audited`, { as: 'shop-admin' });
    assert.equal(audit.status, 200);
    const items = audit.body.items as Array<{
      actor: string;
      action: string;
      before: { spec: { rules: Array<{ path: string }> } } | null;
      after: { spec: { rules: Array<{ path: string }> } } | null;
      diff: unknown[];
    }>;
    assert.deepEqual(
      items.map((i) => [i.actor, i.action]),
      [
        ['shop-editor', 'create'],
        ['shop-editor', 'update'],
        ['root', 'delete'],
      ],
    );
    assert.equal(items[0]!.before, null);
    assert.equal(items[1]!.before!.spec.rules[0]!.path, '/x');
    assert.equal(items[1]!.after!.spec.rules[0]!.path, '/y');
    assert.deepEqual(items[1]!.diff, [
      { op: 'change', path: 'spec.rules[0].path', before: '/x', after: '/y' },
    ]);
    assert.equal(items[2]!.after, null);
    const notAdmin = await cp.call('GET', '/api/v1/audit', { as: 'shop-editor' });
    assert.equal(notAdmin.status, 403);
    const otherNamespace = await cp.call('GET', '/api/v1/audit?namespace=billing', { as: 'shop-admin' });
    assert.equal(otherNamespace.status, 403);
  });

  test('roles are enforced per namespace', async () => {
    const none = await cp.call('GET', '/api/v1/namespaces/shop/apirules');
    assert.equal(none.status, 401);
    assert.equal(none.body.code, 'unauthenticated');
    assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
    const bad = await cp.call('GET', '/api/v1/namespaces/shop/apirules', { token: 'not-a-token' });
    assert.equal(bad.status, 401);
    assert.equal(bad.body.code, 'invalid_token');

    const viewerWrite = await cp.call('POST', '/api/v1/namespaces/shop/apirules', {
      as: 'shop-viewer',
      body: apiRule('shop', 'v'),
    });
    assert.equal(viewerWrite.status, 403);
    assert.equal(viewerWrite.body.requiredRole, 'editor');
    assert.equal(viewerWrite.body.namespace, 'shop');

    const crossRead = await cp.call('GET', '/api/v1/namespaces/billing/upstreams', { as: 'shop-editor' });
    assert.equal(crossRead.status, 403);
    const crossWrite = await cp.call('PUT', '/api/v1/namespaces/billing/upstreams/orders', {
      as: 'shop-editor',
      body: upstream('billing'),
    });
    assert.equal(crossWrite.status, 403);
    const crossApply = await cp.call('POST', '/api/v1/apply', {
      as: 'shop-editor',
      body: { resources: [upstream('shop', 'u2'), upstream('billing', 'u2')] },
    });
    assert.equal(crossApply.status, 403);
    assert.equal(crossApply.body.namespace, 'billing');
    const stillAbsent = await cp.call('GET', '/api/v1/namespaces/shop/upstreams/u2', { as: 'root' });
    assert.equal(stillAbsent.status, 404);

    // Lists across namespaces show only what the caller may view.
    const all = await cp.call('GET', '/api/v1/upstreams', { as: 'shop-editor' });
    assert.equal(all.status, 200);
    assert.deepEqual(
      [
        ...new Set(
          (all.body.items as Array<{ metadata: { namespace: string } }>).map((i) => i.metadata.namespace),
        ),
      ],
      ['shop'],
    );
  });

  test('an operator JWT from the identity provider carries its roles', async () => {
    const token = await idp.token({ scope: 'read' });
    const read = await cp.call('GET', '/api/v1/namespaces/billing/upstreams', { token });
    assert.equal(read.status, 200, JSON.stringify(read.body));
    const write = await cp.call('PUT', '/api/v1/namespaces/billing/upstreams/orders', {
      token,
      body: upstream('billing'),
    });
    assert.equal(write.status, 403);
    const created = await cp.call('POST', '/api/v1/namespaces/shop/upstreams', {
      token,
      body: upstream('shop', 'by-jwt'),
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const audit = await cp.call('GET', '/api/v1/audit?kind=Upstream&name=by-jwt', { as: 'root' });
    assert.equal((audit.body.items as Array<{ actor: string }>)[0]!.actor, idp.clients.app.id);
    // A token signed by someone else is refused.
    const [h, p] = token.split('.');
    const forged = `${h}.${p}.${Buffer.from('x'.repeat(64)).toString('base64url')}`;
    const refused = await cp.call('GET', '/api/v1/namespaces/shop/upstreams', { token: forged });
    assert.equal(refused.status, 401);
    await cp.call('DELETE', '/api/v1/namespaces/shop/upstreams/by-jwt', { as: 'root' });
  });

  test('watch streams changes after a resourceVersion, then live ones', async () => {
    const start = await revision(cp);
    await cp.call('POST', '/api/v1/namespaces/shop/upstreams', { as: 'root', body: upstream('shop', 'w1') });
    await cp.call('POST', '/api/v1/namespaces/billing/upstreams', {
      as: 'root',
      body: upstream('billing', 'w-hidden'),
    });
    const events = await readEvents(
      `${cp.url}/api/v1/watch?resourceVersion=${start}&kind=upstreams`,
      cp.tokens['shop-viewer']!,
      3,
      async () => {
        await cp.call('PUT', '/api/v1/namespaces/shop/upstreams/w1', {
          as: 'root',
          body: { ...upstream('shop', 'w1'), spec: { targets: [{ url: 'http://127.0.0.1:7002' }] } },
        });
        await cp.call('DELETE', '/api/v1/namespaces/shop/upstreams/w1', { as: 'root' });
      },
    );
    assert.deepEqual(
      events.map((e) => [
        e.data.type,
        (e.data.object as { metadata: { namespace: string; name: string } }).metadata.name,
      ]),
      [
        ['ADDED', 'w1'],
        ['MODIFIED', 'w1'],
        ['DELETED', 'w1'],
      ],
    );
    assert.ok(events.every((e, i) => i === 0 || Number(e.id) > Number(events[i - 1]!.id)));
    await cp.call('DELETE', '/api/v1/namespaces/billing/upstreams/w-hidden', { as: 'root' });
  });

  test('OpenAPI describes every route of every module, with the kinds as schemas', async () => {
    const res = await cp.call('GET', '/openapi.json');
    assert.equal(res.status, 200);
    const paths = res.body.paths as Record<string, Record<string, unknown>>;
    const operations = Object.entries(paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    for (const expected of [
      'GET /healthz',
      'GET /readyz',
      'GET /openapi.json',
      'GET /api/v1/resources',
      'POST /api/v1/apply',
      'GET /api/v1/watch',
      'GET /api/v1/audit',
      'GET /api/v1/upstreams',
      'GET /api/v1/namespaces/{namespace}/apirules',
      'POST /api/v1/namespaces/{namespace}/apirules',
      'GET /api/v1/namespaces/{namespace}/identityproviders/{name}',
      'PUT /api/v1/namespaces/{namespace}/policies/{name}',
      'DELETE /api/v1/namespaces/{namespace}/consumers/{name}',
      // the distribution module's
      'GET /api/v1/gateways',
      'GET /v1/gateways/self/config/stream',
    ])
      assert.ok(operations.includes(expected), `${expected} missing from ${operations.join(', ')}`);
    const schemas = (res.body.components as { schemas: Record<string, unknown> }).schemas;
    for (const kind of ['Gateway', 'Upstream', 'APIRule', 'IdentityProvider', 'Consumer', 'Policy'])
      assert.ok(schemas[kind], kind);
    assert.equal(schemas.ControlPlane, undefined);
  });

  test('bodies are bounded and typed; unknown paths and methods are problems', async () => {
    const big = await cp.call('POST', '/api/v1/apply', {
      as: 'root',
      body: `{"resources":["${'x'.repeat(1024 * 1024 + 10)}"]}`,
    });
    assert.equal(big.status, 413);
    const text = await cp.call('POST', '/api/v1/apply', {
      as: 'root',
      body: 'hello',
      headers: { 'content-type': 'text/plain' },
    });
    assert.equal(text.status, 415);
    const notJson = await cp.call('POST', '/api/v1/apply', { as: 'root', body: '{nope' });
    assert.equal(notJson.status, 400);
    const unknown = await cp.call('GET', '/api/v1/nothing-here', { as: 'root' });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.code, 'route_not_found');
    const method = await cp.call('PATCH', '/api/v1/apply', { as: 'root' });
    assert.equal(method.status, 405);
    assert.equal(method.headers.get('allow'), 'POST');
    const ready = await cp.call('GET', '/readyz');
    assert.equal(ready.status, 200);
    // The access log names the operator and never carries the credential.
    const logs = cp.proc.stdout();
    assert.match(logs, /"operator":"root"/);
    for (const token of Object.values(cp.tokens)) assert.ok(!logs.includes(token));
  });
});
