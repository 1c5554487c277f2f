// Summarises a V8 .cpuprofile (from `node --cpu-prof`, e.g. `npm run bench -- --cpu-prof`): the
// functions with the most self time, self time per package/module, and the inclusive time of the
// gateway's own functions.
//
//   node bench/cpuprofile-summary.ts <file.cpuprofile> [--top 30]
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const repoRoot = fileURLToPath(new URL('../', import.meta.url));

function shortUrl(url: string): string {
  if (!url) return '';
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  return path.startsWith(repoRoot) ? relative(repoRoot, path) : path;
}

/** Where a frame's code lives: a package, a Gatehouse directory, Node internals, or a V8 pseudo-frame. */
export function moduleOf(frame: CallFrame): string {
  const url = shortUrl(frame.url);
  if (!url) return frame.functionName.startsWith('(') ? frame.functionName : '(native/V8 builtins)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) {
    const m = /^node:(?:internal\/)?([^/]+(?:\/[^/]+)?)/.exec(url);
    return `node:${m ? m[1] : url.slice(5)}`;
  }
  if (url.startsWith('src/')) return url;
  return url;
}

function label(frame: CallFrame): string {
  const url = shortUrl(frame.url);
  const name = frame.functionName || '(anonymous)';
  return url ? `${name} ${url}:${frame.lineNumber + 1}` : name;
}

export interface Summary {
  totalMs: number;
  self: Array<{ label: string; ms: number; share: number }>;
  modules: Array<{ module: string; ms: number; share: number }>;
  gatehouseInclusive: Array<{ label: string; ms: number; share: number }>;
}

export function summarise(profile: Profile, top = 30): Summary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time before sample i; attribute it to the sample that ends it.
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, profile.timeDeltas[i + 1] ?? 0));
  }
  let total = 0;
  for (const v of selfUs.values()) total += v;
  const idle = [...selfUs.entries()]
    .filter(([id]) => byId.get(id)?.callFrame.functionName === '(idle)')
    .reduce((s, [, v]) => s + v, 0);
  const busy = total - idle;

  const selfBy = new Map<string, number>();
  const moduleBy = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    if (node.callFrame.functionName === '(idle)') continue;
    const key = label(node.callFrame);
    selfBy.set(key, (selfBy.get(key) ?? 0) + us);
    const mod = moduleOf(node.callFrame);
    moduleBy.set(mod, (moduleBy.get(mod) ?? 0) + us);
  }

  // Inclusive time of Gatehouse's functions (src/), counted once per stack even under recursion.
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)!.callFrame;
      if (!shortUrl(frame.url).startsWith('src/')) continue;
      const key = label(frame);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + us);
    }
  }

  const rows = <K extends string>(map: Map<string, number>, key: K, n: number) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(
        ([k, us]) =>
          ({ [key]: k, ms: us / 1000, share: busy ? us / busy : 0 }) as { [P in K]: string } & {
            ms: number;
            share: number;
          },
      );
  return {
    totalMs: busy / 1000,
    self: rows(selfBy, 'label', top),
    modules: rows(moduleBy, 'module', 25),
    gatehouseInclusive: rows(inclusive, 'label', top),
  };
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '30' } },
  });
  if (positionals.length === 0) {
    process.stderr.write('usage: node bench/cpuprofile-summary.ts <file.cpuprofile>... [--top 30]\n');
    process.exit(2);
  }
  const pct = (x: number) => `${(x * 100).toFixed(1).padStart(5)}%`;
  const ms = (x: number) => `${x.toFixed(0).padStart(7)} ms`;
  for (const file of positionals) {
    const s = summarise(JSON.parse(readFileSync(file, 'utf8')) as Profile, Number(values.top));
    const out: string[] = [`${file}: ${s.totalMs.toFixed(0)} ms of non-idle samples`, '', 'top self time:'];
    for (const r of s.self) out.push(`  ${pct(r.share)} ${ms(r.ms)}  ${r.label}`);
    out.push('', 'self time by module:');
    for (const r of s.modules) out.push(`  ${pct(r.share)} ${ms(r.ms)}  ${r.module}`);
    out.push('', 'inclusive time of Gatehouse functions (src/):');
    for (const r of s.gatehouseInclusive) out.push(`  ${pct(r.share)} ${ms(r.ms)}  ${r.label}`);
    process.stdout.write(`${out.join('\n')}\n\n`);
  }
}

if (import.meta.main) main();
