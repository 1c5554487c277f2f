import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));

/** Median of the finite values; NaN when there are none. */
export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** Number formats of the result tables; `n/a` for what was not measured. */
export const fmt = {
  int: (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a'),
  ms: (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a'),
  ratio: (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a'),
  one: (x: number | null) => (x !== null && Number.isFinite(x) ? x.toFixed(1) : 'n/a'),
};

/** The commit measured, `+dirty` when tracked files differ from it. */
export function gitRevision(): string {
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' });
  if (head.status !== 0) return 'unknown';
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
  return `${head.stdout.trim()}${dirty.stdout.trim() ? '+dirty' : ''}`;
}
