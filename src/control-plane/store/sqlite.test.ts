import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, it } from 'node:test';
import { describeStoreConformance } from './conformance.ts';
import { openStore } from './open.ts';
import { openSqliteStore } from './sqlite.ts';
import type { ResourceInput } from './types.ts';

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

describeStoreConformance('sqlite :memory:', () => openSqliteStore({ path: ':memory:' }));
describeStoreConformance('sqlite file', () =>
  openStore({ backend: 'sqlite', path: join(dir, `c${files++}`, 'store.db') }),
);

const upstream = (name: string, spec: Record<string, unknown>): ResourceInput => ({
  apiVersion: 'gatehouse.dev/v1',
  kind: 'Upstream',
  metadata: { name, namespace: 'default' },
  spec,
});

describe('sqlite store file', () => {
  it('keeps everything across a reopen, in a WAL file only its owner can read', async () => {
    const path = join(dir, 'reopen', 'data', 'store.db');
    const first = await openSqliteStore({ path });
    const written = await first.write([{ op: 'put', resource: upstream('a', { x: 1 }) }], { actor: 'alice' });
    assert.ok(written.ok);
    await first.recordPut('ca', 'root', { key: 'secret' });
    await first.close();
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'reopen', 'data')).mode & 0o777, 0o700);

    const second = await openSqliteStore({ path });
    assert.deepEqual(
      await second.get({ kind: 'Upstream', namespace: 'default', name: 'a' }),
      written.changes[0]!.after,
    );
    assert.equal(await second.revision(), 1);
    assert.equal((await second.changes()).length, 1);
    assert.deepEqual(await second.recordGet('ca', 'root'), { key: 'secret' });
    await second.close();

    const raw = new DatabaseSync(path);
    assert.equal((raw.prepare('PRAGMA journal_mode').get() as { journal_mode: string }).journal_mode, 'wal');
    assert.deepEqual({ ...raw.prepare('SELECT version FROM schema_version').get() }, { version: 1 });
    raw.close();
  });

  it('refuses a database written by a newer release', async () => {
    const path = join(dir, 'newer.db');
    await (await openSqliteStore({ path })).close();
    const raw = new DatabaseSync(path);
    raw.exec('UPDATE schema_version SET version = 99');
    raw.close();
    await assert.rejects(
      openSqliteStore({ path }),
      /cannot open the store at .*newer\.db: .*version 99, newer than/,
    );
  });

  it('fails with a clear error when the file cannot be opened or is not a database', async () => {
    writeFileSync(join(dir, 'plain-file'), 'not a database, not a directory either '.repeat(100));
    await assert.rejects(
      openSqliteStore({ path: join(dir, 'plain-file', 'store.db') }),
      /^Error: cannot open the store at .*plain-file\/store\.db: /,
    );
    await assert.rejects(
      openSqliteStore({ path: join(dir, 'plain-file') }),
      /^Error: cannot open the store at .*plain-file: file is not a database/,
    );
  });

  it('a second store on the same file sees the first one’s writes, and its onChange is told', async () => {
    const path = join(dir, 'shared.db');
    const a = await openSqliteStore({ path });
    const b = await openSqliteStore({ path });
    try {
      const seen: number[] = [];
      b.onChange((revision) => seen.push(revision));
      const written = await a.write([{ op: 'put', resource: upstream('a', {}) }], { actor: 't' });
      assert.ok(written.ok);
      const deadline = Date.now() + 10_000;
      while (!seen.includes(written.revision) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(seen, [written.revision]);
      assert.equal(
        (await b.get({ kind: 'Upstream', namespace: 'default', name: 'a' }))?.metadata.resourceVersion,
        '1',
      );
      const fromB = await b.write([{ op: 'put', resource: upstream('b', {}) }], { actor: 't' });
      assert.ok(fromB.ok);
      assert.equal(fromB.revision, 2);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
