import { formatFieldPath } from '../../config/errors.ts';
import { checkResource } from '../../config/load.ts';
import { HttpProblem } from '../routes.ts';
import type { Change, ResourceInput, ResourceKey, ResourceStore, WriteOp } from '../store/types.ts';
import { asConfigError, type ResourceProblem, validateNamespaces } from '../validate.ts';

/** What the path says the body must be (namespace, and for PUT kind and name). */
export interface Expected {
  kind?: string;
  namespace?: string;
  name?: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A resource from a request body, checked against its kind's schema with the loader's own checks
 * and defaults; `metadata.resourceVersion` is kept for the optimistic-concurrency check, the other
 * store metadata (uid, creationTimestamp) is ignored. Problems are returned, not thrown, so that a
 * batch reports every one.
 */
export function toInput(
  body: unknown,
  expected: Expected,
): { input: ResourceInput } | { problems: ResourceProblem[] } {
  const metadata = isRecord(body) && isRecord(body.metadata) ? body.metadata : {};
  const who = {
    kind: isRecord(body) && typeof body.kind === 'string' ? body.kind : (expected.kind ?? ''),
    namespace:
      typeof metadata.namespace === 'string' ? metadata.namespace : (expected.namespace ?? 'default'),
    name: typeof metadata.name === 'string' ? metadata.name : (expected.name ?? ''),
  };
  const fail = (path: string, message: string) => ({ problems: [{ ...who, path, message }] });
  if (!isRecord(body))
    return fail('', 'a resource must be an object with apiVersion, kind, metadata and spec');
  if (expected.kind !== undefined && body.kind !== expected.kind)
    return fail('kind', `must be ${expected.kind} on this path`);
  if (
    expected.namespace !== undefined &&
    metadata.namespace !== undefined &&
    metadata.namespace !== expected.namespace
  )
    return fail(
      'metadata.namespace',
      `must be ${expected.namespace} (the namespace of the path) or left out`,
    );
  if (expected.name !== undefined && metadata.name !== expected.name)
    return fail('metadata.name', `must be ${expected.name} (the name of the path)`);
  const resourceVersion = metadata.resourceVersion;
  if (
    resourceVersion !== undefined &&
    (typeof resourceVersion !== 'string' || !/^[1-9][0-9]*$/.test(resourceVersion))
  )
    return fail(
      'metadata.resourceVersion',
      'must be a resourceVersion the control plane gave (a decimal string)',
    );
  if (body.kind === 'ControlPlane')
    return fail('kind', 'ControlPlane configures the control plane process and is not stored');
  // Store metadata is the control plane's to set; `status` is not content. Anything else unknown
  // is refused by the schema exactly as the YAML loader refuses it.
  const { resourceVersion: _rv, uid: _uid, creationTimestamp: _ct, ...ownMetadata } = metadata;
  const { status: _status, ...rest } = body;
  const view = { ...rest, metadata: { ...ownMetadata, namespace: who.namespace } };
  const checked = checkResource(view);
  if (!checked.ok)
    return {
      problems: checked.problems.map((p) => ({ ...who, path: formatFieldPath(p.path), message: p.message })),
    };
  const r = checked.resource;
  return {
    input: {
      apiVersion: r.apiVersion,
      kind: r.kind,
      metadata: {
        name: r.metadata.name,
        namespace: r.metadata.namespace,
        ...(r.metadata.labels !== undefined ? { labels: r.metadata.labels } : {}),
        ...(typeof resourceVersion === 'string' ? { resourceVersion } : {}),
      },
      spec: r.spec,
    },
  };
}

export function invalid(problems: readonly ResourceProblem[]): HttpProblem {
  const first = problems[0];
  const where = first
    ? `${first.kind} ${first.namespace}/${first.name}${first.path ? ` ${first.path}` : ''}: ${first.message}`
    : '';
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
  return new HttpProblem('invalid_config', `${where}${more}`, { errors: problems });
}

function namespacesOf(ops: readonly WriteOp[]): Set<string> {
  return new Set(ops.map((op) => (op.op === 'delete' ? op.key.namespace : op.resource.metadata.namespace)));
}

/**
 * Commits ops (or, with dryRun, checks them) with the validation run under the store's write
 * lock, and turns every refusal into the problem the API answers.
 */
export async function commitWrite(
  store: ResourceStore,
  ops: readonly WriteOp[],
  options: { actor: string; dryRun?: boolean },
): Promise<{ revision: number; changes: Change[] }> {
  let problems: ResourceProblem[] = [];
  const namespaces = namespacesOf(ops);
  const result = await store.write(ops, {
    actor: options.actor,
    dryRun: options.dryRun ?? false,
    validate: (after) => {
      try {
        problems = validateNamespaces(after, namespaces);
      } catch (err) {
        problems = [
          {
            kind: '',
            namespace: '',
            name: '',
            path: '',
            message: `could not be checked: ${(err as Error).message}`,
          },
        ];
      }
      return problems.map(asConfigError);
    },
  });
  if (result.ok) return { revision: result.revision, changes: result.changes };
  if (result.reason === 'invalid')
    throw invalid(
      problems.length > 0
        ? problems
        : result.errors.map((e) => ({ kind: '', namespace: '', name: '', path: e.path, message: e.message })),
    );
  if (result.reason === 'conflict') {
    const sent = versionSent(ops, result.key);
    const current = await store.get(result.key);
    throw new HttpProblem('conflict', result.message, {
      ...result.key,
      resourceVersion: sent ?? null,
      currentResourceVersion: current?.metadata.resourceVersion ?? null,
    });
  }
  if (result.reason === 'not_found')
    throw new HttpProblem('resource_not_found', result.message, { ...result.key });
  throw new HttpProblem('already_exists', result.message, { ...result.key });
}

function versionSent(ops: readonly WriteOp[], key: ResourceKey): string | undefined {
  for (const op of ops) {
    const k = op.op === 'delete' ? op.key : op.resource.metadata;
    if (op.op !== 'delete' && op.resource.kind !== key.kind) continue;
    if (op.op === 'delete' && op.key.kind !== key.kind) continue;
    if (k.namespace === key.namespace && k.name === key.name)
      return op.op === 'delete' ? op.resourceVersion : op.resource.metadata.resourceVersion;
  }
  return undefined;
}
