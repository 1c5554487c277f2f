import type { DatabaseSync } from 'node:sqlite';

/**
 * The SQLite schema, one entry per version: entry i takes the database from version i to i + 1.
 * Append, never edit: a database remembers its version in `schema_version`.
 */
const migrations: readonly string[] = [
  `
  CREATE TABLE store_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
  );
  INSERT INTO store_meta (id, revision) VALUES (1, 0);
  CREATE TABLE resources (
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    revision INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
  ) WITHOUT ROWID;
  CREATE TABLE changes (
    revision INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    before_doc TEXT,
    after_doc TEXT
  );
  CREATE INDEX changes_by_key ON changes (kind, namespace, name, revision);
  CREATE TABLE records (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (collection, id)
  ) WITHOUT ROWID;
  `,
];

/** Brings the database to the newest schema in one transaction; refuses a database from a newer release. */
export function migrateSqlite(db: DatabaseSync): void {
  db.exec('BEGIN IMMEDIATE');
  try {
    db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    const row = db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined;
    if (!row) db.prepare('INSERT INTO schema_version (version) VALUES (0)').run();
    const version = row?.version ?? 0;
    if (version > migrations.length) {
      throw new Error(
        `the store's schema is version ${version}, newer than this release knows (${migrations.length}): upgrade gatehouse`,
      );
    }
    for (let v = version; v < migrations.length; v++) db.exec(migrations[v]!);
    db.prepare('UPDATE schema_version SET version = ?').run(migrations.length);
    db.exec('COMMIT');
  } catch (err) {
    db.exec('ROLLBACK');
    throw err;
  }
}
