import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConfigError } from '../../config/errors.ts';
import type { Kind } from '../../config/schemas/index.ts';
import type {
  ResourceInput,
  ResourceKey,
  ResourceStore,
  StoredResource,
  WriteOp,
  WriteResult,
} from './types.ts';

/**
 * The one test suite every ResourceStore implementation passes (run from sqlite.test.ts and
 * postgres.test.ts). `open` must give a new, empty store on each call; each test closes its own.
 */
export function describeStoreConformance(name: string, open: () => Promise<ResourceStore>): void {
  describe(`ResourceStore conformance: ${name}`, () => {
    const test = (title: string, body: (store: ResourceStore) => Promise<void>) =>
      it(title, async () => {
        const store = await open();
        try {
          await body(store);
        } finally {
          await store.close();
        }
      });

    test('an empty store: revision 0, nothing listed, no changes', async (store) => {
      assert.equal(await store.revision(), 0);
      assert.deepEqual(await store.list(), { items: [], revision: 0 });
      assert.deepEqual(await store.changes(), []);
      assert.equal(await store.get(key('Upstream', 'a')), null);
    });

    test('create: metadata as stored, resourceVersion = the revision, the audit entry', async (store) => {
      const result = ok(
        await store.write([put(upstream('a', { x: 1 }, { app: 'shop' }))], { actor: 'alice' }),
      );
      assert.equal(result.revision, 1);
      assert.equal(result.changes.length, 1);
      const change = result.changes[0]!;
      assert.equal(change.revision, 1);
      assert.equal(change.action, 'create');
      assert.equal(change.actor, 'alice');
      assert.deepEqual(change.key, key('Upstream', 'a'));
      assert.equal(change.before, null);
      const stored = change.after!;
      assert.equal(stored.metadata.resourceVersion, '1');
      assert.match(stored.metadata.uid, /^[0-9a-f-]{36}$/);
      assert.ok(!Number.isNaN(Date.parse(stored.metadata.creationTimestamp)));
      assert.ok(!Number.isNaN(Date.parse(change.at)));
      assert.deepEqual(stored.metadata.labels, { app: 'shop' });
      assert.deepEqual(stored.spec, { x: 1 });
      assert.deepEqual(await store.get(key('Upstream', 'a')), stored);
      assert.deepEqual(await store.list(), { items: [stored], revision: 1 });
      assert.deepEqual(await store.changes(), [change]);
      assert.equal(await store.revision(), 1);
    });

    test('update with the current resourceVersion: uid and creationTimestamp kept, before/after', async (store) => {
      const created = ok(await store.write([put(upstream('a', { x: 1 }))], { actor: 'alice' })).changes[0]!
        .after!;
      const update = upstream('a', { x: 2 }, undefined, created.metadata.resourceVersion);
      const result = ok(await store.write([put(update)], { actor: 'bob' }));
      const change = result.changes[0]!;
      assert.equal(change.action, 'update');
      assert.deepEqual(change.before, created);
      assert.equal(change.after!.metadata.uid, created.metadata.uid);
      assert.equal(change.after!.metadata.creationTimestamp, created.metadata.creationTimestamp);
      assert.equal(change.after!.metadata.resourceVersion, String(result.revision));
      assert.ok(result.revision > Number(created.metadata.resourceVersion));
      assert.deepEqual((await store.get(key('Upstream', 'a')))?.spec, { x: 2 });
    });

    test('put without resourceVersion is create-or-update', async (store) => {
      ok(await store.write([put(upstream('a', { x: 1 }))], { actor: 't' }));
      const result = ok(await store.write([put(upstream('a', { x: 2 }))], { actor: 't' }));
      assert.equal(result.changes[0]!.action, 'update');
      assert.equal(result.revision, 2);
    });

    test('a stale resourceVersion is a conflict and changes nothing', async (store) => {
      const first = ok(await store.write([put(upstream('a', { x: 1 }))], { actor: 't' })).changes[0]!.after!;
      ok(await store.write([put(upstream('a', { x: 2 }))], { actor: 't' }));
      const stale = await store.write(
        [put(upstream('a', { x: 3 }, undefined, first.metadata.resourceVersion))],
        {
          actor: 't',
        },
      );
      assert.equal(stale.ok, false);
      assert.equal(!stale.ok && stale.reason, 'conflict');
      assert.deepEqual(!stale.ok && stale.reason === 'conflict' && stale.key, key('Upstream', 'a'));
      assert.deepEqual((await store.get(key('Upstream', 'a')))?.spec, { x: 2 });
      assert.equal(await store.revision(), 2);
      assert.equal((await store.changes()).length, 2);
      const garbage = await store.write([put(upstream('a', { x: 3 }, undefined, 'not-a-version'))], {
        actor: 't',
      });
      assert.equal(!garbage.ok && garbage.reason, 'conflict');
    });

    test('a put that changes neither labels nor spec records no change and keeps resourceVersion', async (store) => {
      const spec = { a: 1, b: { c: [1, 2], d: 'x' } };
      const created = ok(await store.write([put(upstream('a', spec, { app: 'shop' }))], { actor: 't' }))
        .changes[0]!;
      // The same content with the keys in another order is the same resource.
      const same = upstream('a', { b: { d: 'x', c: [1, 2] }, a: 1 }, { app: 'shop' });
      const again = ok(await store.write([put(same)], { actor: 't' }));
      assert.deepEqual(again.changes, []);
      assert.equal(again.revision, created.revision);
      const withVersion = ok(
        await store.write([put({ ...same, metadata: { ...same.metadata, resourceVersion: '1' } })], {
          actor: 't',
        }),
      );
      assert.deepEqual(withVersion.changes, []);
      assert.equal((await store.get(key('Upstream', 'a')))?.metadata.resourceVersion, '1');
      assert.equal((await store.changes()).length, 1);
      assert.equal(await store.revision(), 1);
      // Labels alone are a change; so are no labels after some.
      const relabelled = ok(
        await store.write([put(upstream('a', spec, { app: 'shop', tier: 'gold' }))], { actor: 't' }),
      );
      assert.equal(relabelled.changes.length, 1);
      const unlabelled = ok(await store.write([put(upstream('a', spec))], { actor: 't' }));
      assert.equal(unlabelled.changes.length, 1);
      assert.equal(unlabelled.changes[0]!.after!.metadata.labels, undefined);
      assert.equal((await store.changes()).length, 3);
    });

    test('create refuses an existing resource with already_exists', async (store) => {
      ok(await store.write([{ op: 'create', resource: upstream('a', {}) }], { actor: 't' }));
      const again = await store.write([{ op: 'create', resource: upstream('a', { y: 1 }) }], { actor: 't' });
      assert.equal(!again.ok && again.reason, 'already_exists');
      assert.deepEqual((await store.get(key('Upstream', 'a')))?.spec, {});
    });

    test('delete: not_found when missing, conflict when stale, then gone; a new uid when created again', async (store) => {
      const missing = await store.write([del(key('Upstream', 'a'))], { actor: 't' });
      assert.equal(!missing.ok && missing.reason, 'not_found');
      assert.deepEqual(!missing.ok && missing.reason === 'not_found' && missing.key, key('Upstream', 'a'));
      const created = ok(await store.write([put(upstream('a', { x: 1 }))], { actor: 't' })).changes[0]!
        .after!;
      ok(await store.write([put(upstream('a', { x: 2 }))], { actor: 't' }));
      const stale = await store.write([del(key('Upstream', 'a'), created.metadata.resourceVersion)], {
        actor: 't',
      });
      assert.equal(!stale.ok && stale.reason, 'conflict');
      const current = (await store.get(key('Upstream', 'a')))!;
      const deleted = ok(
        await store.write([del(key('Upstream', 'a'), current.metadata.resourceVersion)], { actor: 'eve' }),
      );
      assert.equal(deleted.revision, 3);
      assert.deepEqual(deleted.changes[0], {
        ...deleted.changes[0]!,
        revision: 3,
        action: 'delete',
        actor: 'eve',
        key: key('Upstream', 'a'),
        before: current,
        after: null,
      });
      assert.equal(await store.get(key('Upstream', 'a')), null);
      assert.deepEqual((await store.list()).items, []);
      const again = await store.write([del(key('Upstream', 'a'))], { actor: 't' });
      assert.equal(!again.ok && again.reason, 'not_found');
      const recreated = ok(await store.write([put(upstream('a', { x: 1 }))], { actor: 't' })).changes[0]!;
      assert.equal(recreated.action, 'create');
      assert.notEqual(recreated.after!.metadata.uid, created.metadata.uid);
    });

    test('put with a resourceVersion of a resource that does not exist is not_found', async (store) => {
      const result = await store.write([put(upstream('a', {}, undefined, '1'))], { actor: 't' });
      assert.equal(!result.ok && result.reason, 'not_found');
      assert.equal(await store.revision(), 0);
    });

    test('each change of a write has its own revision; the write reports the last', async (store) => {
      const result = ok(
        await store.write([put(upstream('a', {})), put(upstream('b', {})), put(upstream('c', {}))], {
          actor: 't',
        }),
      );
      assert.deepEqual(
        result.changes.map((c) => c.revision),
        [1, 2, 3],
      );
      assert.equal(result.revision, 3);
      assert.deepEqual(
        (await store.list()).items.map((r) => [r.metadata.name, r.metadata.resourceVersion]),
        [
          ['a', '1'],
          ['b', '2'],
          ['c', '3'],
        ],
      );
      // Ops apply in order: a later op sees an earlier one's result.
      const sequence = ok(
        await store.write(
          [put(upstream('d', { v: 1 })), put(upstream('d', { v: 2 })), del(key('Upstream', 'a'))],
          {
            actor: 't',
          },
        ),
      );
      assert.deepEqual(
        sequence.changes.map((c) => [c.action, c.revision]),
        [
          ['create', 4],
          ['update', 5],
          ['delete', 6],
        ],
      );
      assert.deepEqual((await store.get(key('Upstream', 'd')))?.spec, { v: 2 });
    });

    test('all ops or none: a conflict in op 3 leaves ops 1 and 2 uncommitted', async (store) => {
      ok(await store.write([put(upstream('c', { x: 1 }))], { actor: 't' }));
      const result = await store.write(
        [put(upstream('a', {})), put(upstream('b', {})), put(upstream('c', { x: 2 }, undefined, '99'))],
        { actor: 't' },
      );
      assert.equal(!result.ok && result.reason, 'conflict');
      assert.deepEqual(!result.ok && result.reason === 'conflict' && result.key, key('Upstream', 'c'));
      assert.equal(await store.get(key('Upstream', 'a')), null);
      assert.equal(await store.get(key('Upstream', 'b')), null);
      assert.equal(await store.revision(), 1);
      assert.equal((await store.changes()).length, 1);
      const next = ok(await store.write([put(upstream('a', {}))], { actor: 't' }));
      assert.equal(next.revision, 2, 'a refused write uses up no revision');
    });

    test('malformed ops are refused as invalid with nothing committed', async (store) => {
      const bad = [
        put(upstream('a', {})),
        put({ ...upstream('', {}) }),
        { op: 'put', resource: { ...upstream('b', {}), kind: 'Nope' as Kind } },
        { op: 'frobnicate' } as unknown as WriteOp,
        { op: 'put', resource: { ...upstream('c', {}), spec: 'x' as unknown as Record<string, unknown> } },
      ] as WriteOp[];
      const result = await store.write(bad, { actor: 't' });
      assert.equal(!result.ok && result.reason, 'invalid');
      const errors = !result.ok && result.reason === 'invalid' ? result.errors : [];
      assert.deepEqual(
        errors.map((e) => [e.file, e.path]),
        [
          ['ops[1]', 'metadata.name'],
          ['ops[2]', 'kind'],
          ['ops[3]', 'op'],
          ['ops[4]', 'spec'],
        ],
      );
      assert.equal(await store.revision(), 0);
    });

    test('validate() gets every resource as it would be stored; its errors refuse the write', async (store) => {
      ok(
        await store.write(
          [
            put(resource('Upstream', 'team-a', 'u1', { a: 1 })),
            put(resource('Upstream', 'team-b', 'u2', { b: 1 })),
            put(resource('Consumer', 'team-b', 'c1', {})),
            put(resource('APIRule', 'team-a', 'gone', {})),
          ],
          { actor: 't' },
        ),
      );
      let seen: readonly StoredResource[] = [];
      const result = ok(
        await store.write(
          [put(resource('Gateway', 'team-a', 'edge', { g: 1 })), del(key('APIRule', 'gone', 'team-a'))],
          {
            actor: 't',
            validate: (after) => {
              seen = after;
              return [];
            },
          },
        ),
      );
      assert.deepEqual(
        seen.map((r) => `${r.kind}/${r.metadata.namespace}/${r.metadata.name}@${r.metadata.resourceVersion}`),
        ['Consumer/team-b/c1@3', 'Gateway/team-a/edge@5', 'Upstream/team-a/u1@1', 'Upstream/team-b/u2@2'],
      );
      const edge = seen.find((r) => r.kind === 'Gateway')!;
      assert.deepEqual(edge, result.changes[0]!.after);
      assert.deepEqual(edge, await store.get(key('Gateway', 'edge', 'team-a')));

      const error: ConfigError = {
        file: 'edge.yaml',
        line: 3,
        column: 5,
        path: 'spec.g',
        message: 'g is wrong',
      };
      const before = await store.revision();
      const refused = await store.write([put(resource('Gateway', 'team-a', 'edge', { g: 2 }))], {
        actor: 't',
        validate: async () => [error],
      });
      assert.equal(refused.ok, false);
      assert.equal(!refused.ok && refused.reason, 'invalid');
      assert.deepEqual(!refused.ok && refused.reason === 'invalid' && refused.errors, [error]);
      assert.match(refused.ok ? '' : refused.message, /g is wrong/);
      assert.deepEqual((await store.get(key('Gateway', 'edge', 'team-a')))?.spec, { g: 1 });
      assert.equal(await store.revision(), before);

      await assert.rejects(
        store.write([put(resource('Gateway', 'team-a', 'edge', { g: 3 }))], {
          actor: 't',
          validate: () => {
            throw new Error('validator broke');
          },
        }),
        /validator broke/,
      );
      assert.deepEqual((await store.get(key('Gateway', 'edge', 'team-a')))?.spec, { g: 1 });
      assert.equal(await store.revision(), before);
      // The store still writes after a validate() that threw.
      ok(await store.write([put(resource('Gateway', 'team-a', 'edge', { g: 4 }))], { actor: 't' }));
    });

    test('dryRun reports the would-be changes and commits nothing', async (store) => {
      ok(await store.write([put(upstream('a', { x: 1 }))], { actor: 't' }));
      let validated = 0;
      const dry = ok(
        await store.write([put(upstream('a', { x: 2 })), put(upstream('b', {}))], {
          actor: 't',
          dryRun: true,
          validate: () => {
            validated++;
            return [];
          },
        }),
      );
      assert.equal(validated, 1);
      assert.deepEqual(
        dry.changes.map((c) => [c.action, c.revision, c.after?.metadata.resourceVersion]),
        [
          ['update', 2, '2'],
          ['create', 3, '3'],
        ],
      );
      assert.equal(dry.revision, 3);
      assert.deepEqual((await store.get(key('Upstream', 'a')))?.spec, { x: 1 });
      assert.equal(await store.get(key('Upstream', 'b')), null);
      assert.equal(await store.revision(), 1);
      assert.equal((await store.changes()).length, 1);
      const conflict = await store.write([put(upstream('a', {}, undefined, '7'))], {
        actor: 't',
        dryRun: true,
      });
      assert.equal(!conflict.ok && conflict.reason, 'conflict');
      const real = ok(
        await store.write([put(upstream('a', { x: 2 })), put(upstream('b', {}))], { actor: 't' }),
      );
      assert.deepEqual(
        real.changes.map((c) => c.revision),
        [2, 3],
      );
    });

    test('changes(): oldest first, after, key filters, limit', async (store) => {
      ok(await store.write([put(resource('Upstream', 'ns1', 'a', {}))], { actor: 'alice' }));
      ok(await store.write([put(resource('Upstream', 'ns2', 'a', {}))], { actor: 'bob' }));
      ok(await store.write([put(resource('Consumer', 'ns1', 'a', {}))], { actor: 'carol' }));
      ok(await store.write([put(resource('Upstream', 'ns1', 'a', { v: 2 }))], { actor: 'dave' }));
      ok(await store.write([del(key('Upstream', 'a', 'ns1'))], { actor: 'erin' }));
      const all = await store.changes();
      assert.deepEqual(
        all.map((c) => [c.revision, c.actor, c.action]),
        [
          [1, 'alice', 'create'],
          [2, 'bob', 'create'],
          [3, 'carol', 'create'],
          [4, 'dave', 'update'],
          [5, 'erin', 'delete'],
        ],
      );
      assert.deepEqual(all[3]!.before?.spec, {});
      assert.deepEqual(all[3]!.after?.spec, { v: 2 });
      assert.deepEqual(
        (await store.changes({ after: 2 })).map((c) => c.revision),
        [3, 4, 5],
      );
      assert.deepEqual(
        (await store.changes({ key: { kind: 'Upstream' } })).map((c) => c.revision),
        [1, 2, 4, 5],
      );
      assert.deepEqual(
        (await store.changes({ key: key('Upstream', 'a', 'ns1') })).map((c) => c.revision),
        [1, 4, 5],
      );
      assert.deepEqual(
        (await store.changes({ key: { namespace: 'ns1' }, after: 1, limit: 2 })).map((c) => c.revision),
        [3, 4],
      );
      assert.deepEqual(await store.changes({ after: 5 }), []);
      await assert.rejects(store.changes({ limit: 0 }), TypeError);
      await assert.rejects(store.changes({ after: -1 }), TypeError);
    });

    test('list(): sorted by kind, namespace, name; filters by kind, namespace and labels (AND)', async (store) => {
      ok(
        await store.write(
          [
            put(resource('Upstream', 'b', 'z', {}, { app: 'shop', tier: 'gold' })),
            put(resource('Upstream', 'a', 'y', {}, { app: 'shop' })),
            put(resource('APIRule', 'b', 'x', {}, { app: 'shop', tier: 'gold' })),
            put(resource('Upstream', 'a', 'b', {}, { app: 'blog', tier: 'gold' })),
            put(resource('Consumer', 'a', 'w', {})),
          ],
          { actor: 't' },
        ),
      );
      const names = async (q?: Parameters<ResourceStore['list']>[0]) =>
        (await store.list(q)).items.map((r) => `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`);
      assert.deepEqual(await names(), [
        'APIRule/b/x',
        'Consumer/a/w',
        'Upstream/a/b',
        'Upstream/a/y',
        'Upstream/b/z',
      ]);
      assert.deepEqual(await names({ kind: 'Upstream' }), ['Upstream/a/b', 'Upstream/a/y', 'Upstream/b/z']);
      assert.deepEqual(await names({ namespace: 'b' }), ['APIRule/b/x', 'Upstream/b/z']);
      assert.deepEqual(await names({ labels: { app: 'shop' } }), [
        'APIRule/b/x',
        'Upstream/a/y',
        'Upstream/b/z',
      ]);
      assert.deepEqual(await names({ labels: { app: 'shop', tier: 'gold' } }), [
        'APIRule/b/x',
        'Upstream/b/z',
      ]);
      assert.deepEqual(await names({ kind: 'Upstream', labels: { tier: 'gold' } }), [
        'Upstream/a/b',
        'Upstream/b/z',
      ]);
      assert.deepEqual(await names({ labels: { app: '' } }), []);
      assert.deepEqual(await names({ kind: 'Gateway' }), []);
      assert.equal((await store.list({ kind: 'Gateway' })).revision, 5);
    });

    test('records: get, put, list, delete, update', async (store) => {
      assert.equal(await store.recordGet('gateways', 'g1'), null);
      assert.deepEqual(await store.recordList('gateways'), []);
      await store.recordPut('gateways', 'g2', { name: 'two' });
      await store.recordPut('gateways', 'g1', { name: 'one', labels: { zone: 'a' } });
      await store.recordPut('tokens', 't1', 'plain string');
      assert.deepEqual(await store.recordGet('gateways', 'g1'), { name: 'one', labels: { zone: 'a' } });
      assert.deepEqual(await store.recordList('gateways'), [
        { id: 'g1', value: { name: 'one', labels: { zone: 'a' } } },
        { id: 'g2', value: { name: 'two' } },
      ]);
      await store.recordPut('gateways', 'g1', { name: 'uno' });
      assert.deepEqual(await store.recordGet('gateways', 'g1'), { name: 'uno' });
      assert.equal(await store.recordDelete('gateways', 'g2'), true);
      assert.equal(await store.recordDelete('gateways', 'g2'), false);
      assert.deepEqual(await store.recordList('gateways'), [{ id: 'g1', value: { name: 'uno' } }]);
      assert.equal(await store.recordGet('tokens', 't1'), 'plain string');

      assert.deepEqual(
        await store.recordUpdate<{ n: number }>('counters', 'c', (current) => ({ n: (current?.n ?? 0) + 1 })),
        { n: 1 },
      );
      assert.deepEqual(
        await store.recordUpdate<{ n: number }>('counters', 'c', (current) => ({ n: (current?.n ?? 0) + 1 })),
        { n: 2 },
      );
      assert.deepEqual(await store.recordUpdate('counters', 'c', () => undefined), { n: 2 });
      assert.equal(await store.recordUpdate('counters', 'c', () => null), null);
      assert.equal(await store.recordGet('counters', 'c'), null);
      assert.equal(await store.recordUpdate('counters', 'absent', () => undefined), null);
      await assert.rejects(store.recordPut('gateways', 'bad', undefined), TypeError);
      await assert.rejects(
        store.recordUpdate('counters', 'c', () => {
          throw new Error('update broke');
        }),
        /update broke/,
      );
      // Records are not resources: no revision, no audit entry.
      assert.equal(await store.revision(), 0);
      assert.deepEqual(await store.changes(), []);
    });

    test('recordUpdate is atomic: of 20 concurrent consumers of one token exactly one succeeds', async (store) => {
      await store.recordPut('bootstrap-tokens', 'tok', { used: false });
      type Token = { used: boolean; by?: number };
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          store.recordUpdate<Token>('bootstrap-tokens', 'tok', (current) =>
            current && !current.used ? { used: true, by: i } : undefined,
          ),
        ),
      );
      const winners = results.filter((value, i) => value?.by === i);
      assert.equal(winners.length, 1);
      assert.deepEqual(await store.recordGet('bootstrap-tokens', 'tok'), winners[0]);
    });

    test('50 concurrent puts from the same resourceVersion: exactly one succeeds', async (store) => {
      const created = ok(await store.write([put(upstream('hot', { n: -1 }))], { actor: 't' })).changes[0]!
        .after!;
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          store.write([put(upstream('hot', { n: i }, undefined, created.metadata.resourceVersion))], {
            actor: `w${i}`,
          }),
        ),
      );
      const winners = results.filter((r) => r.ok);
      assert.equal(winners.length, 1);
      assert.ok(results.every((r) => r.ok || r.reason === 'conflict'));
      const winner = ok(winners[0]!);
      assert.deepEqual(await store.get(key('Upstream', 'hot')), winner.changes[0]!.after);
      assert.equal((await store.changes()).length, 2);
    });

    test('100 concurrent independent writes: 100 distinct revisions, 100 audit entries, none lost', async (store) => {
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          store.write([put(upstream(`u${i}`, { i }))], { actor: `w${i}` }),
        ),
      );
      const revisions = results.map((r) => ok(r).revision).sort((a, b) => a - b);
      assert.deepEqual(
        revisions,
        Array.from({ length: 100 }, (_, i) => i + 1),
      );
      const changes = await store.changes();
      assert.equal(changes.length, 100);
      assert.deepEqual(
        changes.map((c) => c.revision),
        revisions,
      );
      assert.equal(new Set(changes.map((c) => c.key.name)).size, 100);
      const { items, revision } = await store.list({ kind: 'Upstream' });
      assert.equal(items.length, 100);
      assert.equal(revision, 100);
    });

    test('onChange: called with the new revision after a commit; unsubscribe stops it', async (store) => {
      const seen: number[] = [];
      const unsubscribe = store.onChange((revision) => seen.push(revision));
      const broken = store.onChange(() => {
        throw new Error('a listener that throws');
      });
      const first = ok(await store.write([put(upstream('a', {}))], { actor: 't' }));
      await until(() => seen.includes(first.revision), 'onChange after the first write');
      const second = ok(await store.write([put(upstream('b', {}))], { actor: 't' }));
      await until(() => seen.includes(second.revision), 'onChange after the second write');
      assert.deepEqual(
        seen,
        [...seen].sort((a, b) => a - b),
        'in increasing order',
      );
      unsubscribe();
      broken();
      const count = seen.length;
      ok(await store.write([put(upstream('c', {}))], { actor: 't' }));
      // A second listener proves the change was announced; the unsubscribed one stays silent.
      const later: number[] = [];
      const stop = store.onChange((revision) => later.push(revision));
      const fourth = ok(await store.write([put(upstream('d', {}))], { actor: 't' }));
      await until(() => later.includes(fourth.revision), 'onChange of a new listener');
      stop();
      assert.equal(seen.length, count);
    });

    test('close(): later calls reject; closing twice is fine', async (store) => {
      ok(await store.write([put(upstream('a', {}))], { actor: 't' }));
      await store.close();
      await assert.rejects(store.get(key('Upstream', 'a')), /closed/);
      await assert.rejects(store.write([put(upstream('b', {}))], { actor: 't' }), /closed/);
      await store.close();
    });
  });
}

function ok(result: WriteResult): Extract<WriteResult, { ok: true }> {
  if (!result.ok) assert.fail(`write refused: ${result.reason}: ${result.message}`);
  return result;
}

function key(kind: Kind, name: string, namespace = 'default'): ResourceKey {
  return { kind, namespace, name };
}

function resource(
  kind: Kind,
  namespace: string,
  name: string,
  spec: Record<string, unknown>,
  labels?: Record<string, string>,
  resourceVersion?: string,
): ResourceInput {
  return {
    apiVersion: 'gatehouse.dev/v1',
    kind,
    metadata: {
      name,
      namespace,
      ...(labels ? { labels } : {}),
      ...(resourceVersion !== undefined ? { resourceVersion } : {}),
    },
    spec,
  };
}

function upstream(
  name: string,
  spec: Record<string, unknown>,
  labels?: Record<string, string>,
  resourceVersion?: string,
): ResourceInput {
  return resource('Upstream', 'default', name, spec, labels, resourceVersion);
}

function put(r: ResourceInput): WriteOp {
  return { op: 'put', resource: r };
}

function del(k: ResourceKey, resourceVersion?: string): WriteOp {
  return resourceVersion === undefined ? { op: 'delete', key: k } : { op: 'delete', key: k, resourceVersion };
}

/** Waits for a condition that an asynchronous event makes true (bounded: fails after 10 s). */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
