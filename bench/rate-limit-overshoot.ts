// How many requests gateways sharing Redis admit past a limit, with and without local batching: the
// other half of the batched target's throughput in bench/run.ts. See bench/README.md.
//
//   node bench/rate-limit-overshoot.ts [--gateways 3] [--limit 300] [--requests 600] [--concurrency 16]
//
// For each mode (redis, redis batched with maxLocal = BENCH_BATCH_MAX_LOCAL) it starts `--gateways`
// gateway processes on one Redis (REDIS_URL, default redis://127.0.0.1:6379), all with the benched
// route limited to `--limit` per hour by route (nothing refills during the run), sends one request
// through each (so that batched gateways hold a lease, their worst case), then `--requests` through
// each, `--concurrency` at a time per gateway, and counts the 200s.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { gatewayNodeFlags } from '../src/cli/node-flags.ts';
import {
  BENCH_BATCH_MAX_LOCAL,
  BENCH_HOST,
  BENCH_PATH,
  type BenchRateLimitBackend,
  writeRateLimitRouteConfig,
} from './configs.ts';
import { freePort, killAllNow, start, stop, stopAll, waitForLogLine, waitForReadyPort } from './procs.ts';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const benchDir = fileURLToPath(new URL('./', import.meta.url));
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const { values } = parseArgs({
  options: {
    gateways: { type: 'string', default: '3' },
    limit: { type: 'string', default: '300' },
    requests: { type: 'string', default: '600' },
    concurrency: { type: 'string', default: '16' },
  },
});
const gateways = Math.min(8, Math.max(1, Number(values.gateways)));
const limit = Math.max(1, Number(values.limit));
const perGateway = Math.min(100_000, Math.max(1, Number(values.requests)));
const concurrency = Math.min(256, Math.max(1, Number(values.concurrency)));

function get(port: number, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: BENCH_PATH, headers: { host: BENCH_HOST }, agent, timeout: 10_000 },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

async function measure(
  mode: BenchRateLimitBackend,
  workDir: string,
  upstreamUrl: string,
): Promise<{ admitted: number; refused: number; other: number; ms: number }> {
  const prefix = `gatehouse-bench-overshoot:${process.pid}:${mode}:`;
  const ports: number[] = [];
  const children = [];
  for (let g = 0; g < gateways; g++) {
    const dir = join(workDir, `${mode}-${g}`);
    mkdirSync(dir);
    const [port, admin] = [await freePort(), await freePort()];
    writeRateLimitRouteConfig(
      dir,
      port,
      admin,
      upstreamUrl,
      mode,
      { url: REDIS_URL, prefix, timeout: '1s' },
      {
        limit,
        window: '1h',
        key: 'route',
      },
    );
    const logFile = join(workDir, `${mode}-${g}.log`);
    const child = start(
      `gateway ${mode} ${g}`,
      process.execPath,
      [...gatewayNodeFlags, join(repoRoot, 'src/cli/main.ts'), 'gateway', '--config', dir, '--no-watch'],
      { cwd: repoRoot, logFile },
    );
    await waitForLogLine(child, logFile, /"msg":"gateway ready"/, 30_000);
    ports.push(port);
    children.push(child);
  }
  const agents = ports.map(() => new Agent({ keepAlive: true, maxSockets: concurrency }));
  const counts = { admitted: 0, refused: 0, other: 0 };
  const count = (status: number) => {
    if (status === 200) counts.admitted++;
    else if (status === 429) counts.refused++;
    else counts.other++;
  };
  const started = performance.now();
  for (let g = 0; g < gateways; g++) count(await get(ports[g]!, agents[g]!));
  await Promise.all(
    ports.flatMap((port, g) => {
      let sent = 0;
      return Array.from({ length: concurrency }, async () => {
        while (sent < perGateway) {
          sent++;
          count(await get(port, agents[g]!));
        }
      });
    }),
  );
  const ms = performance.now() - started;
  for (const agent of agents) agent.destroy();
  await Promise.all(children.map((c) => stop(c)));
  await deleteKeys(prefix);
  return { ...counts, ms };
}

/** The run's counters would otherwise stay in Redis for the limit's hour. */
async function deleteKeys(prefix: string): Promise<void> {
  const client = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await client.del(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}

async function main(): Promise<void> {
  process.on('exit', killAllNow);
  const workDir = mkdtempSync(join(tmpdir(), 'gatehouse-overshoot-'));
  const upstream = start('upstream', process.execPath, [join(benchDir, 'upstream.ts'), '--exit-with-stdin'], {
    stdinPipe: true,
  });
  const upstreamUrl = `http://127.0.0.1:${await waitForReadyPort(upstream)}`;
  const rows: string[] = [];
  try {
    for (const mode of ['redis', 'batched'] as const) {
      const r = await measure(mode, workDir, upstreamUrl);
      const worst = mode === 'batched' ? gateways * BENCH_BATCH_MAX_LOCAL : 0;
      const label = mode === 'batched' ? `redis, batched (maxLocal ${BENCH_BATCH_MAX_LOCAL})` : 'redis';
      rows.push(
        `| ${label} | ${gateways} | ${limit} | ${gateways * (perGateway + 1)} | ${r.admitted} | ` +
          `${r.admitted - limit} | ≤ ${worst} | ${r.refused} | ${r.other} | ${Math.round(r.ms)} |`,
      );
      process.stderr.write(`${label}: ${r.admitted} admitted of ${gateways * (perGateway + 1)}\n`);
    }
  } finally {
    await stopAll(5_000);
    rmSync(workDir, { recursive: true, force: true });
  }
  process.stdout.write(
    `\ncommand: node bench/rate-limit-overshoot.ts --gateways ${gateways} --limit ${limit} --requests ${perGateway} ` +
      `--concurrency ${concurrency}\ndate: ${new Date().toISOString()}\n\n` +
      '| mode | gateways | limit | requests | admitted | over the limit | worst case | 429 | other | ms |\n' +
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n' +
      `${rows.join('\n')}\n`,
  );
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`overshoot: ${(err as Error).stack ?? err}\n`);
    killAllNow();
    process.exit(1);
  },
);
