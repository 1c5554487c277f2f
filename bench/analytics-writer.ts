// The analytics call writer (src/analytics/call.ts: one event's JSON written into the batch, on the
// request path) of the working tree against the same files at a git revision, side by side in one
// process: the two alternate 40 times, and the best time of each is reported. On a shared machine
// the best of many short alternating runs is steadier than two separate runs.
//
//   node bench/analytics-writer.ts [--against HEAD]
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { RecordedCall } from '../src/analytics/call.ts';
import { createCallWriter } from '../src/analytics/call.ts';
import { benchedCalls } from './benched-calls.ts';

const { values } = parseArgs({ options: { against: { type: 'string', default: 'HEAD' } } });
const repo = fileURLToPath(new URL('../', import.meta.url));
// Inside the repository (bench/.work, ignored by git), so that the copied files resolve its packages.
mkdirSync(join(repo, 'bench/.work'), { recursive: true });
const dir = mkdtempSync(join(repo, 'bench/.work/writer-'));

type Writer = { write: (...args: never[]) => number };
/** The writer at `rev` (its value imports are event.ts and, since it exists, event-id.ts). */
async function writerAt(
  rev: string,
): Promise<{ write: (call: RecordedCall, into: { buf: Buffer }, at: number) => number }> {
  for (const file of ['call.ts', 'event.ts', 'event-id.ts']) {
    try {
      const text = execFileSync('git', ['show', `${rev}:src/analytics/${file}`], {
        cwd: repo,
        encoding: 'utf8',
      });
      writeFileSync(join(dir, file), text);
    } catch {
      if (file !== 'event-id.ts') throw new Error(`src/analytics/${file} is not in ${rev}`);
    }
  }
  const mod = (await import(pathToFileURL(join(dir, 'call.ts')).href)) as {
    createCallWriter: (gateway: string) => Writer;
  };
  const writer = mod.createCallWriter('bench');
  if (writer.write.length === 3) return writer as never;
  // Before the writer wrote ids itself: write(call, id, into, at), the id made per call.
  const ids = (await import(pathToFileURL(join(dir, 'event-id.ts')).href)) as {
    createEventIdGenerator: () => (ms: number) => string;
  };
  const next = ids.createEventIdGenerator();
  const write = writer.write as unknown as (
    c: RecordedCall,
    id: string,
    into: { buf: Buffer },
    at: number,
  ) => number;
  return { write: (call, into, at) => write(call, next(call.time), into, at) };
}

const calls = benchedCalls(1000);

try {
  const sides = {
    [values.against]: await writerAt(values.against),
    'working tree': createCallWriter('bench'),
  };
  const into = { buf: Buffer.allocUnsafe(1 << 20) };
  const best = new Map<string, number>();
  for (let round = 0; round < 40; round++) {
    for (const [name, writer] of Object.entries(sides)) {
      const started = process.hrtime.bigint();
      for (let k = 0; k < 20; k++) {
        let at = 0;
        for (let i = 0; i < calls.length; i++) at = writer.write(calls[i]!, into, at);
      }
      const ns = Number(process.hrtime.bigint() - started) / (20 * calls.length);
      best.set(name, Math.min(best.get(name) ?? Number.POSITIVE_INFINITY, ns));
    }
  }
  const [a, b] = [...best.values()];
  for (const [name, ns] of best)
    process.stdout.write(`${name}: ${ns.toFixed(0)} ns per event (best of 40)\n`);
  process.stdout.write(`working tree / ${values.against}: ${(b! / a!).toFixed(3)}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
