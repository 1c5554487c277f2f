// Snapshot compile time for a large config (used by bench/apply-latency.ts): what a change to a
// 10 000-rule gateway costs on each side, phase by phase, on the real code paths.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config/load.ts';
import { computeSnapshot } from '../src/control-plane/distribution/snapshot.ts';
import type { StoredResource } from '../src/control-plane/store/types.ts';
import { writeIncoming } from '../src/gateway/connected/snapshot-files.ts';
import { buildPlan } from '../src/gateway/runtime.ts';
import { writeManyRulesConfig } from './configs.ts';
import { median } from './report.ts';

export interface SnapshotCompileResult {
  rules: number;
  runs: number;
  snapshotBytes: number;
  /** Median milliseconds per phase. */
  selectAndHashMs: number;
  serializeMs: number;
  parseMs: number;
  writeYamlMs: number;
  loadAndCompileMs: number;
  totalMs: number;
}

export function measureSnapshotCompile(rules: number, runs: number): SnapshotCompileResult {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-snapshot-'));
  try {
    // Ports are never bound: only the plan is built.
    writeManyRulesConfig(dir, 18080, 19901, 'http://127.0.0.1:9', rules);
    const loaded = loadConfig([join(dir, 'gateway.yaml')]);
    if (loaded.errors.length > 0)
      throw new Error(`bench config invalid: ${JSON.stringify(loaded.errors[0])}`);
    const stored: StoredResource[] = loaded.resources.map((r, i) => ({
      apiVersion: r.apiVersion,
      kind: r.kind,
      metadata: {
        ...r.metadata,
        resourceVersion: String(i + 1),
        uid: `uid-${i}`,
        creationTimestamp: new Date(0).toISOString(),
      },
      spec: r.spec,
    }));
    const identity = { id: 'bench', name: 'bench', namespace: 'default', labels: {} };
    const phases = { select: [] as number[], serialize: [] as number[], parse: [] as number[] };
    const more = { write: [] as number[], compile: [] as number[], total: [] as number[] };
    let bytes = 0;
    for (let run = 0; run < runs; run++) {
      const t0 = performance.now();
      const snapshot = computeSnapshot(stored, run + 1, identity);
      const t1 = performance.now();
      const data = JSON.stringify(snapshot);
      const t2 = performance.now();
      const received = JSON.parse(data);
      const t3 = performance.now();
      const path = writeIncoming(dir, received);
      const t4 = performance.now();
      const { plan } = buildPlan([path], { gatewayName: 'bench' });
      const t5 = performance.now();
      if (plan.rules.length !== rules)
        throw new Error(`compiled ${plan.rules.length} rules, wanted ${rules}`);
      bytes = Buffer.byteLength(data);
      phases.select.push(t1 - t0);
      phases.serialize.push(t2 - t1);
      phases.parse.push(t3 - t2);
      more.write.push(t4 - t3);
      more.compile.push(t5 - t4);
      more.total.push(t5 - t0);
    }
    return {
      rules,
      runs,
      snapshotBytes: bytes,
      selectAndHashMs: median(phases.select),
      serializeMs: median(phases.serialize),
      parseMs: median(phases.parse),
      writeYamlMs: median(more.write),
      loadAndCompileMs: median(more.compile),
      totalMs: median(more.total),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
