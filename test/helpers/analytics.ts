import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { freePort, type RunningProcess, runCli, writeConfig } from './process.ts';

export const sha256 = (key: string) => createHash('sha256').update(key).digest('hex');

export interface IngestProcess {
  proc: RunningProcess;
  port: number;
  url: string;
  dataDir: string;
  queryToken: string;
}

/** Starts `gatehouse analytics-ingest` trusting gateway `edge` whose admin listens on `adminPort`. */
export async function startIngest(
  dir: string,
  options: { port?: number; adminPort: number; gateway?: string; extraSpec?: string },
): Promise<IngestProcess> {
  const port = options.port ?? (await freePort());
  const gateway = options.gateway ?? 'edge';
  const spec = writeConfig(
    dir,
    'analytics.yaml',
    `store: { sqlite: { path: events.db } }
trustedGateways:
  - { name: ${gateway}, issuer: "gatehouse://${gateway}", jwksUri: "http://127.0.0.1:${options.adminPort}/.well-known/jwks.json" }
${options.extraSpec ?? ''}`,
  );
  const dataDir = join(dir, 'ingest-data');
  const queryToken = 'query-token-for-tests-0123456789';
  const proc = runCli(
    [
      'analytics-ingest',
      '--data-dir',
      dataDir,
      '--spec',
      spec,
      '--port',
      String(port),
      '--query-token-env',
      'GH_QUERY_TOKEN',
    ],
    { GH_QUERY_TOKEN: queryToken },
  );
  await proc.waitFor(/"msg":"analytics ingestion ready"/, 20_000);
  return { proc, port, url: `http://127.0.0.1:${port}`, dataDir, queryToken };
}

/** Rows of the ingestion's SQLite store, read by the test directly (WAL: readers do not block it). */
export function storedEvents(
  dataDir: string,
): Array<{ id: string; request_id: string; status: number; route: string | null }> {
  const db = new DatabaseSync(join(dataDir, 'events.db'), { readOnly: true });
  try {
    return db.prepare('SELECT id, request_id, status, route FROM analytics_events').all() as Array<{
      id: string;
      request_id: string;
      status: number;
      route: string | null;
    }>;
  } catch (err) {
    if (/no such table/.test((err as Error).message)) return [];
    throw err;
  } finally {
    db.close();
  }
}

export async function waitFor<T>(
  what: string,
  probe: () => T | Promise<T>,
  done: (v: T) => boolean,
  ms = 30_000,
): Promise<T> {
  const until = Date.now() + ms;
  let last: T = await probe();
  while (!done(last)) {
    if (Date.now() > until)
      throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)?.slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 100));
    last = await probe();
  }
  return last;
}

/** One metric's value from Prometheus text (sum over label sets matching `labels`). */
export function metricValue(text: string, name: string, labels = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (!(rest.startsWith(' ') || rest.startsWith('{'))) continue;
    if (labels && !rest.includes(labels)) continue;
    sum += Number(line.split(' ').at(-1));
  }
  return sum;
}
