// The one list of Prometheus metrics (docs/analytics.md) names every metric the code declares and
// every process metric served, and the Grafana dashboard queries only metrics in that list.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { registerProcessMetrics } from '../src/telemetry/process-metrics.ts';
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
// The process's metrics (standard names, some rows list several: `{a,b}` expanded).
const processListed = new Set<string>();
for (const [, name] of doc.matchAll(/`((?:process|nodejs)_[a-z_{},0-9]+)`/g)) {
  const braces = /\{([^}]+)\}/.exec(name!);
  if (braces === null) processListed.add(name!);
  else for (const part of braces[1]!.split(',')) processListed.add(name!.replace(braces[0], part));
}

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
      for (const m of (target.expr as string).matchAll(/(?:gatehouse|process|nodejs)_[a-z_0-9]+/g))
        used.add(m[0].replace(/_(bucket|sum|count)$/, ''));
  assert.ok(used.size > 10);
  assert.deepEqual([...used].filter((n) => !listed.has(n) && !processListed.has(n)).sort(), []);
});

test('the process metrics every /metrics serves are the ones the list names', async () => {
  const registry = new Registry();
  registerProcessMetrics(registry);
  const served = (await registry.getMetricsAsJSON()).map((m) => m.name).sort();
  assert.ok(served.length > 20);
  assert.deepEqual(
    served.filter((n) => !processListed.has(n)),
    [],
  );
  assert.deepEqual([...processListed].filter((n) => !served.includes(n)).sort(), []);
});
