// Connected mode: time from an apply to every gateway serving the change, and what compiling a
// 10 000-rule snapshot costs. One `gatehouse control-plane` (sqlite, jwt security) and three
// `gatehouse gateway --control-plane` processes registered with bootstrap tokens, all real, on
// loopback. See bench/README.md.
//
//   npm run bench:apply -- [--changes 50] [--gateways 3] [--rules 10000] [--compile-runs 5] [--keep]
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { gatewayNodeFlags } from '../src/cli/node-flags.ts';
import {
  type Child,
  freePort,
  killAllNow,
  start,
  stopAll,
  waitForLogLine,
  waitForReadyPort,
} from './procs.ts';
import { fmt, gitRevision, median } from './report.ts';
import { measureSnapshotCompile } from './snapshot-compile.ts';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const cliPath = join(repoRoot, 'src/cli/main.ts');
const adminToken = 'bench-admin-token-0123456789';

const { values } = parseArgs({
  options: {
    changes: { type: 'string', default: '50' },
    gateways: { type: 'string', default: '3' },
    rules: { type: 'string', default: '10000' },
    'compile-runs': { type: 'string', default: '5' },
    keep: { type: 'boolean', default: false },
  },
});
const changes = Number(values.changes);
const gatewayCount = Number(values.gateways);
const compileRules = Number(values.rules);
const compileRuns = Number(values['compile-runs']);
for (const [name, n] of Object.entries({ changes, gatewayCount, compileRules, compileRuns }))
  if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new Error(`--${name} must be a positive integer`);

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-apply-'));
process.on('exit', killAllNow);
const agent = new Agent({ connections: 8, headersTimeout: 5_000, bodyTimeout: 5_000 });

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function call(
  url: string,
  method: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await request(url, {
    method: method as 'GET',
    dispatcher: agent,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function statusOf(port: number, path: string): Promise<number> {
  const res = await request(`http://127.0.0.1:${port}${path}`, { dispatcher: agent });
  await res.body.dump();
  return res.statusCode;
}

/** Polls until the gateway answers 200 on `path` (a route that exists only once the change is served). */
async function servedAt(port: number, path: string, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if ((await statusOf(port, path)) === 200) return performance.now();
    if (performance.now() > deadline)
      throw new Error(`port ${port}: ${path} not served within ${timeoutMs} ms`);
    await new Promise((r) => setImmediate(r));
  }
}

function resource(kind: string, name: string, spec: Record<string, unknown>) {
  return { apiVersion: 'gatehouse.dev/v1', kind, metadata: { name, namespace: 'default' }, spec };
}

function rule(paths: string[]) {
  return resource('APIRule', 'bench', {
    gatewaySelector: { matchLabels: { fleet: 'bench' } },
    upstream: 'bench-upstream',
    rules: paths.map((path) => ({ path, methods: ['GET'], authenticate: [{ noAuth: {} }] })),
  });
}

async function main(): Promise<void> {
  const cpPort = await freePort();
  const cpUrl = `http://127.0.0.1:${cpPort}`;
  const cpConfig = join(dir, 'control-plane.yaml');
  writeFileSync(
    cpConfig,
    `apiVersion: gatehouse.dev/v1
kind: ControlPlane
metadata: { name: bench }
spec:
  listen: { address: 127.0.0.1, port: ${cpPort} }
  dataDir: ${join(dir, 'cp-data')}
  operators:
    tokens: [{ name: bench, sha256: ${createHash('sha256').update(adminToken).digest('hex')}, roles: [{ namespace: '*', role: admin }] }]
  security: { mode: jwt }
`,
  );
  const upstream = start(
    'upstream',
    process.execPath,
    [join(repoRoot, 'bench/upstream.ts'), '--exit-with-stdin'],
    {
      stdinPipe: true,
    },
  );
  const upstreamPort = await waitForReadyPort(upstream);
  const cpLog = join(dir, 'control-plane.log');
  const cp = start(
    'control-plane',
    process.execPath,
    [...gatewayNodeFlags, cliPath, 'control-plane', '--config', cpConfig],
    {
      logFile: cpLog,
    },
  );
  await waitForLogLine(cp, cpLog, /"msg":"control plane ready"/, 20_000);

  const gateways: Array<{ name: string; port: number; child: Child }> = [];
  const gatewayResources = [];
  const ports: number[] = [];
  for (let i = 0; i < gatewayCount; i++) {
    ports.push(await freePort());
    gatewayResources.push(
      resource('Gateway', `bench-${i}`, {
        listeners: [{ name: 'public', address: '127.0.0.1', port: ports[i], protocol: 'http' }],
        admin: { port: await freePort(), address: '127.0.0.1' },
        accessLog: { enabled: false },
        shutdown: { drainTimeout: '1s' },
      }),
    );
  }
  const initial = await call(`${cpUrl}/api/v1/apply`, 'POST', {
    resources: [
      resource('Upstream', 'bench-upstream', { targets: [{ url: `http://127.0.0.1:${upstreamPort}` }] }),
      ...gatewayResources,
      rule(['/change-0']),
    ],
  });
  if (initial.status !== 200) throw new Error(`initial apply refused: ${JSON.stringify(initial.json)}`);
  for (let i = 0; i < gatewayCount; i++) {
    const name = `bench-${i}`;
    const token = await call(`${cpUrl}/api/v1/bootstrap-tokens`, 'POST', {
      gateway: name,
      namespace: 'default',
      labels: { fleet: 'bench' },
    });
    if (token.status !== 201) throw new Error(`bootstrap token refused: ${JSON.stringify(token.json)}`);
    const log = join(dir, `${name}.log`);
    const child = start(
      name,
      process.execPath,
      [
        ...gatewayNodeFlags,
        cliPath,
        'gateway',
        '--control-plane',
        cpUrl,
        '--data-dir',
        join(dir, name),
        '--token',
        String(token.json.token),
      ],
      { logFile: log },
    );
    await waitForLogLine(child, log, /"msg":"gateway ready"/, 20_000);
    gateways.push({ name, port: ports[i]!, child });
  }
  for (const g of gateways) await servedAt(g.port, '/change-0', 10_000);
  process.stderr.write(`control plane + ${gatewayCount} gateways up; ${changes} changes...\n`);

  // Each change replaces the rule's path; "served" = the new path answers 200 on every gateway.
  const latencies: number[] = [];
  const applyCalls: number[] = [];
  for (let n = 1; n <= changes; n++) {
    const path = `/change-${n}`;
    const t0 = performance.now();
    const applied = await call(`${cpUrl}/api/v1/apply`, 'POST', { resources: [rule([path])] });
    const t1 = performance.now();
    if (applied.status !== 200) throw new Error(`apply ${n} refused: ${JSON.stringify(applied.json)}`);
    const done = await Promise.all(gateways.map((g) => servedAt(g.port, path, 10_000)));
    latencies.push(Math.max(...done) - t0);
    applyCalls.push(t1 - t0);
    await new Promise((r) => setTimeout(r, 50));
  }
  const list = await call(`${cpUrl}/api/v1/gateways`, 'GET');
  const items = list.json.items as Array<{ inSync: boolean }>;
  const inSync = items.filter((g) => g.inSync).length;

  await stopAll();
  process.stderr.write(`snapshot compile, ${compileRules} rules x ${compileRuns}...\n`);
  const compile = measureSnapshotCompile(compileRules, compileRuns);

  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const out = [
    `Command: \`npm run bench:apply -- --changes ${changes} --gateways ${gatewayCount} --rules ${compileRules} --compile-runs ${compileRuns}\``,
    `Commit ${gitRevision()}, ${cpus().length} cores, load average (1, 5, 15 min) at the end: ${load}, Node ${process.version}.`,
    '',
    `**Apply → all ${gatewayCount} gateways serving** (${changes} changes, one after another):`,
    '',
    '| measure | p50 ms | p99 ms | max ms |',
    '| --- | --- | --- | --- |',
    `| apply request → every gateway answers the new route | ${fmt.ms(percentile(latencies, 50))} | ${fmt.ms(percentile(latencies, 99))} | ${fmt.ms(Math.max(...latencies))} |`,
    `| of which the apply request itself (validate + commit) | ${fmt.ms(percentile(applyCalls, 50))} | ${fmt.ms(percentile(applyCalls, 99))} | ${fmt.ms(Math.max(...applyCalls))} |`,
    '',
    `Target p99 ≤ 1000 ms: **${percentile(latencies, 99) <= 1000 ? 'met' : 'missed'}**. In sync afterwards (GET /api/v1/gateways): ${inSync}/${items.length}.`,
    '',
    `**Snapshot compile, ${compile.rules} rules** (${fmt.int(compile.snapshotBytes)} bytes of JSON; median of ${compile.runs} runs):`,
    '',
    '| phase | where | ms |',
    '| --- | --- | --- |',
    `| select resources + content hash | control plane | ${fmt.ms(compile.selectAndHashMs)} |`,
    `| JSON.stringify (the event) | control plane | ${fmt.ms(compile.serializeMs)} |`,
    `| JSON.parse | gateway | ${fmt.ms(compile.parseMs)} |`,
    `| YAML written + fsynced | gateway | ${fmt.ms(compile.writeYamlMs)} |`,
    `| load (YAML parse, schema check) + compile the plan | gateway | ${fmt.ms(compile.loadAndCompileMs)} |`,
    `| total | | ${fmt.ms(compile.totalMs)} |`,
    '',
    `(median of the apply latencies: ${fmt.ms(median(latencies))} ms)`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
}

main()
  .catch(async (err) => {
    process.stderr.write(`bench failed: ${(err as Error).stack}\n`);
    process.exitCode = 1;
    await stopAll();
  })
  .finally(async () => {
    await agent.close();
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
    else process.stderr.write(`kept ${dir}\n`);
  });
