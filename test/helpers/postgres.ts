// Real PostgreSQL for tests: the shared server (GATEHOUSE_TEST_PG_URL, required in CI). Tests share
// it, so each one works in schemas of its own (uniqueSchema) and drops them at the end.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const testPgUrl = process.env.GATEHOUSE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * Whether the shared PostgreSQL answers. In CI (`CI=true`) its absence is a failure, not a skip:
 * throws "PostgreSQL is required in CI: ...". Elsewhere returns a reason to skip with.
 */
export async function sharedPostgres(): Promise<{ ok: true } | { ok: false; skip: string }> {
  try {
    await adminQuery('SELECT 1');
    return { ok: true };
  } catch (err) {
    const reason = `${redacted(testPgUrl)}: ${(err as Error).message}`;
    if (process.env.CI === 'true') {
      throw new Error(`PostgreSQL is required in CI: start it or set GATEHOUSE_TEST_PG_URL (${reason})`);
    }
    return { ok: false, skip: `no PostgreSQL at ${reason}` };
  }
}

/** A schema name no other test run uses: `gh_test_<what>_<random>`. */
export function uniqueSchema(what: string): string {
  return `gh_test_${what.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${randomBytes(5).toString('hex')}`;
}

export async function dropSchemas(schemas: Iterable<string>): Promise<void> {
  for (const schema of schemas)
    await adminQuery(`DROP SCHEMA IF EXISTS "${schema.replace(/"/g, '""')}" CASCADE`);
}

/** `url` with an application_name, so a test can find (and terminate) exactly its own connections. */
export function withApplicationName(url: string, applicationName: string): string {
  const u = new URL(url);
  u.searchParams.set('application_name', applicationName);
  return u.toString();
}

/** pg_terminate_backend for every connection with this application_name; resolves to how many. */
export async function terminateBackends(applicationName: string): Promise<number> {
  const rows = await adminQuery<{ terminated: boolean }>(
    `SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity
     WHERE application_name = $1 AND pid <> pg_backend_pid()`,
    [applicationName],
  );
  return rows.filter((r) => r.terminated).length;
}

/** One statement on a short-lived connection of its own (bounded: 5 s to connect, 10 s to run). */
export async function adminQuery<R extends pg.QueryResultRow>(
  text: string,
  values?: unknown[],
): Promise<R[]> {
  const client = new pg.Client({
    connectionString: testPgUrl,
    connectionTimeoutMillis: 5000,
    statement_timeout: 10_000,
    query_timeout: 12_000,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}

function redacted(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    return u.toString();
  } catch {
    return '(an invalid URL)';
  }
}
