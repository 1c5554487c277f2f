import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  adminQuery,
  dropSchemas,
  sharedPostgres,
  terminateBackends,
  testPgUrl,
  uniqueSchema,
  withApplicationName,
} from '../../../test/helpers/postgres.ts';
import { freePort } from '../../../test/helpers/process.ts';
import { describeStoreConformance } from './conformance.ts';
import { openStore } from './open.ts';
import { openPostgresStore } from './postgres.ts';
import type { Change, ResourceInput, ResourceStore, WriteResult } from './types.ts';

const postgres = await sharedPostgres();
const fileSchema = uniqueSchema('store');
const schemas: string[] = [];
let opened = 0;
/** A schema of this file's, dropped at the end. */
const newSchema = () => {
  const schema = `${fileSchema}_${opened++}`;
  schemas.push(schema);
  return schema;
};
after(() => (postgres.ok ? dropSchemas(schemas) : undefined));

const upstream = (name: string, spec: Record<string, unknown>, resourceVersion?: string): ResourceInput => ({
  apiVersion: 'gatehouse.dev/v1',
  kind: 'Upstream',
  metadata: { name, namespace: 'default', ...(resourceVersion ? { resourceVersion } : {}) },
  spec,
});
const gateway = (name: string): ResourceInput => ({
  apiVersion: 'gatehouse.dev/v1',
  kind: 'Gateway',
  metadata: { name, namespace: 'default' },
  spec: {},
});
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
function ok(result: WriteResult): Extract<WriteResult, { ok: true }> {
  if (!result.ok) assert.fail(`write refused: ${result.reason}: ${result.message}`);
  return result;
}

/** Two control planes: separate stores (separate pools) on one database and schema. */
async function twoControlPlanes(): Promise<[ResourceStore, ResourceStore, () => Promise<void>]> {
  const schema = newSchema();
  const [a, b] = await Promise.all([
    openPostgresStore({ url: testPgUrl, schema, poolSize: 4 }),
    openPostgresStore({ url: testPgUrl, schema, poolSize: 4 }),
  ]);
  return [a, b, async () => void (await Promise.all([a.close(), b.close()]))];
}

if (!postgres.ok) {
  console.log(`# skipping the PostgreSQL store tests: ${postgres.skip}`);
  it('PostgreSQL store', { skip: postgres.skip }, () => {});
} else {
  describeStoreConformance('postgres', () =>
    openStore({ backend: 'postgres', url: testPgUrl, schema: newSchema() }),
  );

  describe('postgres: two control planes on one database', () => {
    it('concurrent conflicting updates: exactly one wins, every other one is a conflict', async () => {
      const [a, b, close] = await twoControlPlanes();
      try {
        const created = ok(
          await a.write([{ op: 'put', resource: upstream('hot', { n: -1 }) }], { actor: 't' }),
        );
        const version = created.changes[0]!.after!.metadata.resourceVersion;
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            (i % 2 ? a : b).write([{ op: 'put', resource: upstream('hot', { n: i }, version) }], {
              actor: `w${i}`,
            }),
          ),
        );
        const winners = results.filter((r) => r.ok);
        assert.equal(winners.length, 1);
        assert.ok(results.every((r) => r.ok || r.reason === 'conflict'));
        const stored = await b.get({ kind: 'Upstream', namespace: 'default', name: 'hot' });
        assert.deepEqual(stored, ok(winners[0]!).changes[0]!.after);
        assert.equal((await a.changes()).length, 2);
      } finally {
        await close();
      }
    });

    it('validate() runs under the lock: two control planes cannot both pass it against a stale set', async () => {
      const [a, b, close] = await twoControlPlanes();
      try {
        // The rule: at most one Gateway. Each validate() waits a little, so without the lock both
        // would see an empty set and both would pass.
        const atMostOneGateway = async (after: readonly { kind: string }[]) => {
          await sleep(50);
          const count = after.filter((r) => r.kind === 'Gateway').length;
          return count > 1
            ? [{ file: '', line: 0, column: 0, path: '', message: `${count} gateways, at most one allowed` }]
            : [];
        };
        const results = await Promise.all([
          a.write([{ op: 'put', resource: gateway('one') }], { actor: 'a', validate: atMostOneGateway }),
          b.write([{ op: 'put', resource: gateway('two') }], { actor: 'b', validate: atMostOneGateway }),
          a.write([{ op: 'put', resource: gateway('three') }], { actor: 'a', validate: atMostOneGateway }),
          b.write([{ op: 'put', resource: gateway('four') }], { actor: 'b', validate: atMostOneGateway }),
        ]);
        assert.equal(results.filter((r) => r.ok).length, 1);
        assert.ok(results.every((r) => r.ok || r.reason === 'invalid'));
        assert.equal((await a.list({ kind: 'Gateway' })).items.length, 1);
      } finally {
        await close();
      }
    });

    it('interleaved writes from both: every change once, revisions strictly increasing, each sees the other', async () => {
      const [a, b, close] = await twoControlPlanes();
      try {
        const seenByA: number[] = [];
        const seenByB: number[] = [];
        a.onChange((r) => seenByA.push(r));
        // A watcher as the distribution code would write one: on each call, read what is new.
        const watched: Change[] = [];
        let reading = Promise.resolve();
        b.onChange((r) => {
          seenByB.push(r);
          reading = reading.then(async () => {
            const last = watched.at(-1)?.revision ?? 0;
            watched.push(...(await b.changes({ after: last })));
          });
        });
        const results = await Promise.all(
          Array.from({ length: 60 }, (_, i) =>
            (i % 2 ? a : b).write([{ op: 'put', resource: upstream(`u${i}`, { i }) }], {
              actor: i % 2 ? 'a' : 'b',
            }),
          ),
        );
        const revisions = results.map((r) => ok(r).revision);
        assert.equal(new Set(revisions).size, 60);
        const log = await a.changes();
        assert.deepEqual(
          log.map((c) => c.revision),
          Array.from({ length: 60 }, (_, i) => i + 1),
        );
        assert.equal(new Set(log.map((c) => c.key.name)).size, 60);
        assert.deepEqual(await b.changes(), log);
        const fromA = results.filter((_, i) => i % 2).map((r) => ok(r).revision);
        const fromB = results.filter((_, i) => !(i % 2)).map((r) => ok(r).revision);
        await until(
          () => seenByB.includes(Math.max(...fromA)) || seenByB.at(-1) === 60,
          "b told of a's writes",
        );
        await until(
          () => seenByA.includes(Math.max(...fromB)) || seenByA.at(-1) === 60,
          "a told of b's writes",
        );
        await until(() => seenByA.at(-1) === 60 && seenByB.at(-1) === 60, 'both told of the last revision');
        await until(async () => {
          await reading;
          return watched.length === 60;
        }, 'the watcher to have read every change');
        assert.deepEqual(watched, log, 'the watcher missed nothing and saw nothing twice');
        for (const seen of [seenByA, seenByB]) {
          assert.deepEqual(
            seen,
            [...new Set(seen)].sort((x, y) => x - y),
            'increasing',
          );
        }
      } finally {
        await close();
      }
    });

    it('recordUpdate across control planes: one bootstrap token, one consumer', async () => {
      const [a, b, close] = await twoControlPlanes();
      try {
        await a.recordPut('bootstrap-tokens', 'tok', { used: false });
        type Token = { used: boolean; by?: number };
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            (i % 2 ? a : b).recordUpdate<Token>('bootstrap-tokens', 'tok', (current) =>
              current && !current.used ? { used: true, by: i } : undefined,
            ),
          ),
        );
        assert.equal(results.filter((value, i) => value?.by === i).length, 1);
      } finally {
        await close();
      }
    });

    it('two control planes opening a new schema at once both succeed', async () => {
      const [a, b, close] = await twoControlPlanes();
      try {
        assert.equal(await a.revision(), 0);
        assert.equal(await b.revision(), 0);
        const version = await adminQuery<{ version: number }>(
          `SELECT version FROM "${schemas.at(-1)}".schema_version`,
        );
        assert.deepEqual(version, [{ version: 1 }]);
      } finally {
        await close();
      }
    });
  });

  describe('postgres: outages and bad settings', () => {
    it('recovers after its connections are terminated (pg_terminate_backend), and keeps watching', async () => {
      const schema = newSchema();
      const appName = `${schema}_victim`;
      const victim = await openPostgresStore({
        url: withApplicationName(testPgUrl, appName),
        schema,
        poolSize: 3,
      });
      const other = await openPostgresStore({ url: testPgUrl, schema });
      try {
        const seen: number[] = [];
        victim.onChange((r) => seen.push(r));
        const first = ok(await victim.write([{ op: 'put', resource: upstream('a', {}) }], { actor: 't' }));
        // Open a few pooled connections, then kill them all, the LISTEN connection included.
        await Promise.all([
          victim.get({ kind: 'Upstream', namespace: 'default', name: 'a' }),
          victim.list(),
          victim.revision(),
        ]);
        await until(
          async () =>
            (
              await adminQuery(
                `SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND query ILIKE 'LISTEN%'`,
                [appName],
              )
            ).length > 0,
          'the LISTEN connection',
        );
        assert.ok((await terminateBackends(appName)) >= 2);

        // The next calls either work (a dead connection is replaced and the call tried again) or
        // fail with a clear error; within a few tries they work again.
        const outcomes: string[] = [];
        let second: WriteResult | undefined;
        for (let attempt = 0; attempt < 5 && !second; attempt++) {
          try {
            second = await victim.write([{ op: 'put', resource: upstream('b', {}) }], { actor: 't' });
          } catch (err) {
            outcomes.push((err as Error).message);
            assert.match((err as Error).message, /^PostgreSQL store \(postgres:\/\/.*\): /);
          }
        }
        assert.ok(second, `no write succeeded after the outage: ${outcomes.join(' | ')}`);
        assert.equal(ok(second).revision, first.revision + 1);
        assert.ok(await victim.get({ kind: 'Upstream', namespace: 'default', name: 'b' }));

        // Its watch reconnects (or the poll notices): another control plane's write is reported.
        const fromOther = ok(await other.write([{ op: 'put', resource: upstream('c', {}) }], { actor: 't' }));
        await until(
          () => seen.includes(fromOther.revision),
          'the victim told of the other write after the outage',
        );
      } finally {
        await victim.close();
        await other.close();
      }
    });

    it('an unreachable server: open rejects with a clear error, without the password', async () => {
      const port = await freePort();
      const started = Date.now();
      await assert.rejects(
        openPostgresStore({ url: `postgres://postgres:s3cret-pw@127.0.0.1:${port}/test`, schema: 'x' }),
        (err: Error) => {
          assert.match(
            err.message,
            new RegExp(
              `^cannot open the PostgreSQL store at postgres://postgres@127\\.0\\.0\\.1:${port}/test \\(schema x\\): .*ECONNREFUSED`,
            ),
          );
          assert.doesNotMatch(err.message, /s3cret-pw/);
          return true;
        },
      );
      assert.ok(Date.now() - started < 15_000);
    });

    it('a database that does not exist, a bad schema name, a bad URL: clear errors', async () => {
      const url = new URL(testPgUrl);
      url.pathname = '/gh_no_such_database';
      await assert.rejects(
        openPostgresStore({ url: url.toString() }),
        /cannot open the PostgreSQL store at .*gh_no_such_database.*does not exist/,
      );
      await assert.rejects(openPostgresStore({ url: testPgUrl, schema: 'x"; DROP TABLE y; --' }), TypeError);
      await assert.rejects(
        openPostgresStore({ url: 'mysql://localhost/x' }),
        /must start with postgres:\/\//,
      );
    });

    it('refuses a schema written by a newer release', async () => {
      const schema = newSchema();
      await (await openPostgresStore({ url: testPgUrl, schema })).close();
      await adminQuery(`UPDATE "${schema}".schema_version SET version = 99`);
      await assert.rejects(
        openPostgresStore({ url: testPgUrl, schema }),
        /version 99, newer than this release/,
      );
    });
  });
}
