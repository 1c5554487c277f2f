import type { PoolClient } from 'pg';

/**
 * The PostgreSQL schema, one entry per version (entry i takes version i to i + 1); `s` is the
 * quoted schema name. Documents are `text`, not `jsonb`: jsonb reorders keys, and a spec should
 * come back as it was written, as it does from SQLite. Append, never edit.
 */
const migrations: ReadonlyArray<(s: string) => string> = [
  (s) => `
  CREATE TABLE ${s}.store_meta (
    id integer PRIMARY KEY CHECK (id = 1),
    revision bigint NOT NULL
  );
  INSERT INTO ${s}.store_meta (id, revision) VALUES (1, 0);
  CREATE TABLE ${s}.resources (
    kind text NOT NULL,
    namespace text NOT NULL,
    name text NOT NULL,
    revision bigint NOT NULL,
    doc text NOT NULL,
    PRIMARY KEY (kind, namespace, name)
  );
  CREATE TABLE ${s}.changes (
    revision bigint PRIMARY KEY,
    at text NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    kind text NOT NULL,
    namespace text NOT NULL,
    name text NOT NULL,
    before_doc text,
    after_doc text
  );
  CREATE INDEX changes_by_key ON ${s}.changes (kind, namespace, name, revision);
  CREATE TABLE ${s}.records (
    collection text NOT NULL,
    id text NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (collection, id)
  );
  `,
];

/**
 * Creates or upgrades the schema inside the caller's transaction, which already holds the store's
 * advisory lock: two control planes starting at once do not both run CREATE TABLE.
 */
export async function migratePostgres(client: PoolClient, quotedSchema: string): Promise<void> {
  const s = quotedSchema;
  await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
  await client.query(`CREATE TABLE IF NOT EXISTS ${s}.schema_version (version integer NOT NULL)`);
  const { rows } = await client.query<{ version: number }>(`SELECT version FROM ${s}.schema_version`);
  if (rows.length === 0) await client.query(`INSERT INTO ${s}.schema_version (version) VALUES (0)`);
  const version = rows[0]?.version ?? 0;
  if (version > migrations.length) {
    throw new Error(
      `the store's schema is version ${version}, newer than this release knows (${migrations.length}): upgrade gatehouse`,
    );
  }
  for (let v = version; v < migrations.length; v++) await client.query(migrations[v]!(s));
  await client.query(`UPDATE ${s}.schema_version SET version = $1`, [migrations.length]);
}
