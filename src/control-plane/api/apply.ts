import { type ControlPlaneContext, HttpProblem, type Route } from '../routes.ts';
import type { ResourceInput, WriteOp } from '../store/types.ts';
import type { ResourceProblem } from '../validate.ts';
import { diffLines, type FieldChange, fieldDiff } from './diff.ts';
import { dryRunOf } from './resources.ts';
import { requireRole } from './roles.ts';
import { commitWrite, invalid, toInput } from './writes.ts';

/** Most resources in one apply: a bound on the work one request can ask for. */
export const maxApplyResources = 500;

export interface AppliedResource {
  kind: string;
  namespace: string;
  name: string;
  action: 'created' | 'updated' | 'unchanged';
  /** The resourceVersion after the apply (the current one when unchanged; absent in a dry run that creates). */
  resourceVersion: string | null;
  diff: FieldChange[];
  /** The same diff as unified-diff-like lines. */
  diffText: string[];
}

/**
 * POST /api/v1/apply: create-or-update every resource of the batch in one write — all of them or
 * none, validated together (so a rule and the upstream it names can arrive in one apply).
 * `?dryRun=true` checks and reports without committing. `?namespace=` fills a missing namespace.
 */
export function applyRoute(ctx: ControlPlaneContext): Route {
  return {
    method: 'POST',
    path: '/api/v1/apply',
    auth: { kind: 'operator', role: 'editor', anyNamespace: true },
    summary:
      'Creates or updates a batch of resources, all or nothing; answers each one’s action (created, updated, unchanged) and field diff.',
    docs: { query: ['dryRun', 'namespace'], requestSchema: 'ApplyRequest', responseSchema: 'ApplyResult' },
    async handle(call) {
      const operator = call.operator;
      if (!operator) throw new HttpProblem('unauthenticated', 'an operator credential is required');
      const dryRun = dryRunOf(call.query);
      const body = await call.body();
      const list = Array.isArray(body)
        ? body
        : body !== null &&
            typeof body === 'object' &&
            Array.isArray((body as { resources?: unknown }).resources)
          ? (body as { resources: unknown[] }).resources
          : null;
      if (list === null) throw new HttpProblem('bad_request', 'send { "resources": [ ... ] }');
      if (list.length === 0) throw new HttpProblem('bad_request', 'no resources to apply');
      if (list.length > maxApplyResources)
        throw new HttpProblem('payload_too_large', `at most ${maxApplyResources} resources per apply`);
      const defaultNamespace = call.query.get('namespace') ?? undefined;
      const problems: ResourceProblem[] = [];
      const inputs: ResourceInput[] = [];
      const seen = new Set<string>();
      for (const item of list) {
        const prepared = toInput(withNamespace(item, defaultNamespace), {});
        if ('problems' in prepared) {
          problems.push(...prepared.problems);
          continue;
        }
        const { kind, metadata } = prepared.input;
        const id = `${kind}/${metadata.namespace}/${metadata.name}`;
        if (seen.has(id)) {
          problems.push({
            kind,
            namespace: metadata.namespace,
            name: metadata.name,
            path: '',
            message: 'given twice in this apply',
          });
          continue;
        }
        seen.add(id);
        inputs.push(prepared.input);
      }
      if (problems.length > 0) throw invalid(problems);
      for (const input of inputs) requireRole(operator, input.metadata.namespace, 'editor');
      const ops: WriteOp[] = inputs.map((resource) => ({ op: 'put', resource }));
      const { revision, changes } = await commitWrite(ctx.store, ops, { actor: operator.name, dryRun });
      const results: AppliedResource[] = [];
      for (const input of inputs) {
        const { kind, metadata } = input;
        const change = changes.find(
          (c) =>
            c.key.kind === kind && c.key.namespace === metadata.namespace && c.key.name === metadata.name,
        );
        let resourceVersion: string | null = null;
        let diff: FieldChange[] = [];
        if (change) {
          diff = fieldDiff(change.before, change.after);
          resourceVersion = dryRun
            ? (change.before?.metadata.resourceVersion ?? null)
            : (change.after?.metadata.resourceVersion ?? null);
        } else {
          resourceVersion =
            (await ctx.store.get({ kind, namespace: metadata.namespace, name: metadata.name }))?.metadata
              .resourceVersion ?? null;
        }
        results.push({
          kind,
          namespace: metadata.namespace,
          name: metadata.name,
          action: !change ? 'unchanged' : change.action === 'create' ? 'created' : 'updated',
          resourceVersion,
          diff,
          diffText: diffLines(diff),
        });
      }
      call.json({ dryRun, revision, results });
    },
  };
}

function withNamespace(item: unknown, namespace: string | undefined): unknown {
  if (namespace === undefined || item === null || typeof item !== 'object' || Array.isArray(item))
    return item;
  const record = item as Record<string, unknown>;
  const metadata = record.metadata;
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) return item;
  if ((metadata as Record<string, unknown>).namespace !== undefined) return item;
  return { ...record, metadata: { ...metadata, namespace } };
}
