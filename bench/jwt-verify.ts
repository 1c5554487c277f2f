// Uncached JWT verification: Gatehouse's verifier (src/identity/jwt-verifier.ts, verified-token cache
// off, keys from a local JWKS server) against calling jose's jwtVerify directly with an imported key,
// in the same process, on the same tokens, in interleaved rounds of a fixed number of verifications.
// ES256 and RS256. See bench/README.md.
//
//   npm run bench:jwt -- [--count 5000] [--rounds 7] [--concurrency 16] [--algs ES256,RS256] [--json file]
//                        [--impls gatehouse,jose]   (one alone: for a CPU profile of just that side)
import { fmt, gitRevision, median } from './report.ts';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { type CryptoKey, exportJWK, generateKeyPair, importJWK, type JWK, jwtVerify, SignJWT } from 'jose';
import Value from 'typebox/value';
import { IdentityProviderSpec } from '../src/config/schemas/identity-provider.ts';
import { createJwtVerifier } from '../src/identity/jwt-verifier.ts';
import type { JwtVerifier } from '../src/identity/types.ts';
import { startJwksServer } from './jwks-server.ts';

const ALGS = ['ES256', 'RS256'] as const;
type Alg = (typeof ALGS)[number];
type Impl = 'gatehouse' | 'jose';
const IMPLS: Impl[] = ['gatehouse', 'jose'];
const LABEL: Record<Impl, string> = {
  gatehouse: 'Gatehouse verifier (cache off)',
  jose: 'jose jwtVerify',
};

const ISSUER = 'https://idp.bench.test/';
const AUDIENCE = 'bench-api';
/** Goal: Gatehouse's verifier within 10 % of jose's throughput. */
const GOAL = 0.9;
/** Hard bound on the whole run; the largest allowed plan takes well under it on a quiet machine. */
const WATCHDOG_MS = 240_000;
const PAUSE_MS = 100;

interface Options {
  count: number;
  rounds: number;
  concurrency: number;
  algs: Alg[];
  impls: Impl[];
  json: string | null;
}

class UsageError extends Error {}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      count: { type: 'string', default: '5000' },
      rounds: { type: 'string', default: '7' },
      concurrency: { type: 'string', default: '16' },
      algs: { type: 'string', default: ALGS.join(',') },
      impls: { type: 'string', default: IMPLS.join(',') },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'node bench/jwt-verify.ts [--count n] [--rounds n] [--concurrency n] [--algs ES256,RS256]\n' +
        '                         [--impls gatehouse,jose] [--json file]\n',
    );
    process.exit(0);
  }
  const num = (name: string, text: string, min: number, max: number) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new UsageError(`--${name} must be an integer between ${min} and ${max}`);
    return n;
  };
  const algs = values.algs.split(',').map((a) => a.trim()) as Alg[];
  for (const a of algs) {
    if (!ALGS.includes(a)) throw new UsageError(`unknown algorithm ${a}; known: ${ALGS.join(', ')}`);
  }
  const impls = values.impls.split(',').map((i) => i.trim()) as Impl[];
  for (const i of impls) {
    if (!IMPLS.includes(i)) throw new UsageError(`unknown implementation ${i}; known: ${IMPLS.join(', ')}`);
  }
  const opts = {
    count: num('count', values.count, 100, 20_000),
    rounds: num('rounds', values.rounds, 1, 20),
    concurrency: num('concurrency', values.concurrency, 1, 256),
    algs,
    impls: IMPLS.filter((i) => impls.includes(i)),
    json: values.json ?? null,
  };
  // Bound the work: count × (rounds + 1 warm-up) × implementations × algorithms.
  const verifications = opts.count * (opts.rounds + 1) * opts.impls.length * algs.length;
  if (verifications > 400_000)
    throw new UsageError(`${verifications} verifications planned, above the 400 000 bound`);
  return opts;
}

// ---------------------------------------------------------------------------------------------------
// Keys and tokens

interface AlgSetup {
  alg: Alg;
  kid: string;
  publicJwk: JWK;
  privateKey: CryptoKey;
  /** The public key imported once, as a caller of jose would hold it. */
  joseKey: CryptoKey;
  /** `count` distinct tokens: different sub and jti, so no two verifications share a token. */
  tokens: string[];
}

async function setUpAlg(alg: Alg, count: number): Promise<AlgSetup> {
  const kid = `bench-${alg.toLowerCase()}`;
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  const joseKey = (await importJWK(publicJwk, alg)) as CryptoKey;
  const now = Math.floor(Date.now() / 1000);
  const sign = (i: number) =>
    new SignJWT({ scope: 'orders:read accounts:read', jti: randomBytes(12).toString('base64url') })
      .setProtectedHeader({ alg, kid, typ: 'JWT' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(`bench-user-${String(i).padStart(6, '0')}`)
      .setIssuedAt(now)
      .setExpirationTime(now + 3_600)
      .sign(privateKey);
  const tokens: string[] = [];
  for (let i = 0; i < count; i += 64) {
    const batch = Array.from({ length: Math.min(64, count - i) }, (_, j) => sign(i + j));
    tokens.push(...(await Promise.all(batch)));
  }
  if (new Set(tokens).size !== count) throw new Error(`${alg}: tokens are not all distinct`);
  return { alg, kid, publicJwk, privateKey, joseKey, tokens };
}

/** Gatehouse's verifier as the gateway builds it: defaults from the schema, background key fetches on. */
function gatehouseVerifier(jwksUri: string): JwtVerifier {
  const spec = Value.Default(
    IdentityProviderSpec,
    structuredClone({
      issuer: ISSUER,
      jwksUri,
      audiences: [AUDIENCE],
      algorithms: [...ALGS],
      verifiedTokenCache: { maxEntries: 0 },
    }),
  ) as IdentityProviderSpec;
  if (!Value.Check(IdentityProviderSpec, spec)) throw new Error('bench IdentityProvider spec is invalid');
  return createJwtVerifier('bench/idp', spec, {
    now: Date.now,
    start: true,
    env: {},
    log: (level, fields, message) => {
      if (level !== 'info') process.stderr.write(`verifier ${level}: ${message} ${JSON.stringify(fields)}\n`);
    },
  });
}

// ---------------------------------------------------------------------------------------------------
// Measuring

interface Batch {
  opsPerSec: number;
  /** Process CPU (user + system, all threads: WebCrypto runs on libuv's pool) per verification. */
  cpuUsPerOp: number;
  failures: number;
  firstFailure: string | null;
}

type VerifyOne = (token: string) => Promise<string | null>;

function verifyOneWith(impl: Impl, setup: AlgSetup, verifier: JwtVerifier): VerifyOne {
  if (impl === 'gatehouse') {
    return async (token) => {
      const check = await verifier.verify(token);
      return check.ok ? null : `${check.kind}: ${check.reason}`;
    };
  }
  const options = { issuer: ISSUER, audience: AUDIENCE, algorithms: [...ALGS] };
  return async (token) => {
    try {
      await jwtVerify(token, setup.joseKey, options);
      return null;
    } catch (err) {
      return (err as Error).message;
    }
  };
}

/** Verifies every token once, with at most `concurrency` verifications in flight. */
async function runBatch(tokens: string[], concurrency: number, verifyOne: VerifyOne): Promise<Batch> {
  let next = 0;
  let failures = 0;
  let firstFailure: string | null = null;
  const worker = async () => {
    while (next < tokens.length) {
      const problem = await verifyOne(tokens[next++]!);
      if (problem !== null) {
        failures++;
        firstFailure ??= problem;
      }
    }
  };
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, tokens.length) }, worker));
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return {
    opsPerSec: tokens.length / seconds,
    cpuUsPerOp: (cpu.user + cpu.system) / tokens.length,
    failures,
    firstFailure,
  };
}

// ---------------------------------------------------------------------------------------------------
// Report

function log(message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---------------------------------------------------------------------------------------------------
// Main

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const opts = parseOptions(argv);
  const command = ['node bench/jwt-verify.ts', ...argv].join(' ');
  const loadAtStart = loadavg()[0]!;
  const watchdog = setTimeout(() => {
    process.stderr.write('bench:jwt: took too long, aborting\n');
    process.exit(1);
  }, WATCHDOG_MS);
  watchdog.unref();

  log(`signing ${opts.count} distinct tokens per algorithm (${opts.algs.join(', ')})`);
  const setups = new Map<Alg, AlgSetup>();
  for (const alg of opts.algs) setups.set(alg, await setUpAlg(alg, opts.count));

  const jwks = await startJwksServer([...setups.values()].map((s) => s.publicJwk));
  const verifier = gatehouseVerifier(jwks.jwksUri);
  try {
    verifier.activate();
    await until(() => verifier.ready(), 10_000, 'the verifier to load the key set');
    log(`verifier ready: key set from ${jwks.jwksUri}, fetched ${jwks.hits()} time(s)`);

    // The verified-token cache must really be off: a cache hit answers synchronously, a check is a promise.
    for (const s of setups.values()) {
      const token = s.tokens[0]!;
      const first = await verifier.verify(token);
      if (!first.ok) throw new Error(`${s.alg}: Gatehouse refused a valid token: ${first.reason}`);
      const again = verifier.verify(token);
      if (!(again instanceof Promise))
        throw new Error('the verified-token cache is on; the bench needs it off');
      await again;
      await jwtVerify(token, s.joseKey, { issuer: ISSUER, audience: AUDIENCE, algorithms: [...ALGS] });
    }

    const invalid: string[] = [];
    const results = new Map<string, Batch[]>();
    const key = (alg: Alg, impl: Impl) => `${alg}/${impl}`;
    for (let round = 0; round <= opts.rounds; round++) {
      const warmUp = round === 0;
      for (const alg of opts.algs) {
        const setup = setups.get(alg)!;
        // Alternate which implementation goes first, so neither always runs on a warmer machine.
        const order = round % 2 === 0 ? opts.impls : [...opts.impls].reverse();
        for (const impl of order) {
          const b = await runBatch(setup.tokens, opts.concurrency, verifyOneWith(impl, setup, verifier));
          if (b.failures)
            invalid.push(
              `${alg} ${LABEL[impl]}, ${warmUp ? 'warm-up' : `round ${round}`}: ${b.failures} ` +
                `verifications failed (first: ${b.firstFailure})`,
            );
          if (!warmUp) {
            const list = results.get(key(alg, impl)) ?? [];
            list.push(b);
            results.set(key(alg, impl), list);
          }
          log(
            `${warmUp ? 'warm-up' : `round ${round}/${opts.rounds}`} ${alg} ${LABEL[impl]}: ` +
              `${fmt.int(b.opsPerSec)} verifications/s, CPU ${fmt.one(b.cpuUsPerOp)} µs each` +
              `${b.failures ? ' INVALID' : ''}`,
          );
          await new Promise((r) => setTimeout(r, PAUSE_MS));
        }
      }
    }

    const rows: string[] = [
      '| algorithm | implementation | verifications/s (median) | min–max | µs each (wall, median) | CPU µs each (median) |',
      '|---|---|---:|---:|---:|---:|',
    ];
    const ratioRows: string[] = [
      '| ratio | goal | verifications/s, paired by round (median) | per round | of medians | CPU each, jose ÷ Gatehouse | goal met? |',
      '|---|---:|---:|---|---:|---:|---|',
    ];
    const summary: Record<string, unknown>[] = [];
    for (const alg of opts.algs) {
      const runs = (impl: Impl) => results.get(key(alg, impl)) ?? [];
      for (const impl of opts.impls) {
        const ops = runs(impl).map((b) => b.opsPerSec);
        const med = median(ops);
        rows.push(
          `| ${alg} | ${LABEL[impl]} | ${fmt.int(med)} | ${fmt.int(Math.min(...ops))}–${fmt.int(Math.max(...ops))} | ` +
            `${fmt.one(1e6 / med)} | ${fmt.one(median(runs(impl).map((b) => b.cpuUsPerOp)))} |`,
        );
      }
      const g = runs('gatehouse');
      const j = runs('jose');
      if (g.length === 0 || j.length === 0) continue; // one implementation only: no ratio
      const perRound = g.map((b, i) => b.opsPerSec / j[i]!.opsPerSec);
      const paired = median(perRound);
      const ofMedians = median(g.map((b) => b.opsPerSec)) / median(j.map((b) => b.opsPerSec));
      const cpu = median(j.map((b) => b.cpuUsPerOp)) / median(g.map((b) => b.cpuUsPerOp));
      ratioRows.push(
        `| ${alg}: Gatehouse / jose | ≥ ${GOAL} | ${fmt.ratio(paired)} | ${perRound.map(fmt.ratio).join(', ')} | ` +
          `${fmt.ratio(ofMedians)} | ${fmt.ratio(cpu)} | ${paired >= GOAL ? 'yes' : 'NO'} |`,
      );
      summary.push({ alg, paired, perRound, ofMedians, cpu, gatehouse: g, jose: j });
    }

    const out = [
      '',
      `command: ${command}`,
      `date: ${new Date().toISOString()}, git ${gitRevision()}`,
      `machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}, jose 6; ` +
        `1-min load average ${loadAtStart.toFixed(2)} at start, ${loadavg()[0]!.toFixed(2)} at end`,
      `work: ${opts.count} distinct tokens per algorithm, each verified once per implementation per round, ` +
        `${opts.concurrency} in flight; ${opts.rounds} interleaved rounds after one warm-up round; ` +
        `Gatehouse: verifiedTokenCache.maxEntries 0, keys from a local JWKS server (fetched ` +
        `${jwks.hits()} time(s)); jose: jwtVerify(token, importedKey, { issuer, audience, algorithms })`,
      '',
      ...rows,
      '',
      ...(ratioRows.length > 2 ? [...ratioRows, ''] : []),
      invalid.length
        ? `RUN INVALID: every verification must succeed:\n${invalid.map((l) => `  - ${l}`).join('\n')}`
        : 'valid: every verification succeeded',
    ];
    process.stdout.write(`${out.join('\n')}\n`);
    if (opts.json) {
      writeFileSync(
        opts.json,
        JSON.stringify(
          {
            command,
            date: new Date().toISOString(),
            options: opts,
            valid: !invalid.length,
            invalid,
            summary,
          },
          null,
          2,
        ),
      );
    }
    return invalid.length ? 1 : 0;
  } finally {
    verifier.close();
    await jwks.close();
    clearTimeout(watchdog);
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`bench:jwt: ${(err as Error).message}\n`);
      process.exit(2);
    }
    process.stderr.write(`bench:jwt: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
