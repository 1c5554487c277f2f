import type { ConfigError } from '../config/errors.ts';
import { checkResource, type LoadedResource, type ResourceSource } from '../config/load.ts';
import { formatFieldPath } from '../config/errors.ts';
import type { Kind } from '../config/schemas/index.ts';
import { compilePlan } from '../plan/compile.ts';
import type { StoredResource } from './store/types.ts';

/** One problem with one resource of a write, as the admin API answers it (problem `errors`). */
export interface ResourceProblem {
  kind: string;
  namespace: string;
  name: string;
  /** Field path, e.g. `spec.rules[0].path`; empty for the whole resource. */
  path: string;
  message: string;
}

/** The envelope the schemas validate: store metadata (resourceVersion, uid, creationTimestamp) left out. */
export function schemaView(resource: {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; labels?: Record<string, string> };
  spec: unknown;
}): Record<string, unknown> {
  const { name, namespace, labels } = resource.metadata;
  return {
    apiVersion: resource.apiVersion,
    kind: resource.kind,
    metadata: { name, namespace, ...(labels !== undefined ? { labels } : {}) },
    spec: resource.spec,
  };
}

const sourcePrefix = 'control-plane:';

/** A source for compiler errors that names the resource, so they can be mapped back to it. */
function storedSource(kind: Kind, namespace: string, name: string): ResourceSource {
  return { file: `${sourcePrefix}${kind}/${namespace}/${name}`, locate: () => ({ line: 0, column: 0 }) };
}

function problemOf(error: ConfigError): ResourceProblem {
  if (error.file.startsWith(sourcePrefix)) {
    const [kind = '', namespace = '', name = ''] = error.file.slice(sourcePrefix.length).split('/');
    return { kind, namespace, name, path: error.path, message: error.message };
  }
  return { kind: '', namespace: '', name: '', path: error.path, message: error.message };
}

/**
 * The checks a write must pass, run by the store under its write lock against every resource as
 * it would be afterwards: each resource of the namespaces touched against its kind's schema (as
 * the YAML loader does), then every Gateway of those namespaces compiled with the gateway's own
 * compiler — without reading the files the config names, which live on the gateway hosts.
 * A namespace without a Gateway has nothing to compile its rules against: schemas only.
 */
export function validateNamespaces(
  after: readonly StoredResource[],
  namespaces: ReadonlySet<string>,
): ResourceProblem[] {
  const problems: ResourceProblem[] = [];
  const byNamespace = new Map<string, LoadedResource[]>();
  for (const r of after) {
    const { namespace, name } = r.metadata;
    if (!namespaces.has(namespace)) continue;
    const checked = checkResource(schemaView(r));
    if (!checked.ok) {
      for (const p of checked.problems)
        problems.push({ kind: r.kind, namespace, name, path: formatFieldPath(p.path), message: p.message });
      continue;
    }
    const list = byNamespace.get(namespace) ?? [];
    byNamespace.set(namespace, list);
    list.push({ ...checked.resource, source: storedSource(r.kind, namespace, name) });
  }
  if (problems.length > 0) return problems;
  const seen = new Set<string>();
  for (const resources of byNamespace.values()) {
    for (const gateway of resources.filter((r) => r.kind === 'Gateway')) {
      const result = compilePlan(resources, { gatewayName: gateway.metadata.name, readFiles: false });
      if (result.ok) continue;
      for (const error of result.errors) {
        const problem = problemOf(error);
        const id = JSON.stringify(problem);
        if (seen.has(id)) continue;
        seen.add(id);
        problems.push(problem);
      }
    }
  }
  return problems;
}

/** Store-facing form of a problem (WriteContext.validate answers ConfigErrors). */
export function asConfigError(p: ResourceProblem): ConfigError {
  return { file: `${p.kind} ${p.namespace}/${p.name}`, line: 0, column: 0, path: p.path, message: p.message };
}
