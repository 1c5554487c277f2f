import { createHash } from 'node:crypto';
import pg from 'pg';
import { createChangeFeed } from './change-feed.ts';
import { describePgUrl, isConnectionLost, PostgresStoreError, wrapPgError } from './postgres-errors.ts';
import { migratePostgres } from './postgres-schema.ts';
import { createPgWatch } from './postgres-watch.ts';
import { checkRecordId, checkUpdateAnswer, recordJson } from './record-value.ts';
import { compareStrings, keyId, keyOf, labelsMatch, sortResources } from './resource-key.ts';
import { type ChangeRow, changeFromRow, changesFilter, changeToRow } from './rows.ts';
import type {
  ResourceKey,
  ResourceStore,
  StoredResource,
  WriteContext,
  WriteOp,
  WriteResult,
} from './types.ts';
import { validateTimeoutMs } from './validate-call.ts';
import { decideWrite, opKeys } from './write-plan.ts';
import { createWriteQueue } from './write-queue.ts';

export interface PostgresStoreOptions {
  url: string;
  /** Where the store's tables live (created when missing); default `public`. */
  schema?: string;
  /** Connections for reads and writes (one more is used for LISTEN); default 10. */
  poolSize?: number;
  /** Server-side bound on each statement; default 10 s. */
  statementTimeoutMs?: number;
}

const connectTimeoutMs = 5000;
const pollMs = 2000;
/** First number of the two-part advisory lock key: "gate" in ASCII, so the lock is recognisable. */
const lockNamespace = 0x67617465;

/**
 * The PostgreSQL store, for several control planes on one database. Every write (and every record
 * write) is one READ COMMITTED transaction that first takes `pg_advisory_xact_lock` on a key of the
 * schema, then reads, runs validate(), writes the changes, bumps the single-row revision counter
 * and NOTIFYs — so writes from all control planes are serialised, validate() always sees the latest
 * committed set, revisions are gapless and commit in revision order (the lock is released only
 * after the commit is visible), and a watcher that reads `changes({ after })` on each notification
 * can never skip one. See docs/decisions/0008-control-plane-store.md.
 */
export async function openPostgresStore(options: PostgresStoreOptions): Promise<ResourceStore> {
  const where = describePgUrl(options.url);
  const schema = options.schema ?? 'public';
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) {
    throw new TypeError(
      `the PostgreSQL store schema must be an identifier (letters, digits, _), got ${schema}`,
    );
  }
  const poolSize = options.poolSize ?? 10;
  const statementTimeoutMs = options.statementTimeoutMs ?? 10_000;
  if (!Number.isSafeInteger(poolSize) || poolSize < 1)
    throw new TypeError('poolSize must be a positive integer');
  if (!Number.isSafeInteger(statementTimeoutMs) || statementTimeoutMs < 1) {
    throw new TypeError('statementTimeoutMs must be a positive integer');
  }
  const s = `"${schema}"`;
  const label = `${where} schema ${schema}`;
  const lockKey = [lockNamespace, schemaHash(schema).readInt32BE(0)] as const;
  const channel = `gatehouse_store_${schemaHash(schema).toString('hex').slice(0, 16)}`;
  // Waiting for another control plane's write may take as long as its validate() may.
  const lockWaitMs = validateTimeoutMs + statementTimeoutMs;

  const clientConfig: pg.ClientConfig = {
    connectionString: options.url,
    connectionTimeoutMillis: connectTimeoutMs,
    statement_timeout: statementTimeoutMs,
    // Client-side too: a server that stops answering (not just a slow statement) fails the call.
    query_timeout: statementTimeoutMs + 2000,
    // A control plane that dies mid-write must not hold the lock for ever.
    idle_in_transaction_session_timeout: validateTimeoutMs + 15_000,
    keepAlive: true,
    // The URL's own application_name, when it has one, wins.
    fallback_application_name: 'gatehouse-control-plane',
  };
  const pool = new pg.Pool({ ...clientConfig, max: poolSize, idleTimeoutMillis: 30_000 });
  // An idle connection whose server went away emits 'error' on the pool: the pool drops it and the
  // next call opens a new one; unhandled, it would crash the process.
  pool.on('error', () => {});

  type Client = pg.PoolClient;
  const query = async <R extends pg.QueryResultRow>(
    client: Client | pg.Pool,
    what: string,
    text: string,
    values?: unknown[],
    queryTimeout?: number,
  ): Promise<pg.QueryResult<R>> => {
    try {
      return await client.query<R>({
        text,
        ...(values ? { values } : {}),
        ...(queryTimeout ? { query_timeout: queryTimeout } : {}),
      } as pg.QueryConfig);
    } catch (err) {
      throw wrapPgError(label, what, err);
    }
  };

  /**
   * Runs `body` on a pooled connection. A connection found dead (the server restarted, a backend
   * was terminated) is discarded and, when `body` reports it sent nothing that could have
   * committed, tried once more on a fresh one.
   */
  const withClient = async <T>(
    what: string,
    body: (client: Client, sent: { commit: boolean }) => Promise<T>,
  ) => {
    for (let attempt = 1; ; attempt++) {
      let client: Client;
      try {
        client = await pool.connect();
      } catch (err) {
        throw wrapPgError(label, `${what}: cannot connect`, err);
      }
      const sent = { commit: false };
      try {
        const value = await body(client, sent);
        client.release();
        return value;
      } catch (err) {
        const lost = isConnectionLost(err);
        client.release(lost ? (err as Error) : undefined);
        if (lost && sent.commit) {
          throw new PostgresStoreError(
            `PostgreSQL store (${label}): ${what}: the connection was lost during COMMIT, so whether the write was made is unknown; read it back`,
            { cause: err, connectionLost: true },
          );
        }
        if (!lost || attempt >= 2) throw err;
      }
    }
  };

  /** BEGIN; the advisory lock; `body`; COMMIT when it asks to, else ROLLBACK. */
  const locked = <T>(what: string, body: (client: Client) => Promise<{ commit: boolean; value: T }>) =>
    withClient(what, async (client, sent) => {
      await query(client, what, 'BEGIN ISOLATION LEVEL READ COMMITTED');
      try {
        await query(client, what, `SET LOCAL statement_timeout = ${lockWaitMs}`);
        await query(
          client,
          `${what}: waiting for the write lock`,
          'SELECT pg_advisory_xact_lock($1, $2)',
          [...lockKey],
          lockWaitMs + 2000,
        );
        await query(client, what, `SET LOCAL statement_timeout = ${statementTimeoutMs}`);
        const { commit, value } = await body(client);
        sent.commit = commit;
        await query(client, what, commit ? 'COMMIT' : 'ROLLBACK');
        return value;
      } catch (err) {
        if (!sent.commit) await client.query('ROLLBACK').catch(() => {});
        throw err;
      }
    });

  const readRevision = async (client: Client | pg.Pool = pool) =>
    Number(
      (await query<{ revision: string }>(client, 'read the revision', `SELECT revision FROM ${s}.store_meta`))
        .rows[0]!.revision,
    );

  // Opening: the schema is created or upgraded under the same lock writes take.
  try {
    await locked('open', async (client) => {
      await migratePostgres(client, s);
      return { commit: true, value: undefined };
    });
  } catch (err) {
    await pool.end().catch(() => {});
    const message = err instanceof Error ? err.message : String(err);
    throw new PostgresStoreError(
      `cannot open the PostgreSQL store at ${where} (schema ${schema}): ${message}`,
      {
        cause: err,
        connectionLost: isConnectionLost(err),
      },
    );
  }

  const feed = createChangeFeed(await readRevision(), () => {});
  const watch = createPgWatch({
    clientConfig,
    channel,
    readRevision: () => readRevision(),
    publish: (revision) => feed.publish(revision),
    pollMs,
  });
  const queue = createWriteQueue();
  let closed = false;
  const open = () => {
    if (closed) throw new Error('the store is closed');
  };
  const read = async <T>(what: string, body: (client: Client) => Promise<T>): Promise<T> => {
    open();
    return withClient(what, body);
  };

  const loadResources = async (client: Client, keys: readonly ResourceKey[] | 'all') => {
    const current = new Map<string, StoredResource>();
    if (keys !== 'all' && keys.length === 0) return current;
    const { rows } =
      keys === 'all'
        ? await query<{ doc: string }>(client, 'read resources', `SELECT doc FROM ${s}.resources`)
        : await query<{ doc: string }>(
            client,
            'read resources',
            `SELECT doc FROM ${s}.resources WHERE (kind, namespace, name) IN
               (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))`,
            [keys.map((k) => k.kind), keys.map((k) => k.namespace), keys.map((k) => k.name)],
          );
    for (const row of rows) {
      const resource = JSON.parse(row.doc) as StoredResource;
      current.set(keyId(keyOf(resource)), resource);
    }
    return current;
  };

  const write = (ops: readonly WriteOp[], context: WriteContext) =>
    queue(async (): Promise<WriteResult> => {
      open();
      let committed = 0;
      const result = await locked(
        'write',
        async (client): Promise<{ commit: boolean; value: WriteResult }> => {
          const revision = await readRevision(client);
          const current = await loadResources(client, context.validate ? 'all' : opKeys(ops));
          const decision = await decideWrite(ops, context, current, revision);
          if (!decision.commit) return decision;
          const { value } = decision;
          await saveChanges(client, value.changes.map(changeToRow));
          await query(client, 'write', `UPDATE ${s}.store_meta SET revision = $1`, [value.revision]);
          // Delivered at COMMIT, to every control plane listening, this one included.
          await query(client, 'write', 'SELECT pg_notify($1, $2)', [channel, String(value.revision)]);
          committed = value.revision;
          return { commit: true, value };
        },
      );
      if (committed > 0) feed.publish(committed);
      return result;
    });

  const saveChanges = async (client: Client, rows: ChangeRow[]) => {
    const column = <K extends keyof ChangeRow>(k: K) => rows.map((r) => r[k]);
    await query(
      client,
      'write',
      `INSERT INTO ${s}.changes (revision, at, actor, action, kind, namespace, name, before_doc, after_doc)
       SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])`,
      [
        column('revision'),
        column('at'),
        column('actor'),
        column('action'),
        column('kind'),
        column('namespace'),
        column('name'),
        column('before_doc'),
        column('after_doc'),
      ],
    );
    // Ops apply in order, so the last change of each resource is its final state.
    const last = new Map<string, ChangeRow>();
    for (const row of rows)
      last.set(
        keyId({ kind: row.kind as ResourceKey['kind'], namespace: row.namespace, name: row.name }),
        row,
      );
    const kept = [...last.values()].filter((r) => r.after_doc !== null);
    const gone = [...last.values()].filter((r) => r.after_doc === null);
    if (kept.length > 0) {
      await query(
        client,
        'write',
        `INSERT INTO ${s}.resources (kind, namespace, name, revision, doc)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[])
         ON CONFLICT (kind, namespace, name) DO UPDATE SET revision = excluded.revision, doc = excluded.doc`,
        [
          kept.map((r) => r.kind),
          kept.map((r) => r.namespace),
          kept.map((r) => r.name),
          kept.map((r) => r.revision),
          kept.map((r) => r.after_doc),
        ],
      );
    }
    if (gone.length > 0) {
      await query(
        client,
        'write',
        `DELETE FROM ${s}.resources WHERE (kind, namespace, name) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))`,
        [gone.map((r) => r.kind), gone.map((r) => r.namespace), gone.map((r) => r.name)],
      );
    }
  };

  const recordWrite = <T>(what: string, body: (client: Client) => Promise<T>) =>
    queue(async () => {
      open();
      return locked(what, async (client) => ({ commit: true, value: await body(client) }));
    });
  const getRecord = async (client: Client, collection: string, id: string) => {
    const { rows } = await query<{ value: string }>(
      client,
      'read a record',
      `SELECT value FROM ${s}.records WHERE collection = $1 AND id = $2`,
      [collection, id],
    );
    return rows[0] ? (JSON.parse(rows[0].value) as unknown) : null;
  };
  const putRecord = (client: Client, collection: string, id: string, text: string) =>
    query(
      client,
      'write a record',
      `INSERT INTO ${s}.records (collection, id, value) VALUES ($1, $2, $3)
       ON CONFLICT (collection, id) DO UPDATE SET value = excluded.value`,
      [collection, id, text],
    );
  const deleteRecord = async (client: Client, collection: string, id: string) =>
    ((
      await query(client, 'delete a record', `DELETE FROM ${s}.records WHERE collection = $1 AND id = $2`, [
        collection,
        id,
      ])
    ).rowCount ?? 0) > 0;

  const store: ResourceStore = {
    backend: 'postgres',
    get: (key) =>
      read('get', async (client) => {
        const { rows } = await query<{ doc: string }>(
          client,
          'get',
          `SELECT doc FROM ${s}.resources WHERE kind = $1 AND namespace = $2 AND name = $3`,
          [key.kind, key.namespace, key.name],
        );
        return rows[0] ? (JSON.parse(rows[0].doc) as StoredResource) : null;
      }),
    list: (q = {}) =>
      read('list', async (client) => {
        // One statement, one snapshot: the revision and the rows agree.
        const { rows } = await query<{ revision: string; doc: string | null }>(
          client,
          'list',
          `SELECT m.revision, r.doc FROM ${s}.store_meta m
           LEFT JOIN ${s}.resources r ON ($1::text IS NULL OR r.kind = $1) AND ($2::text IS NULL OR r.namespace = $2)`,
          [q.kind ?? null, q.namespace ?? null],
        );
        const items = rows
          .filter((row) => row.doc !== null)
          .map((row) => JSON.parse(row.doc!) as StoredResource)
          .filter((r) => labelsMatch(r, q.labels));
        return { items: sortResources(items), revision: Number(rows[0]!.revision) };
      }),
    write,
    changes: async (q) => {
      const { after, key, limit } = changesFilter(q);
      return read('changes', async (client) => {
        const { rows } = await query<ChangeRow>(
          client,
          'changes',
          `SELECT * FROM ${s}.changes
           WHERE revision > $1 AND ($2::text IS NULL OR kind = $2) AND ($3::text IS NULL OR namespace = $3)
             AND ($4::text IS NULL OR name = $4)
           ORDER BY revision LIMIT $5`,
          [after, key.kind ?? null, key.namespace ?? null, key.name ?? null, limit],
        );
        return rows.map(changeFromRow);
      });
    },
    revision: () => read('revision', (client) => readRevision(client)),
    onChange(listener) {
      const unsubscribe = feed.subscribe(listener);
      if (!closed) watch.start();
      return unsubscribe;
    },
    recordGet: async <T>(collection: string, id: string) => {
      checkRecordId(collection, id);
      return read('recordGet', async (client) => (await getRecord(client, collection, id)) as T | null);
    },
    recordList: async <T>(collection: string) => {
      checkRecordId(collection, '-');
      return read('recordList', async (client) => {
        const { rows } = await query<{ id: string; value: string }>(
          client,
          'recordList',
          `SELECT id, value FROM ${s}.records WHERE collection = $1`,
          [collection],
        );
        return rows
          .map((row) => ({ id: row.id, value: JSON.parse(row.value) as T }))
          .sort((a, b) => compareStrings(a.id, b.id));
      });
    },
    recordPut: async (collection, id, value) => {
      const text = recordJson(collection, id, value);
      await recordWrite('recordPut', (client) => putRecord(client, collection, id, text));
    },
    recordDelete: async (collection, id) => {
      checkRecordId(collection, id);
      return recordWrite('recordDelete', (client) => deleteRecord(client, collection, id));
    },
    recordUpdate: async <T>(
      collection: string,
      id: string,
      update: (current: T | null) => T | null | undefined,
    ) => {
      checkRecordId(collection, id);
      return recordWrite('recordUpdate', async (client) => {
        const current = (await getRecord(client, collection, id)) as T | null;
        const next = update(current);
        checkUpdateAnswer(collection, id, next);
        if (next === undefined) return current;
        if (next === null) {
          await deleteRecord(client, collection, id);
          return null;
        }
        const text = recordJson(collection, id, next);
        await putRecord(client, collection, id, text);
        return JSON.parse(text) as T;
      });
    },
    async close() {
      if (closed) return;
      await queue(async () => {
        closed = true;
      });
      await watch.stop();
      await pool.end().catch(() => {});
    },
  };
  return store;
}

function schemaHash(schema: string): Buffer {
  return createHash('sha256').update(`gatehouse-store:${schema}`).digest();
}
