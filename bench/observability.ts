// Analytics ingestion and the delivery check for the observed benchmark targets (bench/run.ts).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Child, start, waitForLogLine, waitForReadyPort } from './procs.ts';

const QUERY_TOKEN = 'bench-query-token-0123456789';

export interface BenchIngest {
  child: Child;
  url: string;
  /** The real ingestion service (else the counting sink, bench/analytics-sink.ts). */
  real: boolean;
}

/** `gatehouse analytics-ingest` (SQLite in the work dir) trusting each observed gateway's key set. */
export async function startIngest(
  workDir: string,
  port: number,
  gateways: ReadonlyArray<{ issuer: string; adminPort: number }>,
): Promise<BenchIngest> {
  const spec = join(workDir, 'analytics.yaml');
  writeFileSync(
    spec,
    `trustedGateways:\n${gateways
      .map(
        (g) =>
          `  - { name: bench, issuer: "${g.issuer}", jwksUri: "http://127.0.0.1:${g.adminPort}/.well-known/jwks.json" }`,
      )
      .join('\n')}\n`,
  );
  process.env.GH_BENCH_QUERY_TOKEN = QUERY_TOKEN;
  const logFile = join(workDir, 'ingest.log');
  const cli = join(import.meta.dirname, '../src/cli/main.ts');
  // Niced: in a deployment ingestion runs on other machines; here it shares the 2 cores, and what is
  // measured is the gateway. It still stores every event (checked at the end), only later.
  const child = start(
    'analytics ingestion',
    'nice',
    [
      '-n',
      '19',
      process.execPath,
      cli,
      'analytics-ingest',
      '--data-dir',
      join(workDir, 'ingest'),
      '--spec',
      spec,
      '--port',
      String(port),
      '--query-token-env',
      'GH_BENCH_QUERY_TOKEN',
    ],
    { logFile },
  );
  await waitForLogLine(child, logFile, /"msg":"analytics ingestion ready"/, 30_000);
  return { child, url: `http://127.0.0.1:${port}`, real: true };
}

/**
 * The counting sink on `port` (niced like the OTLP sink): what the bench measures is the gateway,
 * and ingestion runs on other machines in a deployment (`--ingest real` for the real one).
 */
export async function startIngestSink(port: number): Promise<BenchIngest> {
  const child = start(
    'analytics sink',
    'nice',
    [
      '-n',
      '19',
      process.execPath,
      join(import.meta.dirname, 'analytics-sink.ts'),
      '--exit-with-stdin',
      '--port',
      String(port),
    ],
    { stdinPipe: true },
  );
  await waitForReadyPort(child);
  return { child, url: `http://127.0.0.1:${port}`, real: false };
}

/** Events stored so far by ingestion, or distinct events the sink received (all gateways). */
export async function storedEvents(ingest: BenchIngest): Promise<number> {
  if (!ingest.real) {
    const res = await fetch(`${ingest.url}/count`, { signal: AbortSignal.timeout(5_000) });
    return ((await res.json()) as { events: number }).events;
  }
  const res = await fetch(`${ingest.url}/api/v1/analytics/requests?from=-1h`, {
    headers: { authorization: `Bearer ${QUERY_TOKEN}` },
    signal: AbortSignal.timeout(30_000),
  });
  if (res.status !== 200) throw new Error(`ingestion query answered ${res.status}`);
  const body = (await res.json()) as { rows: Array<{ requests: number }> };
  return body.rows.reduce((s, r) => s + r.requests, 0);
}

/** Waits (at most `ms`) until ingestion holds `expected` events; returns what it holds then. */
export async function awaitDelivery(ingest: BenchIngest, expected: number, ms = 30_000): Promise<number> {
  const until = Date.now() + ms;
  let stored = await storedEvents(ingest);
  while (stored < expected && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 500));
    stored = await storedEvents(ingest);
  }
  return stored;
}

/** Spans the OTLP sink received. */
export async function exportedSpans(sinkUrl: string): Promise<number> {
  const res = await fetch(sinkUrl.replace(/\/v1\/traces$/, '/count'), { signal: AbortSignal.timeout(5_000) });
  return ((await res.json()) as { spans: number }).spans;
}
