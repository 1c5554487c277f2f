// One conformance suite for every analytics event store: node:sqlite (a temp file) and real
// PostgreSQL (a schema of its own, dropped at the end).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe } from 'node:test';
import { eventStoreConformance } from '../src/analytics/store/conformance.ts';
import { PostgresEventStore } from '../src/analytics/store/postgres.ts';
import { SqliteEventStore } from '../src/analytics/store/sqlite.ts';
import { dropSchemas, sharedPostgres, testPgUrl, uniqueSchema } from './helpers/postgres.ts';

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-analytics-store-'));
let files = 0;
after(() => rmSync(dir, { recursive: true, force: true }));

describe('sqlite event store', () => {
  eventStoreConformance('sqlite', async () => new SqliteEventStore(join(dir, `events-${files++}.db`)));
});

const postgres = await sharedPostgres();
const schemas: string[] = [];
after(() => (postgres.ok ? dropSchemas(schemas) : undefined));

describe('postgres event store', { skip: postgres.ok ? false : postgres.skip }, () => {
  eventStoreConformance('postgres', async () => {
    const schema = uniqueSchema('analytics');
    schemas.push(schema);
    return new PostgresEventStore({ url: testPgUrl, schema });
  });
});
