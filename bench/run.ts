// The proxy benchmark: Gatehouse (1, 10 and 10 000 rules, and one JWT-authenticated route) against a
// bare node:http + undici proxy and nginx, all in front of the same fixed-response upstream, under the
// same autocannon load, in interleaved rounds. See bench/README.md.
//
//   npm run bench -- [--duration 5] [--rounds 3] [--connections 32] [--warmup 6] [--targets a,b,...]
//                    [--rules 10000] [--json file] [--cpu-prof] [--keep] [--gatehouse-node-flags='...']
import { fmt, gitRevision, median } from './report.ts';
import { gatewayNodeFlags } from '../src/cli/node-flags.ts';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import {
  type BenchIdentityProvider,
  BENCH_HOST,
  BENCH_PATH,
  type GatehouseConfig,
  writeJwtRouteConfig,
  writeManyRulesConfig,
  writeNginxConfig,
  writeObservedRouteConfig,
  writeRateLimitRouteConfig,
  writeSingleRouteConfig,
} from './configs.ts';
import {
  type Child,
  cpuMs,
  freePort,
  killAllNow,
  rssMiB,
  start,
  stop,
  threadCpuMs,
  stopAll,
  waitForLogLine,
  waitForReadyPort,
  waitUntil,
} from './procs.ts';
import { UPSTREAM_BODY } from './upstream.ts';
import {
  awaitDelivery,
  exportedSpans,
  startIngest,
  startIngestSink,
  startOtlpSink,
} from './observability.ts';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const benchDir = fileURLToPath(new URL('./', import.meta.url));
const cliPath = join(repoRoot, 'src/cli/main.ts');
const NGINX = process.env.NGINX ?? '/usr/sbin/nginx';

/** Longest the load phase may be planned for (restarts included): the run stays under ~11 minutes. */
const MAX_PLANNED_SECONDS = 600;
/** Startup (the 10 000-rule gateway takes a few seconds) and cleanup on top of the planned load. */
const OVERHEAD_SECONDS = 35;
/** Allowed for one restart of a target (`--lives`): stop, start, readiness. */
const RESTART_SECONDS = 10;
const PAUSE_MS = 300;

type TargetId =
  | 'gatehouse'
  | 'gatehouse-jwt'
  | 'gatehouse-10'
  | 'gatehouse-many'
  | 'bare'
  | 'nginx'
  | 'gatehouse-nolog'
  | 'gatehouse-again'
  | 'gatehouse-rl-local'
  | 'gatehouse-rl-redis'
  | 'gatehouse-rl-batched'
  | 'gatehouse-obs'
  | 'gatehouse-obs-all'
  | 'gatehouse-obs-none'
  | 'gatehouse-analytics'
  | 'gatehouse-analytics-mem';
/** What a plain `npm run bench` measures. */
const DEFAULT_TARGETS: TargetId[] = [
  'gatehouse',
  'gatehouse-jwt',
  'gatehouse-10',
  'gatehouse-many',
  'bare',
  'nginx',
];
/**
 * Also accepted by --targets: a second process of the 1-route Gatehouse (an A/A pair: the ratio of
 * two identical processes is the run's noise floor); Gatehouse with its access log disabled, to see what the log costs; the
 * noAuth route with a rate limit that never triggers, counted locally, in Redis (REDIS_URL, default
 * redis://127.0.0.1:6379), and in Redis with local batching.
 */
const ALL_TARGETS: TargetId[] = [
  ...DEFAULT_TARGETS,
  'gatehouse-again',
  'gatehouse-nolog',
  'gatehouse-rl-local',
  'gatehouse-rl-redis',
  'gatehouse-rl-batched',
  // The noAuth route with API events shipped to analytics ingestion and OpenTelemetry tracing on,
  // both with their defaults (tracing.sampleRatio 0.01); with every request's trace recorded
  // (sampleRatio 1); with none recorded (sampleRatio 0: the unrecorded path alone); with analytics alone; and with analytics alone, memory queue only (no spool).
  'gatehouse-obs',
  'gatehouse-obs-all',
  'gatehouse-obs-none',
  'gatehouse-analytics',
  'gatehouse-analytics-mem',
];
const OBSERVED: readonly TargetId[] = [
  'gatehouse-obs',
  'gatehouse-obs-all',
  'gatehouse-obs-none',
  'gatehouse-analytics',
  'gatehouse-analytics-mem',
];
const TRACED: readonly TargetId[] = ['gatehouse-obs', 'gatehouse-obs-all', 'gatehouse-obs-none'];
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

interface Target {
  id: TargetId;
  label: string;
  baseUrl: string;
  /** Sent with every request on top of Host (the JWT target's Authorization). */
  headers: Record<string, string>;
  child: Child;
  startupMs: number;
  logFile: string | null;
  /** Gatehouse's admin listener (its /metrics: GC pauses per round); null for the references. */
  adminUrl: string | null;
  /** Stops the process and starts an identical one (same config; `baseUrl` may change); its start-up ms. */
  restart: () => Promise<number>;
}

interface RunResult {
  rps: number;
  requests: number;
  p50: number;
  p99: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  mismatches: number;
  otherStatus: string[];
  cpuUsPerReq: number | null;
  /** CPU per request of the shared upstream and of this process (the load generator). */
  upstreamCpuUsPerReq: number | null;
  loadgenCpuUsPerReq: number;
  /** Target CPU milliseconds by thread name over the run. */
  threadsMs: Record<string, number>;
  /** Gatehouse: GC pause milliseconds by kind over the run (`nodejs_gc_duration_seconds_sum`). */
  gcMs: Record<string, number>;
}

interface Options {
  duration: number;
  /** Fixed offered load in req/s (autocannon overallRate); null: as fast as the target answers. */
  rate: number | null;
  rounds: number;
  /**
   * Processes per target, one after another: each is started afresh, warmed up and measured for
   * `rounds` rounds. Identical processes differ by up to ~10 % in CPU per request, for the whole of
   * their lives (bench/RESULTS.md), so one process per target is one draw of that luck.
   */
  lives: number;
  connections: number;
  warmup: number;
  rules: number;
  targets: TargetId[];
  json: string | null;
  cpuProf: boolean;
  /** Extra Node/V8 flags for the Gatehouse processes only (diagnostics, e.g. GC tuning). */
  gatehouseNodeFlags: string[];
  /** More node flags for some Gatehouse targets (after gatehouseNodeFlags). */
  targetNodeFlags: Map<TargetId, string[]>;
  keep: boolean;
  /** Where observed targets ship events: a counting sink (default) or the real ingestion service. */
  ingest: 'sink' | 'real';
}

/** A bad command line: reported without a stack trace. */
class UsageError extends Error {}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '5' },
      rate: { type: 'string' },
      rounds: { type: 'string', default: '3' },
      lives: { type: 'string', default: '1' },
      connections: { type: 'string', default: '32' },
      warmup: { type: 'string', default: '6' },
      rules: { type: 'string', default: '10000' },
      targets: { type: 'string', default: DEFAULT_TARGETS.join(',') },
      json: { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
      'gatehouse-node-flags': { type: 'string', default: '' },
      'target-node-flags': { type: 'string', multiple: true, default: [] },
      keep: { type: 'boolean', default: false },
      ingest: { type: 'string', default: 'sink' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'node bench/run.ts [--duration s] [--rounds n] [--lives n] [--connections n] [--warmup s] [--rules n]\n' +
        '                  [--rate req/s]\n' +
        `                  [--targets ${ALL_TARGETS.join(',')}] [--json file] [--cpu-prof] [--keep]\n` +
        '                  [--ingest sink|real]\n' +
        "                  [--gatehouse-node-flags='<node/V8 flags for the Gatehouse processes>']\n" +
        "                  [--target-node-flags '<target>=<more flags for that target>' ...]\n",
    );
    process.exit(0);
  }
  const num = (name: string, text: string, min: number, max: number) => {
    const n = Number(text);
    if (!Number.isFinite(n) || n < min || n > max)
      throw new UsageError(`--${name} must be between ${min} and ${max}`);
    return n;
  };
  const targets = values.targets.split(',').map((t) => t.trim()) as TargetId[];
  for (const t of targets) {
    if (!ALL_TARGETS.includes(t)) {
      throw new UsageError(`unknown target ${t}; known: ${ALL_TARGETS.join(', ')}`);
    }
  }
  // A/B of node/V8 flags in one run: e.g. the A/A pair's second process with a flag the first lacks.
  const targetNodeFlags = new Map<TargetId, string[]>();
  for (const spec of values['target-node-flags']) {
    const at = spec.indexOf('=');
    const id = spec.slice(0, at) as TargetId;
    if (at < 0 || !targets.includes(id) || !id.startsWith('gatehouse'))
      throw new UsageError(`--target-node-flags ${spec}: expected <a Gatehouse target of --targets>=<flags>`);
    targetNodeFlags.set(
      id,
      spec
        .slice(at + 1)
        .split(/\s+/)
        .filter(Boolean),
    );
  }
  if (values.ingest !== 'sink' && values.ingest !== 'real')
    throw new UsageError('--ingest must be sink (a counting endpoint) or real (gatehouse analytics-ingest)');
  return {
    ingest: values.ingest,
    duration: num('duration', values.duration, 1, 60),
    rate: values.rate === undefined ? null : Math.round(num('rate', values.rate, 100, 100_000)),
    rounds: Math.round(num('rounds', values.rounds, 1, 20)),
    lives: Math.round(num('lives', values.lives, 1, 10)),
    connections: Math.round(num('connections', values.connections, 1, 1024)),
    warmup: num('warmup', values.warmup, 0, 30),
    rules: Math.round(num('rules', values.rules, 10, 100_000)),
    targets,
    json: values.json ?? null,
    cpuProf: values['cpu-prof'],
    gatehouseNodeFlags: values['gatehouse-node-flags'].split(/\s+/).filter(Boolean),
    targetNodeFlags,
    keep: values.keep,
  };
}

// ---------------------------------------------------------------------------------------------------
// Targets

/** One GET of the benched request; resolves with status and body. */
function probe(
  baseUrl: string,
  headers: Record<string, string> = {},
  path = BENCH_PATH,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${baseUrl}${path}`,
      { headers: { host: BENCH_HOST, ...headers }, agent: false, timeout: 5_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('probe timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Writes a Gatehouse config into `dir` for these ports. */
type ConfigWriter = (dir: string, port: number, adminPort: number) => GatehouseConfig;

async function startGatehouse(
  id: TargetId,
  label: string,
  workDir: string,
  writeConfig: ConfigWriter,
  headers: Record<string, string>,
  cpuProfDir: string | null,
  nodeFlags: string[],
): Promise<{ target: Target; benchRouteId: string }> {
  const dir = join(workDir, id);
  mkdirSync(dir);
  const [port, adminPort] = [await freePort(), await freePort()];
  const config = writeConfig(dir, port, adminPort);
  const logFile = join(workDir, `${id}.log`);
  const nodeArgs = [
    ...gatewayNodeFlags,
    ...nodeFlags,
    ...(cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', join(cpuProfDir, id)] : []),
  ];
  const launch = async () => {
    const child = start(
      label,
      process.execPath,
      [...nodeArgs, cliPath, 'gateway', '--config', dir, '--no-watch'],
      { cwd: repoRoot, logFile },
    );
    // The gateway validates the generated config and exits non-zero with the errors if it is invalid.
    await waitForLogLine(child, logFile, /"msg":"gateway ready"/, 90_000);
    // Readiness also waits for identity providers' keys (the JWT target's key set, fetched at startup).
    await waitUntil(
      child,
      () =>
        probe(`http://127.0.0.1:${adminPort}`, {}, '/readyz').then(
          (r) => (r.status === 200 ? true : null),
          () => null,
        ),
      30_000,
      '/readyz to answer 200',
      logFile,
    );
    return { child, baseUrl: `http://127.0.0.1:${port}` };
  };
  const started = performance.now();
  const target: Target = {
    id,
    label,
    headers,
    ...(await launch()),
    startupMs: performance.now() - started,
    logFile,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    // The same config, ports and spool directory (a spool left by the stopped process is replayed).
    restart: () => relaunch(target, launch),
  };
  return { target, benchRouteId: config.benchRouteId };
}

/** `restart` of a target: stops its process (SIGTERM), then starts the next; the start-up's ms. */
async function relaunch(
  target: Target,
  launch: () => Promise<{ child: Child; baseUrl: string }>,
): Promise<number> {
  await stop(target.child);
  const started = performance.now();
  const { child, baseUrl } = await launch();
  target.child = child;
  target.baseUrl = baseUrl;
  return performance.now() - started;
}

async function startBare(upstreamUrl: string, cpuProfDir: string | null): Promise<Target> {
  const launch = async () => {
    const child = start(
      'bare node:http + undici',
      process.execPath,
      [
        // The same V8 flags as the gateway ships with: the floor is measured on the same footing.
        ...gatewayNodeFlags,
        ...(cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', join(cpuProfDir, 'bare')] : []),
        join(benchDir, 'bare-proxy.ts'),
        '--upstream',
        upstreamUrl,
        '--connections',
        '256',
        '--exit-with-stdin',
      ],
      { stdinPipe: true },
    );
    return { child, baseUrl: `http://127.0.0.1:${await waitForReadyPort(child)}` };
  };
  const started = performance.now();
  const target: Target = {
    id: 'bare',
    label: 'bare node:http + undici',
    headers: {},
    ...(await launch()),
    startupMs: performance.now() - started,
    logFile: null,
    adminUrl: null,
    restart: () => relaunch(target, launch),
  };
  return target;
}

async function startNginx(workDir: string, upstreamPort: number): Promise<Target> {
  const prefix = join(workDir, 'nginx');
  mkdirSync(prefix);
  const port = await freePort();
  const conf = writeNginxConfig(prefix, port, upstreamPort);
  const errorLog = join(prefix, 'error.log');
  const baseUrl = `http://127.0.0.1:${port}`;
  const launch = async () => {
    const child = start('nginx', NGINX, ['-p', prefix, '-c', conf, '-e', errorLog, '-g', 'daemon off;']);
    await waitUntil(
      child,
      () =>
        probe(baseUrl).then(
          (r) => (r.status === 200 ? true : null),
          () => null,
        ),
      10_000,
      'its port to answer',
      errorLog,
    );
    return { child, baseUrl };
  };
  const started = performance.now();
  const target: Target = {
    id: 'nginx',
    label: 'nginx',
    headers: {},
    ...(await launch()),
    startupMs: performance.now() - started,
    logFile: null,
    adminUrl: null,
    restart: () => relaunch(target, launch),
  };
  return target;
}

/** What the JWT target authenticates against, and the one token every one of its requests carries. */
interface BenchIdentity {
  idp: BenchIdentityProvider;
  token: string;
  jwks: Child;
}

/**
 * An ES256 key pair made here: the public half is published by bench/jwks-server.ts (its own
 * process), the private half signs one token valid for a day, with the provider's iss and aud.
 */
async function startIdentity(): Promise<BenchIdentity> {
  const kid = 'bench-es256';
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  const jwks = start(
    'JWKS server',
    process.execPath,
    [join(benchDir, 'jwks-server.ts'), '--keys', JSON.stringify([publicJwk]), '--exit-with-stdin'],
    { stdinPipe: true },
  );
  const port = await waitForReadyPort(jwks);
  const idp: BenchIdentityProvider = {
    name: 'bench',
    issuer: 'https://idp.bench.test/',
    jwksUri: `http://127.0.0.1:${port}/jwks`,
    audience: 'bench-api',
    algorithm: 'ES256',
  };
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ scope: 'orders:read accounts:read' })
    .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
    .setIssuer(idp.issuer)
    .setAudience(idp.audience)
    .setSubject('bench-user-0001')
    .setIssuedAt(now)
    .setExpirationTime(now + 86_400)
    .sign(privateKey);
  return { idp, token, jwks };
}

/** Key sets the JWKS server has served so far (it prints one line per fetch). */
function jwksFetches(identity: BenchIdentity): number {
  return identity.jwks
    .stdout()
    .split('\n')
    .filter((l) => l.includes('"msg":"jwks served"')).length;
}

function nginxVersion(): string {
  // nginx -v prints to stderr.
  const r = spawnSync(NGINX, ['-v'], { encoding: 'utf8' });
  return (
    `${r.stderr ?? ''}${r.stdout ?? ''}`.trim().replace(/^nginx version: /, '') || 'nginx (version unknown)'
  );
}

/** The commit measured, with "+dirty" when the working tree has uncommitted changes. */

// ---------------------------------------------------------------------------------------------------
// Load

let current: autocannon.Instance | null = null;

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

let upstreamPid: number | undefined;

/** GC pause seconds by kind from a Gatehouse admin listener's /metrics; empty when it has none. */
async function gcSeconds(adminUrl: string | null): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (adminUrl === null) return out;
  const { status, body } = await probe(adminUrl, {}, '/metrics').catch(() => ({ status: 0, body: '' }));
  if (status !== 200) return out;
  for (const m of body.matchAll(/^nodejs_gc_duration_seconds_sum\{kind="([a-z]+)"\} (\S+)$/gm))
    out.set(m[1]!, Number(m[2]));
  return out;
}

/** One round of load on a target, with its GC pauses read before and after (outside the load). */
async function drive(
  target: Target,
  seconds: number,
  connections: number,
  rate: number | null,
): Promise<RunResult> {
  const before = await gcSeconds(target.adminUrl);
  const result = await load(target, seconds, connections, rate);
  for (const [kind, s] of await gcSeconds(target.adminUrl)) {
    const ms = (s - (before.get(kind) ?? 0)) * 1000;
    if (ms > 0) result.gcMs[kind] = ms;
  }
  return result;
}

function load(target: Target, seconds: number, connections: number, rate: number | null): Promise<RunResult> {
  let latencies = new Float64Array(1 << 18);
  let n = 0;
  const cpuBefore = cpuMs(target.child.proc.pid);
  const threadsBefore = threadCpuMs(target.child.proc.pid);
  const upstreamBefore = cpuMs(upstreamPid);
  const loadgenBefore = process.cpuUsage();
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: `${target.baseUrl}${BENCH_PATH}`,
        headers: { host: BENCH_HOST, ...target.headers },
        connections,
        pipelining: 1,
        duration: seconds,
        ...(rate === null ? {} : { overallRate: rate }),
        timeout: 10,
        expectBody: UPSTREAM_BODY,
      },
      (err, result) => {
        current = null;
        if (err) {
          reject(err);
          return;
        }
        const cpuAfter = cpuMs(target.child.proc.pid);
        const threadsMs: Record<string, number> = {};
        for (const [name, ms] of threadCpuMs(target.child.proc.pid)) {
          const used = ms - (threadsBefore.get(name) ?? 0);
          if (used > 0) threadsMs[name] = used;
        }
        const upstreamAfter = cpuMs(upstreamPid);
        const loadgen = process.cpuUsage(loadgenBefore);
        const sorted = latencies.subarray(0, n).sort();
        const otherStatus = Object.keys(result.statusCodeStats ?? {}).filter((code) => code !== '200');
        const requests = result.requests.total;
        resolve({
          rps: requests / result.duration,
          requests,
          p50: percentile(sorted, 50),
          p99: percentile(sorted, 99),
          errors: result.errors,
          timeouts: result.timeouts,
          non2xx: result.non2xx,
          mismatches: result.mismatches,
          otherStatus,
          cpuUsPerReq:
            cpuBefore === null || cpuAfter === null || requests === 0
              ? null
              : ((cpuAfter - cpuBefore) * 1000) / requests,
          upstreamCpuUsPerReq:
            upstreamBefore === null || upstreamAfter === null || requests === 0
              ? null
              : ((upstreamAfter - upstreamBefore) * 1000) / requests,
          loadgenCpuUsPerReq: (loadgen.user + loadgen.system) / Math.max(1, requests),
          threadsMs,
          gcMs: {},
        });
      },
    );
    current = instance;
    instance.on('response', (_client, _status, _bytes, responseTime) => {
      if (n === latencies.length) {
        const bigger = new Float64Array(latencies.length * 2);
        bigger.set(latencies);
        latencies = bigger;
      }
      latencies[n++] = responseTime;
    });
  });
}

function invalidReasons(r: RunResult, rate: number | null): string[] {
  const reasons: string[] = [];
  if (rate !== null && r.rps < rate * 0.97)
    reasons.push(`answered ${fmt.int(r.rps)} req/s of the ${fmt.int(rate)} offered: saturated, lower --rate`);
  if (r.errors) reasons.push(`${r.errors} connection errors (${r.timeouts} timeouts)`);
  if (r.non2xx) reasons.push(`${r.non2xx} non-2xx responses`);
  if (r.otherStatus.length) reasons.push(`status codes other than 200: ${r.otherStatus.join(', ')}`);
  if (r.mismatches) reasons.push(`${r.mismatches} responses whose body is not the upstream's`);
  if (r.requests === 0) reasons.push('no request completed');
  return reasons;
}

// ---------------------------------------------------------------------------------------------------
// Report

interface Summary {
  target: Target;
  runs: RunResult[];
  rps: number;
  rpsMin: number;
  rpsMax: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  cpuUsPerReq: number;
  upstreamCpuUsPerReq: number;
  loadgenCpuUsPerReq: number;
  rssMiB: number | null;
  /** Target CPU µs per request by thread name, over all rounds. */
  threadsUsPerReq: Record<string, number>;
  /** Gatehouse: GC pause µs per request by kind, over all rounds. */
  gcUsPerReq: Record<string, number>;
}

function summarise(target: Target, runs: RunResult[]): Summary {
  const requests = runs.reduce((s, r) => s + r.requests, 0);
  const perRequest = (pick: (r: RunResult) => Record<string, number>) => {
    const us: Record<string, number> = {};
    for (const r of runs)
      for (const [name, ms] of Object.entries(pick(r)))
        us[name] = (us[name] ?? 0) + (ms * 1000) / Math.max(1, requests);
    return us;
  };
  return {
    threadsUsPerReq: perRequest((r) => r.threadsMs),
    gcUsPerReq: perRequest((r) => r.gcMs),
    target,
    runs,
    rps: median(runs.map((r) => r.rps)),
    rpsMin: Math.min(...runs.map((r) => r.rps)),
    rpsMax: Math.max(...runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    errors: runs.reduce((s, r) => s + r.errors, 0),
    non2xx: runs.reduce((s, r) => s + r.non2xx + r.mismatches, 0),
    cpuUsPerReq: median(runs.map((r) => r.cpuUsPerReq ?? Number.NaN)),
    upstreamCpuUsPerReq: median(runs.map((r) => r.upstreamCpuUsPerReq ?? Number.NaN)),
    loadgenCpuUsPerReq: median(runs.map((r) => r.loadgenCpuUsPerReq)),
    rssMiB: rssMiB(target.child.proc.pid),
  };
}

interface Ratio {
  name: string;
  goal: number | null;
  /** Of the medians: a's over b's. */
  ofMedians: number;
  /** Median of the per-round ratios: a and b run back to back in a round, so drift cancels out. */
  paired: number;
  perRound: number[];
  /** Median CPU per request of b over a's: > 1 means a is cheaper, like the throughput ratio. */
  cpu: number;
}

/**
 * What a ratio compares: throughput when the load is as fast as the targets answer; at a fixed
 * --rate every target answers the same req/s, so what differs is the work per request, and the
 * ratio is of 1 / CPU per request (the throughput a CPU-bound target would have).
 */
type Basis = 'throughput' | 'cpu';

/**
 * a against b — b one target or several identical processes (the A/A pair): then each round's b is
 * the mean over them of that round, which halves the per-process luck a single baseline carries.
 */
function ratioOn(
  basis: Basis,
  name: string,
  goal: number | null,
  a: Summary | undefined,
  b: Summary | undefined | (Summary | undefined)[],
): Ratio | null {
  const bs = Array.isArray(b) ? b : [b];
  if (!a || bs.some((s) => s === undefined)) return null;
  const base = bs as Summary[];
  const mean = (f: (s: Summary) => number) => base.reduce((sum, s) => sum + f(s), 0) / base.length;
  const of = (r: RunResult) => (basis === 'throughput' ? r.rps : 1 / (r.cpuUsPerReq ?? Number.NaN));
  const rounds = Math.min(a.runs.length, ...base.map((s) => s.runs.length));
  const perRound: number[] = [];
  for (let i = 0; i < rounds; i++) perRound.push(of(a.runs[i]!) / mean((s) => of(s.runs[i]!)));
  const cpu = mean((s) => s.cpuUsPerReq) / a.cpuUsPerReq;
  return {
    name,
    goal,
    ofMedians: basis === 'throughput' ? a.rps / mean((s) => s.rps) : cpu,
    paired: median(perRound),
    perRound,
    cpu,
  };
}

function renderTable(summaries: Summary[], ratios: Ratio[], basis: Basis): string {
  const lines: string[] = [];
  lines.push(
    '| target | req/s (median) | req/s min–max | p50 ms | p99 ms | errors | non-200 | ' +
      'CPU µs/req: target | upstream | load gen | RSS MiB | ready in ms |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const s of summaries) {
    lines.push(
      `| ${s.target.label} | ${fmt.int(s.rps)} | ${fmt.int(s.rpsMin)}–${fmt.int(s.rpsMax)} | ${fmt.ms(s.p50)} | ` +
        `${fmt.ms(s.p99)} | ${s.errors} | ${s.non2xx} | ${fmt.one(s.cpuUsPerReq)} | ` +
        `${fmt.one(s.upstreamCpuUsPerReq)} | ${fmt.one(s.loadgenCpuUsPerReq)} | ${fmt.one(s.rssMiB)} | ` +
        `${fmt.int(s.target.startupMs)} |`,
    );
  }
  lines.push(
    '',
    basis === 'throughput'
      ? '| ratio a / b | goal | req/s, paired by round (median) | per round | req/s, of medians | CPU/req, b ÷ a | goal met? |'
      : '| ratio a / b | goal | 1 / CPU per request, paired by round (median) | per round | of medians | CPU/req, b ÷ a | goal met? |',
    '|---|---:|---:|---|---:|---:|---|',
  );
  for (const r of ratios) {
    const met = r.goal === null ? '—' : r.paired >= r.goal ? 'yes' : 'NO';
    lines.push(
      `| ${r.name} | ${r.goal === null ? '—' : `≥ ${r.goal}`} | ${fmt.ratio(r.paired)} | ` +
        `${r.perRound.map(fmt.ratio).join(', ')} | ${fmt.ratio(r.ofMedians)} | ${fmt.ratio(r.cpu)} | ${met} |`,
    );
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------
// Main

let cleaningUp: Promise<void> | null = null;
let workDirToRemove: string | null = null;

/** Median and longest restart, in ms, over every target. */
function restartSummary(restartMs: Map<TargetId, number[]>): string {
  const all = [...restartMs.values()].flat();
  return all.length
    ? `${fmt.int(median(all))} ms median, ${fmt.int(Math.max(...all))} ms at most`
    : 'no time';
}

function cleanup(): Promise<void> {
  cleaningUp ??= (async () => {
    current?.stop();
    await stopAll(5_000);
    if (workDirToRemove) rmSync(workDirToRemove, { recursive: true, force: true });
  })();
  return cleaningUp;
}

function installSignalHandlers(): void {
  process.on('exit', killAllNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping the targets…\n`);
      cleanup().finally(() => process.exit(130));
    });
  }
  const crash = (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error)?.stack ?? err}\n`);
    cleanup().finally(() => process.exit(1));
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);
}

function log(message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const opts = parseOptions(argv);
  const command = ['node bench/run.ts', ...argv.map((a) => (/[\s'"]/.test(a) ? `'${a}'` : a))].join(' ');
  const loadAtStart = loadavg()[0]!;
  const targets = opts.targets;
  const plannedSeconds =
    opts.lives *
      (targets.length * (opts.warmup + opts.rounds * opts.duration) +
        (targets.length * (opts.rounds + 1) * PAUSE_MS) / 1000) +
    (opts.lives - 1) * targets.length * RESTART_SECONDS;
  if (plannedSeconds > MAX_PLANNED_SECONDS) {
    process.stderr.write(
      `bench: the load would take ${Math.round(plannedSeconds)} s, above the ${MAX_PLANNED_SECONDS} s bound; ` +
        'lower --duration, --rounds or --warmup, or pick fewer --targets\n',
    );
    return 2;
  }
  installSignalHandlers();
  // Hard bound on the whole run: startup of the 10 000-rule gateway included.
  const watchdog = setTimeout(
    () => {
      process.stderr.write('bench: took too long, aborting\n');
      cleanup().finally(() => process.exit(1));
    },
    (plannedSeconds + OVERHEAD_SECONDS) * 1000,
  );
  watchdog.unref();

  const workDir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-'));
  const cpuProfDir = opts.cpuProf ? join(workDir, 'cpuprofiles') : null;
  if (!opts.keep && !opts.cpuProf) workDirToRemove = workDir;
  log(`work dir ${workDir}`);

  // The upstream, in its own process so that it does not share the load generator's event loop.
  const upstream = start('upstream', process.execPath, [join(benchDir, 'upstream.ts'), '--exit-with-stdin'], {
    stdinPipe: true,
  });
  const upstreamPort = await waitForReadyPort(upstream);
  upstreamPid = upstream.proc.pid;
  const upstreamUrl = `http://127.0.0.1:${upstreamPort}`;
  log(`upstream on ${upstreamUrl}`);

  // The JWT target's identity provider: a key set server and one signed token.
  const identity = targets.includes('gatehouse-jwt') ? await startIdentity() : null;
  if (identity) log(`JWKS on ${identity.idp.jwksUri}, token of ${identity.token.length} bytes`);

  // Observed targets ship events to analytics ingestion (started once they are, since it trusts each
  // gateway's key set on its admin port) and export spans to an OTLP sink, each in its own process.
  const observed = targets.filter((t) => OBSERVED.includes(t));
  const ingestPort = observed.length ? await freePort() : 0;
  const trustedGateways: Array<{ issuer: string; adminPort: number }> = [];
  const otlpUrl = observed.some((t) => TRACED.includes(t)) ? await startOtlpSink() : null;

  const started: Target[] = [];
  const routeIds = new Map<TargetId, string>();
  for (const id of targets) {
    let target: Target;
    if (id === 'bare') target = await startBare(upstreamUrl, cpuProfDir);
    else if (id === 'nginx') target = await startNginx(workDir, upstreamPort);
    else {
      let label: string;
      let writeConfig: ConfigWriter;
      let headers: Record<string, string> = {};
      if (id === 'gatehouse' || id === 'gatehouse-again' || id === 'gatehouse-nolog') {
        label =
          id === 'gatehouse'
            ? 'Gatehouse, 1 noAuth route'
            : id === 'gatehouse-again'
              ? 'Gatehouse, 1 noAuth route (a second process)'
              : 'Gatehouse, 1 route, access log off';
        writeConfig = (dir, port, adminPort) =>
          writeSingleRouteConfig(dir, port, adminPort, upstreamUrl, id !== 'gatehouse-nolog');
      } else if (
        id === 'gatehouse-rl-local' ||
        id === 'gatehouse-rl-redis' ||
        id === 'gatehouse-rl-batched'
      ) {
        const backend =
          id === 'gatehouse-rl-local' ? 'local' : id === 'gatehouse-rl-redis' ? 'redis' : 'batched';
        label = `Gatehouse, noAuth + rate limit (${backend === 'batched' ? 'redis, batched' : backend})`;
        // Counters expire within a second (the limit's window); the prefix keeps runs apart. Timeout
        // 1s, not the default 50ms: at full load on a shared 2-core machine the gateway's own event
        // loop now and then falls that far behind, and those 503s are not what is measured here.
        const redis = { url: REDIS_URL, prefix: `gatehouse-bench:${process.pid}:${id}:`, timeout: '1s' };
        writeConfig = (dir, port, adminPort) =>
          writeRateLimitRouteConfig(dir, port, adminPort, upstreamUrl, backend, redis);
      } else if (OBSERVED.includes(id)) {
        label =
          id === 'gatehouse-obs'
            ? 'Gatehouse, noAuth + analytics + tracing (defaults)'
            : id === 'gatehouse-obs-all'
              ? 'Gatehouse, noAuth + analytics + tracing (every request recorded)'
              : id === 'gatehouse-obs-none'
                ? 'Gatehouse, noAuth + analytics + tracing (no request recorded)'
                : id === 'gatehouse-analytics'
                  ? 'Gatehouse, noAuth + analytics'
                  : 'Gatehouse, noAuth + analytics (memory only, no spool)';
        const issuer = `gatehouse://bench-${id}`;
        writeConfig = (dir, port, adminPort) => {
          trustedGateways.push({ issuer, adminPort });
          return writeObservedRouteConfig(dir, port, adminPort, upstreamUrl, {
            issuer,
            ingestUrl: `http://127.0.0.1:${ingestPort}/analytics/v1/events`,
            otlpUrl: TRACED.includes(id) ? otlpUrl : null,
            sampleRatio: id === 'gatehouse-obs-all' ? 1 : id === 'gatehouse-obs-none' ? 0 : null,
            spoolDir: id === 'gatehouse-analytics-mem' ? null : join(dir, 'spool'),
          });
        };
      } else if (id === 'gatehouse-jwt') {
        const { idp, token } = identity!;
        label = 'Gatehouse, JWT route (warm cache)';
        writeConfig = (dir, port, adminPort) => writeJwtRouteConfig(dir, port, adminPort, upstreamUrl, idp);
        headers = { authorization: `Bearer ${token}` };
      } else {
        const rules = id === 'gatehouse-10' ? 10 : opts.rules;
        label = `Gatehouse, ${rules.toLocaleString('en-US')} rules`;
        writeConfig = (dir, port, adminPort) =>
          writeManyRulesConfig(dir, port, adminPort, upstreamUrl, rules);
      }
      const ownFlags = opts.targetNodeFlags.get(id) ?? [];
      const g = await startGatehouse(
        id,
        ownFlags.length ? `${label} [${ownFlags.join(' ')}]` : label,
        workDir,
        writeConfig,
        headers,
        cpuProfDir,
        [...opts.gatehouseNodeFlags, ...ownFlags],
      );
      target = g.target;
      // Without an access log there is no line to check the route on; its config is 'gatehouse''s.
      if (id !== 'gatehouse-nolog') routeIds.set(id, g.benchRouteId);
    }
    log(`${target.label} ready on ${target.baseUrl} in ${Math.round(target.startupMs)} ms`);
    started.push(target);
  }

  const ingest =
    observed.length && !process.env.BENCH_NO_INGEST
      ? opts.ingest === 'real'
        ? await startIngest(workDir, ingestPort, trustedGateways)
        : await startIngestSink(ingestPort)
      : null;
  // Its CPU from here on (start-up excluded), reported per event at the end.
  const ingestCpuAtStart = ingest ? (cpuMs(ingest.child.proc.pid) ?? 0) : 0;

  // Every target must answer the benched request with the upstream's body before it is measured, and
  // Gatehouse must have routed it to the intended rule (not to some other rule that happens to match).
  const checkTargets = async () => {
    for (const t of started) {
      const r = await probe(t.baseUrl, t.headers);
      if (r.status !== 200 || r.body !== UPSTREAM_BODY) {
        throw new Error(`${t.label}: probe answered ${r.status} ${r.body.slice(0, 300)}`);
      }
      // The JWT route must really authenticate: without the token, or with a tampered one, it is a 401.
      if (t.id === 'gatehouse-jwt') {
        const token = identity!.token;
        const tampered = `${token.slice(0, -4)}${token.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
        for (const [what, headers] of [
          ['without a token', {}],
          ['with a tampered token', { authorization: `Bearer ${tampered}` }],
        ] as const) {
          const refused = await probe(t.baseUrl, headers);
          if (refused.status !== 401)
            throw new Error(`${t.label}: ${what} answered ${refused.status}, expected 401`);
        }
      }
      const routeId = routeIds.get(t.id);
      if (routeId && t.logFile) {
        // The 200 itself (the JWT target's refused probes log the same route with a 401).
        await waitForLogLine(t.child, t.logFile, new RegExp(`"route":"${routeId}".*"status":200,`), 5_000);
      }
    }
    log('every target answers the benched request with the upstream body');
  };
  await checkTargets();

  const invalid: string[] = [];
  const runs = new Map<TargetId, RunResult[]>(started.map((t) => [t.id, []]));
  const restartMs = new Map<TargetId, number[]>(started.map((t) => [t.id, []]));
  for (let life = 0; life < opts.lives; life++) {
    const lifeLabel = opts.lives > 1 ? ` (process ${life + 1}/${opts.lives})` : '';
    if (life > 0) {
      for (const t of started) {
        log(`restarting ${t.label}`);
        restartMs.get(t.id)!.push(await t.restart());
      }
      await checkTargets();
    }
    if (opts.warmup > 0) {
      for (const t of started) {
        log(`warm-up ${t.label}${lifeLabel} (${opts.warmup}s)`);
        const r = await drive(t, opts.warmup, opts.connections, opts.rate);
        // Not at --rate: autocannon takes a moment to reach it, and the warm-up is not measured.
        for (const reason of invalidReasons(r, null)) invalid.push(`${t.label}, warm-up: ${reason}`);
        await new Promise((res) => setTimeout(res, PAUSE_MS));
      }
    }
    for (let round = life * opts.rounds; round < (life + 1) * opts.rounds; round++) {
      // Rotate the order each round so that no target always runs first or right after the same one.
      const order = started.map((_, i) => started[(i + round) % started.length]!);
      for (const t of order) {
        const r = await drive(t, opts.duration, opts.connections, opts.rate);
        runs.get(t.id)!.push(r);
        const reasons = invalidReasons(r, opts.rate);
        for (const reason of reasons) invalid.push(`${t.label}, round ${round + 1}: ${reason}`);
        log(
          `round ${round + 1}/${opts.rounds * opts.lives} ${t.label}: ${fmt.int(r.rps)} req/s, p50 ${fmt.ms(r.p50)} ms, ` +
            `p99 ${fmt.ms(r.p99)} ms, CPU µs/req ${fmt.one(r.cpuUsPerReq)} (upstream ` +
            `${fmt.one(r.upstreamCpuUsPerReq)}, load gen ${fmt.one(r.loadgenCpuUsPerReq)})` +
            `${reasons.length ? ' INVALID' : ''}`,
        );
        await new Promise((res) => setTimeout(res, PAUSE_MS));
      }
    }
  }

  const summaries = started.map((t) => summarise(t, runs.get(t.id)!));
  const by = (id: TargetId) => summaries.find((s) => s.target.id === id);
  const basis: Basis = opts.rate === null ? 'throughput' : 'cpu';
  const ratio = ratioOn.bind(null, basis);
  const ratios = [
    ratio('Gatehouse 1 noAuth route / bare proxy', 0.9, by('gatehouse'), by('bare')),
    ratio('Gatehouse JWT (warm cache) / noAuth', 0.85, by('gatehouse-jwt'), by('gatehouse')),
    ratio(
      `Gatehouse ${opts.rules.toLocaleString('en-US')} rules / 10 rules`,
      0.95,
      by('gatehouse-many'),
      by('gatehouse-10'),
    ),
    ratio('Gatehouse 1 noAuth route / nginx', null, by('gatehouse'), by('nginx')),
    ratio('bare proxy / nginx', null, by('bare'), by('nginx')),
    ratio('Gatehouse access log on / off', null, by('gatehouse'), by('gatehouse-nolog')),
    ratio(
      'A/A: Gatehouse 1 noAuth route, second process / first',
      null,
      by('gatehouse-again'),
      by('gatehouse'),
    ),
    ratio('rate limit, local / noAuth', 0.9, by('gatehouse-rl-local'), by('gatehouse')),
    ratio('rate limit, redis / noAuth', 0.7, by('gatehouse-rl-redis'), by('gatehouse')),
    ratio('rate limit, redis batched / noAuth', 0.7, by('gatehouse-rl-batched'), by('gatehouse')),
    // With the A/A pair in the run the goal is judged against both processes with it off (their mean
    // per round); against one of them the ratio also carries that one process's luck.
    ratio(
      'noAuth, analytics + tracing on (defaults) / off',
      by('gatehouse-again') ? null : 0.95,
      by('gatehouse-obs'),
      by('gatehouse'),
    ),
    ratio(
      'noAuth, analytics + tracing on (defaults) / off, both off processes (A/A pair)',
      0.95,
      by('gatehouse-obs'),
      [by('gatehouse'), by('gatehouse-again')],
    ),
    ratio(
      'noAuth, analytics + tracing (every request recorded) / off',
      null,
      by('gatehouse-obs-all'),
      by('gatehouse'),
    ),
    ratio(
      'noAuth, analytics + tracing (no request recorded) / off',
      null,
      by('gatehouse-obs-none'),
      by('gatehouse'),
    ),
    ratio('noAuth, analytics alone / off', null, by('gatehouse-analytics'), by('gatehouse')),
    ratio('noAuth, analytics alone, memory only / off', null, by('gatehouse-analytics-mem'), by('gatehouse')),
  ].filter((r): r is Ratio => r !== null);

  // Gatehouse logs one line per request; a quick check that the access log really was written.
  const accessLines = started
    .filter((t) => t.logFile)
    .map((t) => `${t.label}: ${fmt.one(statSync(t.logFile!).size / 1048576)} MiB of access log`);

  // Observed targets: every request answered (warm-up, rounds, probe) must reach ingestion.
  const deliveryLines: string[] = [];
  if (ingest) {
    const answered =
      observed.reduce((sum, id) => {
        const s = by(id);
        return sum + (s ? s.runs.reduce((n, r) => n + r.requests, 0) : 0);
      }, 0) + observed.length;
    log(`waiting for ingestion to hold the ${answered}+ events of the observed targets`);
    const stored = await awaitDelivery(ingest, answered);
    // Ingestion shares the machine's cores with what is measured (in a deployment it runs elsewhere).
    const ingestCpuNow = cpuMs(ingest.child.proc.pid);
    const ingestCpu = ingestCpuNow === null ? null : ingestCpuNow - ingestCpuAtStart;
    deliveryLines.push(
      `analytics: ${stored} events ${ingest.holds} ` +
        `for ${answered} requests measured (+ warm-up) on the observed targets` +
        (stored < answered ? ' — NOT ALL DELIVERED within 30 s' : '') +
        (ingestCpu === null || stored === 0
          ? ''
          : `; ${ingest.name} CPU ${fmt.one(ingestCpu / 1000)} s, ${fmt.one((ingestCpu * 1000) / stored)} µs/event`),
    );
    if (otlpUrl)
      deliveryLines.push(`tracing: ${await exportedSpans(otlpUrl)} spans received by the OTLP sink`);
  }

  const out: string[] = [];
  out.push(
    '',
    `command: ${command}`,
    `date: ${new Date().toISOString()}, git ${gitRevision()}`,
    `machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}, ${nginxVersion()}, ` +
      `autocannon 9; 1-min load average ${loadAtStart.toFixed(2)} at start, ${loadavg()[0]!.toFixed(2)} at end`,
    `load: GET ${BENCH_PATH} (Host: ${BENCH_HOST}), ${opts.connections} connections, pipelining 1, ` +
      (opts.rate === null ? '' : `fixed rate ${fmt.int(opts.rate)} req/s (ratios of CPU per request), `) +
      (opts.lives === 1
        ? `${opts.duration}s × ${opts.rounds} interleaved rounds after a ${opts.warmup}s warm-up per target; `
        : `${opts.lives} processes per target one after another, each warmed up ${opts.warmup}s then ` +
          `${opts.duration}s × ${opts.rounds} interleaved rounds (${opts.lives * opts.rounds} rounds in all; ` +
          `restarts took ${restartSummary(restartMs)}); `) +
      `upstream body ${Buffer.byteLength(UPSTREAM_BODY)} bytes` +
      (identity
        ? `; the JWT target also gets Authorization: Bearer <one ES256 JWT, ${identity.token.length} bytes>, ` +
          `key set fetched ${jwksFetches(identity)} time(s) by the gateway`
        : ''),
    '',
    renderTable(summaries, ratios, basis),
    '',
    'target CPU µs/req by thread (all rounds; /proc tick resolution):',
    ...summaries
      .filter((s) => Object.keys(s.threadsUsPerReq).length > 0)
      .map(
        (s) =>
          `  ${s.target.label}: ${
            Object.entries(s.threadsUsPerReq)
              .sort((a, b) => b[1] - a[1])
              .filter(([, us]) => us >= 0.5)
              .map(([name, us]) => `${name} ${us.toFixed(1)}`)
              .join(', ') || 'n/a'
          }`,
      ),
    '',
    'Gatehouse GC pauses µs/req by kind (nodejs_gc_duration_seconds, read before and after each round):',
    ...summaries
      .filter((s) => s.target.adminUrl !== null)
      .map(
        (s) =>
          `  ${s.target.label}: ${
            Object.entries(s.gcUsPerReq)
              .sort((a, b) => b[1] - a[1])
              .map(([kind, us]) => `${kind} ${us.toFixed(2)}`)
              .join(', ') || 'none'
          }`,
      ),
    '',
    `access logs: ${accessLines.join('; ') || 'n/a'}`,
    ...deliveryLines,
  );
  if (opts.gatehouseNodeFlags.length) {
    out.push('', `Gatehouse processes ran with extra node flags: ${opts.gatehouseNodeFlags.join(' ')}`);
  }
  if (opts.cpuProf) {
    out.push(
      '',
      `CPU profiles (written when the gateways exit) in ${cpuProfDir}; numbers above are slowed by profiling.`,
    );
  }
  if (invalid.length) {
    out.push('', 'RUN INVALID: every response must be a 200 with the upstream body and no errors:');
    for (const line of invalid) out.push(`  - ${line}`);
  } else {
    out.push('', 'valid: every response was a 200 with the upstream body, no connection errors');
  }
  process.stdout.write(`${out.join('\n')}\n`);

  if (opts.json) {
    writeFileSync(
      opts.json,
      JSON.stringify(
        {
          command,
          date: new Date().toISOString(),
          options: opts,
          valid: invalid.length === 0,
          invalid,
          targets: summaries.map((s) => ({
            ...s,
            target: { id: s.target.id, label: s.target.label },
            restartMs: restartMs.get(s.target.id),
          })),
          ratios,
        },
        null,
        2,
      ),
    );
  }

  await cleanup();
  if (cpuProfDir) {
    const files = readdirSync(cpuProfDir, { recursive: true, encoding: 'utf8' }).filter((f) =>
      f.endsWith('.cpuprofile'),
    );
    for (const f of files) process.stdout.write(`profile: ${join(cpuProfDir, f)}\n`);
    process.stdout.write(`summarise with: node bench/cpuprofile-summary.ts <file>\n`);
  } else if (opts.keep) {
    process.stdout.write(`kept ${workDir}\n`);
  }
  clearTimeout(watchdog);
  return invalid.length ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`bench: ${(err as Error).message}\n`);
      process.exit(2);
    }
    process.stderr.write(`bench: ${(err as Error).stack ?? err}\n`);
    cleanup().finally(() => process.exit(1));
  },
);
