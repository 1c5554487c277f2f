import type { ResourceKey, StoredResource } from './types.ts';

/** One string per resource, for maps (NUL cannot occur in a name, namespace or kind). */
export function keyId(key: ResourceKey): string {
  return `${key.kind}\u0000${key.namespace}\u0000${key.name}`;
}

export function keyOf(resource: {
  kind: ResourceKey['kind'];
  metadata: { namespace: string; name: string };
}): ResourceKey {
  return { kind: resource.kind, namespace: resource.metadata.namespace, name: resource.metadata.name };
}

export function describeKey(key: ResourceKey): string {
  return `${key.kind} ${key.namespace}/${key.name}`;
}

// Sorted in JavaScript, not by the database, so that both backends agree whatever the database's
// collation (PostgreSQL's default collation would order 'a' and 'B' differently from SQLite).
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function compareKeys(a: ResourceKey, b: ResourceKey): number {
  return (
    compareStrings(a.kind, b.kind) ||
    compareStrings(a.namespace, b.namespace) ||
    compareStrings(a.name, b.name)
  );
}

export function sortResources(resources: StoredResource[]): StoredResource[] {
  return resources.sort((a, b) => compareKeys(keyOf(a), keyOf(b)));
}

/** Every label of the query present with the same value (AND of equalities). */
export function labelsMatch(resource: StoredResource, wanted: Record<string, string> | undefined): boolean {
  if (!wanted) return true;
  const labels = resource.metadata.labels ?? {};
  for (const [name, value] of Object.entries(wanted)) {
    if (!Object.hasOwn(labels, name) || labels[name] !== value) return false;
  }
  return true;
}
