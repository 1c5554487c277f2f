import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { createChangeFeed } from './change-feed.ts';
import { checkRecordId, checkUpdateAnswer, recordJson } from './record-value.ts';
import { compareStrings, keyId, labelsMatch, sortResources } from './resource-key.ts';
import { type ChangeRow, changeFromRow, changesFilter, changeToRow } from './rows.ts';
import { migrateSqlite } from './sqlite-schema.ts';
import type { ResourceKey, ResourceStore, StoredResource, WriteOp, WriteResult } from './types.ts';
import { decideWrite, opKeys } from './write-plan.ts';
import { createWriteQueue } from './write-queue.ts';

/** How long a statement waits for another process' lock on the file before failing (SQLITE_BUSY). */
const busyTimeoutMs = 5000;
/** How often a store with listeners looks for writes made by another process on the same file. */
const pollMs = 1000;

/**
 * The embedded store: one node:sqlite connection (a file in WAL mode, or `:memory:` for tests).
 * Writes from this process go through one queue; each runs in a BEGIN IMMEDIATE transaction that
 * holds SQLite's write lock from the first read to the commit, validate() included, so another
 * process writing the same file waits (busy_timeout) rather than interleaves. Nothing is written
 * to the database until validate() has answered, so reads made meanwhile (same connection, same
 * transaction) see only committed data.
 */
export async function openSqliteStore(options: { path: string }): Promise<ResourceStore> {
  const { path } = options;
  const db = openDatabase(path);
  const queue = createWriteQueue();
  let closed = false;

  const stmt = {
    revision: db.prepare('SELECT revision FROM store_meta WHERE id = 1'),
    setRevision: db.prepare('UPDATE store_meta SET revision = ? WHERE id = 1'),
    get: db.prepare('SELECT doc FROM resources WHERE kind = ? AND namespace = ? AND name = ?'),
    all: db.prepare('SELECT doc FROM resources'),
    upsert: db.prepare(
      `INSERT INTO resources (kind, namespace, name, revision, doc) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (kind, namespace, name) DO UPDATE SET revision = excluded.revision, doc = excluded.doc`,
    ),
    remove: db.prepare('DELETE FROM resources WHERE kind = ? AND namespace = ? AND name = ?'),
    addChange: db.prepare(
      `INSERT INTO changes (revision, at, actor, action, kind, namespace, name, before_doc, after_doc)
       VALUES (:revision, :at, :actor, :action, :kind, :namespace, :name, :before_doc, :after_doc)`,
    ),
    recordGet: db.prepare('SELECT value FROM records WHERE collection = ? AND id = ?'),
    recordList: db.prepare('SELECT id, value FROM records WHERE collection = ?'),
    recordPut: db.prepare(
      `INSERT INTO records (collection, id, value) VALUES (?, ?, ?)
       ON CONFLICT (collection, id) DO UPDATE SET value = excluded.value`,
    ),
    recordDelete: db.prepare('DELETE FROM records WHERE collection = ? AND id = ?'),
  };

  const readRevision = () => Number((stmt.revision.get() as { revision: number }).revision);
  const readOne = (key: ResourceKey): StoredResource | null => {
    const row = stmt.get.get(key.kind, key.namespace, key.name) as { doc: string } | undefined;
    return row ? (JSON.parse(row.doc) as StoredResource) : null;
  };
  const readAll = (): StoredResource[] =>
    (stmt.all.all() as Array<{ doc: string }>).map((row) => JSON.parse(row.doc) as StoredResource);

  const feed = createChangeFeed(readRevision(), () => {});
  let poll: NodeJS.Timeout | undefined;
  const pollOtherWriters = () => {
    if (closed || feed.size === 0) return;
    try {
      feed.publish(readRevision());
    } catch {
      // Busy or closing: the next tick tries again.
    }
  };

  const open = () => {
    if (closed) throw new Error('the store is closed');
  };
  /** A consistent read: its own read transaction unless a write's transaction is already open. */
  const snapshot = <T>(read: () => T): T => {
    if (db.isTransaction) return read();
    db.exec('BEGIN');
    try {
      return read();
    } finally {
      db.exec('COMMIT');
    }
  };
  /** BEGIN IMMEDIATE … COMMIT around `body`; rolled back when it throws or asks to. */
  const inWriteTransaction = async <T>(body: () => Promise<{ commit: boolean; value: T }>): Promise<T> => {
    db.exec('BEGIN IMMEDIATE');
    let finished = false;
    try {
      const { commit, value } = await body();
      db.exec(commit ? 'COMMIT' : 'ROLLBACK');
      finished = true;
      return value;
    } finally {
      if (!finished && db.isTransaction) db.exec('ROLLBACK');
    }
  };

  const write = (ops: readonly WriteOp[], context: Parameters<ResourceStore['write']>[1]) =>
    queue(async (): Promise<WriteResult> => {
      open();
      let committed = 0;
      const result = await inWriteTransaction(async (): Promise<{ commit: boolean; value: WriteResult }> => {
        const revision = readRevision();
        const current = new Map<string, StoredResource>();
        if (context.validate) {
          for (const resource of readAll()) current.set(keyId(resourceKey(resource)), resource);
        } else {
          for (const key of opKeys(ops)) {
            const resource = readOne(key);
            if (resource) current.set(keyId(key), resource);
          }
        }
        const decision = await decideWrite(ops, context, current, revision);
        if (!decision.commit) return decision;
        const { value } = decision;
        for (const change of value.changes) {
          stmt.addChange.run({ ...changeToRow(change) });
          const { kind, namespace, name } = change.key;
          if (change.after)
            stmt.upsert.run(kind, namespace, name, change.revision, JSON.stringify(change.after));
          else stmt.remove.run(kind, namespace, name);
        }
        stmt.setRevision.run(value.revision);
        committed = value.revision;
        return { commit: true, value };
      });
      if (committed > 0) feed.publish(committed);
      return result;
    });

  const recordWrite = <T>(run: () => T): Promise<T> =>
    queue(async () => {
      open();
      return inWriteTransaction(async () => ({ commit: true, value: run() }));
    });

  const store: ResourceStore = {
    backend: 'sqlite',
    async get(key) {
      open();
      return readOne(key);
    },
    async list(query = {}) {
      open();
      return snapshot(() => {
        const revision = readRevision();
        const items = readAll().filter(
          (r) =>
            (query.kind === undefined || r.kind === query.kind) &&
            (query.namespace === undefined || r.metadata.namespace === query.namespace) &&
            labelsMatch(r, query.labels),
        );
        return { items: sortResources(items), revision };
      });
    },
    write,
    async changes(query) {
      open();
      const { after, key, limit } = changesFilter(query);
      const where = ['revision > ?'];
      const params: Array<string | number> = [after];
      for (const field of ['kind', 'namespace', 'name'] as const) {
        if (key[field] !== undefined) {
          where.push(`${field} = ?`);
          params.push(key[field]);
        }
      }
      const sql = `SELECT * FROM changes WHERE ${where.join(' AND ')} ORDER BY revision LIMIT ?`;
      const rows = db.prepare(sql).all(...params, limit ?? -1) as unknown as ChangeRow[];
      return rows.map(changeFromRow);
    },
    async revision() {
      open();
      return readRevision();
    },
    onChange(listener) {
      const unsubscribe = feed.subscribe(listener);
      if (!poll && !closed) {
        poll = setInterval(pollOtherWriters, pollMs);
        poll.unref();
      }
      return unsubscribe;
    },
    async recordGet<T>(collection: string, id: string) {
      open();
      checkRecordId(collection, id);
      const row = stmt.recordGet.get(collection, id) as { value: string } | undefined;
      return row ? (JSON.parse(row.value) as T) : null;
    },
    async recordList<T>(collection: string) {
      open();
      checkRecordId(collection, '-');
      const rows = stmt.recordList.all(collection) as Array<{ id: string; value: string }>;
      return rows
        .map((row) => ({ id: row.id, value: JSON.parse(row.value) as T }))
        .sort((a, b) => compareStrings(a.id, b.id));
    },
    async recordPut(collection, id, value) {
      const text = recordJson(collection, id, value);
      await recordWrite(() => stmt.recordPut.run(collection, id, text));
    },
    async recordDelete(collection, id) {
      checkRecordId(collection, id);
      return recordWrite(() => Number(stmt.recordDelete.run(collection, id).changes) > 0);
    },
    async recordUpdate<T>(
      collection: string,
      id: string,
      update: (current: T | null) => T | null | undefined,
    ) {
      checkRecordId(collection, id);
      return recordWrite(() => {
        const row = stmt.recordGet.get(collection, id) as { value: string } | undefined;
        const current = row ? (JSON.parse(row.value) as T) : null;
        const next = update(current);
        checkUpdateAnswer(collection, id, next);
        if (next === undefined) return current;
        if (next === null) {
          stmt.recordDelete.run(collection, id);
          return null;
        }
        const text = recordJson(collection, id, next);
        stmt.recordPut.run(collection, id, text);
        return JSON.parse(text) as T;
      });
    },
    async close() {
      if (closed) return;
      // Writes already queued finish first; later calls are refused.
      await queue(async () => {
        closed = true;
      });
      clearInterval(poll);
      db.close();
    },
  };
  return store;
}

function openDatabase(path: string): DatabaseSync {
  try {
    if (path !== ':memory:' && !existsSync(path)) {
      // The store holds the control plane's keys: private to the user that runs it.
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      closeSync(openSync(path, 'a', 0o600));
    }
    const db = new DatabaseSync(path, { timeout: busyTimeoutMs });
    try {
      if (path !== ':memory:') db.exec('PRAGMA journal_mode = WAL');
      db.exec(`PRAGMA busy_timeout = ${busyTimeoutMs}`);
      db.exec('PRAGMA synchronous = FULL');
      migrateSqlite(db);
    } catch (err) {
      db.close();
      throw err;
    }
    return db;
  } catch (err) {
    throw new Error(`cannot open the store at ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function resourceKey(resource: StoredResource): ResourceKey {
  return { kind: resource.kind, namespace: resource.metadata.namespace, name: resource.metadata.name };
}
