// The one list of Prometheus metrics (docs/analytics.md) names every metric the code declares, and
// the Grafana dashboard queries only metrics in that list.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './helpers/process.ts';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sources(join(dir, e.name))
      : e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')
        ? [join(dir, e.name)]
        : [],
  );
}

const declared = new Set<string>();
for (const file of sources(join(repoRoot, 'src')))
  for (const m of readFileSync(file, 'utf8').matchAll(/name: '(gatehouse_[a-z_]+)'/g)) declared.add(m[1]!);
const doc = readFileSync(join(repoRoot, 'docs/analytics.md'), 'utf8');
const listed = new Set([...doc.matchAll(/^\| `(gatehouse_[a-z_]+)` \|/gm)].map((m) => m[1]!));

test('every metric declared in src/ is in the list of docs/analytics.md, and nothing else is', () => {
  assert.ok(declared.size > 15);
  assert.deepEqual([...declared].filter((n) => !listed.has(n)).sort(), []);
  assert.deepEqual([...listed].filter((n) => !declared.has(n)).sort(), []);
});

test('the Grafana dashboard queries only listed metrics', () => {
  const dashboard = JSON.parse(readFileSync(join(repoRoot, 'dashboards/gatehouse.json'), 'utf8'));
  const used = new Set<string>();
  for (const panel of dashboard.panels)
    for (const target of panel.targets ?? [])
      for (const m of (target.expr as string).matchAll(/gatehouse_[a-z_]+/g))
        used.add(m[0].replace(/_(bucket|sum|count)$/, ''));
  assert.ok(used.size > 10);
  assert.deepEqual([...used].filter((n) => !listed.has(n)).sort(), []);
});
