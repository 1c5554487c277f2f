/** One changed field between two versions of a resource. */
export interface FieldChange {
  op: 'add' | 'remove' | 'change';
  /** `metadata.labels.app`, `spec.rules[0].path`. */
  path: string;
  before?: unknown;
  after?: unknown;
}

interface Versioned {
  metadata: { labels?: Record<string, string> };
  spec: unknown;
}

/** The fields that differ between two versions (labels and spec; store metadata is not content). */
export function fieldDiff(before: Versioned | null, after: Versioned | null): FieldChange[] {
  const a = new Map<string, unknown>();
  const b = new Map<string, unknown>();
  if (before) flatten(content(before), '', a);
  if (after) flatten(content(after), '', b);
  const out: FieldChange[] = [];
  for (const [path, value] of a) {
    if (!b.has(path)) out.push({ op: 'remove', path, before: value });
    else if (JSON.stringify(b.get(path)) !== JSON.stringify(value))
      out.push({ op: 'change', path, before: value, after: b.get(path) });
  }
  for (const [path, value] of b) if (!a.has(path)) out.push({ op: 'add', path, after: value });
  return out.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
}

function content(r: Versioned): Record<string, unknown> {
  const labels = r.metadata.labels ?? {};
  return Object.keys(labels).length > 0 ? { metadata: { labels }, spec: r.spec } : { spec: r.spec };
}

/** Leaves by path; empty objects and arrays are leaves too, so adding `{}` shows. */
function flatten(value: unknown, path: string, out: Map<string, unknown>): void {
  if (Array.isArray(value) && value.length > 0) {
    value.forEach((v, i) => {
      flatten(v, `${path}[${i}]`, out);
    });
    return;
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value)) flatten(v, path ? `${path}.${k}` : k, out);
    return;
  }
  if (path !== '') out.set(path, value);
}

/** Unified-diff-like lines: `- path: old`, `+ path: new`. */
export function diffLines(changes: readonly FieldChange[]): string[] {
  const lines: string[] = [];
  for (const c of changes) {
    if (c.op !== 'add') lines.push(`- ${c.path}: ${JSON.stringify(c.before)}`);
    if (c.op !== 'remove') lines.push(`+ ${c.path}: ${JSON.stringify(c.after)}`);
  }
  return lines;
}
