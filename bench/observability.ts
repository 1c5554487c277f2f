// Analytics ingestion and the delivery check for the observed benchmark targets (bench/run.ts).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Child, start, waitForLogLine, waitForReadyPort } from './procs.ts';

const QUERY_TOKEN = 'bench-query-token-0123456789';

export interface BenchIngest {
  child: Child;
  url: string;
  /** For the report: `ingestion` or `sink`, and what its count is. */
  name: string;
  holds: string;
  /** Events it holds so far (all gateways). */
  count(): Promise<number>;
}

/**
 * A receiver of the bench's own (otlp-sink.ts, analytics-sink.ts), niced: in a deployment collectors
 * and ingestion run on other machines; here they share the 2 cores with what is measured.
 */
async function startSink(
  name: string,
  script: string,
  args: string[] = [],
): Promise<{ child: Child; port: number }> {
  const child = start(
    name,
    'nice',
    ['-n', '19', process.execPath, join(import.meta.dirname, script), '--exit-with-stdin', ...args],
    { stdinPipe: true },
  );
  return { child, port: await waitForReadyPort(child) };
}

/** The OTLP/HTTP sink; its traces URL. */
export async function startOtlpSink(): Promise<string> {
  const { port } = await startSink('OTLP sink', 'otlp-sink.ts');
  return `http://127.0.0.1:${port}/v1/traces`;
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
  const url = `http://127.0.0.1:${port}`;
  return { child, url, name: 'ingestion', holds: 'stored by ingestion', count: () => storedByIngestion(url) };
}

/**
 * The counting sink on `port` (niced like the OTLP sink): what the bench measures is the gateway,
 * and ingestion runs on other machines in a deployment (`--ingest real` for the real one).
 */
export async function startIngestSink(port: number): Promise<BenchIngest> {
  const { child } = await startSink('analytics sink', 'analytics-sink.ts', ['--port', String(port)]);
  const url = `http://127.0.0.1:${port}`;
  const count = async () => {
    // The first count decodes every batch received during the rounds: seconds of CPU.
    const res = await fetch(`${url}/count`, { signal: AbortSignal.timeout(120_000) });
    return ((await res.json()) as { events: number }).events;
  };
  return { child, url, name: 'sink', holds: 'received by the sink (distinct ids)', count };
}

/** Events stored so far by ingestion (all gateways). */
async function storedByIngestion(url: string): Promise<number> {
  const res = await fetch(`${url}/api/v1/analytics/requests?from=-1h`, {
    headers: { authorization: `Bearer ${QUERY_TOKEN}` },
    signal: AbortSignal.timeout(30_000),
  });
  if (res.status !== 200) throw new Error(`ingestion query answered ${res.status}`);
  const body = (await res.json()) as { rows: Array<{ requests: number }> };
  return body.rows.reduce((s, r) => s + r.requests, 0);
}

/** Waits (at most `ms`) until ingestion (or the sink) holds `expected` events; returns what it holds then. */
export async function awaitDelivery(ingest: BenchIngest, expected: number, ms = 30_000): Promise<number> {
  const until = Date.now() + ms;
  let stored = await ingest.count();
  while (stored < expected && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 500));
    stored = await ingest.count();
  }
  return stored;
}

/** Spans the OTLP sink received. */
export async function exportedSpans(sinkUrl: string): Promise<number> {
  const res = await fetch(sinkUrl.replace(/\/v1\/traces$/, '/count'), { signal: AbortSignal.timeout(5_000) });
  return ((await res.json()) as { spans: number }).spans;
}
