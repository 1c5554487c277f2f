import type { Kind } from '../../config/schemas/index.ts';
import { type ControlPlaneContext, HttpProblem, type OperatorIdentity, type Route } from '../routes.ts';
import type { Change, ResourceKey, StoredResource } from '../store/types.ts';
import { apiKinds, kindNamed, pluralOf } from './kinds.ts';
import { operatorMay, requireRole } from './roles.ts';
import { commitWrite, invalid, toInput } from './writes.ts';

/** `app=shop,tier=web` (also `==`) → labels every resource must carry. */
export function parseLabelSelector(text: string | null): Record<string, string> | undefined {
  if (text === null || text.trim() === '') return undefined;
  const labels: Record<string, string> = {};
  for (const part of text.split(',')) {
    const m = /^\s*([A-Za-z0-9][-A-Za-z0-9_./]*)\s*==?\s*([-A-Za-z0-9_.]*)\s*$/.exec(part);
    if (!m) throw new HttpProblem('bad_request', `labelSelector: ${JSON.stringify(part)} is not name=value`);
    labels[m[1]!] = m[2]!;
  }
  return labels;
}

export function dryRunOf(query: URLSearchParams): boolean {
  const value = query.get('dryRun');
  if (value === null || value === 'false') return false;
  if (value === 'true' || value === '' || value === 'All') return true;
  throw new HttpProblem('bad_request', 'dryRun must be true or false');
}

function operatorOf(operator: OperatorIdentity | undefined): OperatorIdentity {
  // The server authenticates operator routes before calling them; a missing identity is a bug.
  if (!operator) throw new HttpProblem('unauthenticated', 'an operator credential is required');
  return operator;
}

function changeFor(changes: readonly Change[], key: ResourceKey): Change | undefined {
  return changes.find(
    (c) => c.key.kind === key.kind && c.key.namespace === key.namespace && c.key.name === key.name,
  );
}

function listAnswer(items: StoredResource[], revision: number) {
  return { apiVersion: 'gatehouse.dev/v1', kind: 'List', revision, items };
}

/** Create, read, update, delete and list of every kind, by lowercase plural. */
export function resourceRoutes(ctx: ControlPlaneContext): Route[] {
  const { store } = ctx;
  const routes: Route[] = [
    {
      method: 'GET',
      path: '/api/v1/resources',
      auth: { kind: 'operator', role: 'viewer', anyNamespace: true },
      summary: 'Resources of every (or one) kind in every namespace the caller may view.',
      docs: { query: ['kind', 'namespace', 'labelSelector'], responseSchema: 'ResourceList' },
      async handle(call) {
        const operator = operatorOf(call.operator);
        requireRole(operator, null, 'viewer');
        const kindParam = call.query.get('kind');
        const kind = kindParam === null ? undefined : kindNamed(kindParam);
        if (kind === null) throw new HttpProblem('bad_request', `unknown kind ${kindParam}`);
        const namespace = call.query.get('namespace') ?? undefined;
        if (namespace !== undefined) requireRole(operator, namespace, 'viewer');
        const labels = parseLabelSelector(call.query.get('labelSelector'));
        const { items, revision } = await store.list({
          ...(kind ? { kind } : {}),
          ...(namespace ? { namespace } : {}),
          ...(labels ? { labels } : {}),
        });
        const visible = items.filter(
          (r) => r.kind !== 'ControlPlane' && operatorMay(operator, r.metadata.namespace, 'viewer'),
        );
        call.json(listAnswer(visible, revision));
      },
    },
  ];
  for (const kind of apiKinds) routes.push(...kindRoutes(ctx, kind));
  return routes;
}

function kindRoutes(ctx: ControlPlaneContext, kind: Kind): Route[] {
  const { store } = ctx;
  const plural = pluralOf(kind);
  const base = `/api/v1/namespaces/{namespace}/${plural}`;
  const keyOf = (params: Readonly<Record<string, string>>): ResourceKey => ({
    kind,
    namespace: params.namespace!,
    name: params.name!,
  });
  const routes: Route[] = [];
  // GET /api/v1/gateways lists registered gateways (distribution module): Gateway resources of
  // every namespace are listed by GET /api/v1/resources?kind=Gateway instead.
  if (kind !== 'Gateway')
    routes.push({
      method: 'GET',
      path: `/api/v1/${plural}`,
      auth: { kind: 'operator', role: 'viewer', anyNamespace: true },
      summary: `${kind} resources of every namespace the caller may view.`,
      docs: { query: ['labelSelector'], responseSchema: 'ResourceList' },
      async handle(call) {
        const operator = operatorOf(call.operator);
        requireRole(operator, null, 'viewer');
        const labels = parseLabelSelector(call.query.get('labelSelector'));
        const { items, revision } = await store.list({ kind, ...(labels ? { labels } : {}) });
        call.json(
          listAnswer(
            items.filter((r) => operatorMay(operator, r.metadata.namespace, 'viewer')),
            revision,
          ),
        );
      },
    });
  routes.push(
    {
      method: 'GET',
      path: base,
      auth: { kind: 'operator', role: 'viewer', namespaceParam: 'namespace' },
      summary: `${kind} resources of one namespace.`,
      docs: { query: ['labelSelector'], responseSchema: 'ResourceList' },
      async handle(call) {
        const labels = parseLabelSelector(call.query.get('labelSelector'));
        const { items, revision } = await store.list({
          kind,
          namespace: call.params.namespace!,
          ...(labels ? { labels } : {}),
        });
        call.json(listAnswer(items, revision));
      },
    },
    {
      method: 'POST',
      path: base,
      auth: { kind: 'operator', role: 'editor', namespaceParam: 'namespace' },
      summary: `Creates a ${kind} (409 already_exists when it exists).`,
      docs: { query: ['dryRun'], requestSchema: kind, responseSchema: 'StoredResource' },
      async handle(call) {
        const operator = operatorOf(call.operator);
        const prepared = toInput(await call.body(), { kind, namespace: call.params.namespace! });
        if ('problems' in prepared) throw invalid(prepared.problems);
        const dryRun = dryRunOf(call.query);
        const { changes } = await commitWrite(store, [{ op: 'create', resource: prepared.input }], {
          actor: operator.name,
          dryRun,
        });
        call.json(changes[0]?.after ?? null, 201);
      },
    },
    {
      method: 'GET',
      path: `${base}/{name}`,
      auth: { kind: 'operator', role: 'viewer', namespaceParam: 'namespace' },
      summary: `One ${kind}.`,
      docs: { responseSchema: 'StoredResource' },
      async handle(call) {
        const key = keyOf(call.params);
        const found = await store.get(key);
        if (!found)
          throw new HttpProblem('resource_not_found', `${kind} ${key.namespace}/${key.name} does not exist`, {
            ...key,
          });
        call.json(found);
      },
    },
    {
      method: 'PUT',
      path: `${base}/{name}`,
      auth: { kind: 'operator', role: 'editor', namespaceParam: 'namespace' },
      summary: `Creates or replaces a ${kind}; with metadata.resourceVersion only if it is still current (else 409 conflict).`,
      docs: { query: ['dryRun'], requestSchema: kind, responseSchema: 'StoredResource' },
      async handle(call) {
        const operator = operatorOf(call.operator);
        const key = keyOf(call.params);
        const prepared = toInput(await call.body(), { kind, namespace: key.namespace, name: key.name });
        if ('problems' in prepared) throw invalid(prepared.problems);
        const { changes } = await commitWrite(store, [{ op: 'put', resource: prepared.input }], {
          actor: operator.name,
          dryRun: dryRunOf(call.query),
        });
        const change = changeFor(changes, key);
        call.json(change ? change.after : await store.get(key), change?.action === 'create' ? 201 : 200);
      },
    },
    {
      method: 'DELETE',
      path: `${base}/{name}`,
      auth: { kind: 'operator', role: 'editor', namespaceParam: 'namespace' },
      summary: `Deletes a ${kind}; with ?resourceVersion= only if it is still current.`,
      docs: { query: ['resourceVersion', 'dryRun'], responseSchema: 'StoredResource' },
      async handle(call) {
        const operator = operatorOf(call.operator);
        const key = keyOf(call.params);
        const resourceVersion = call.query.get('resourceVersion') ?? undefined;
        const { changes, revision } = await commitWrite(
          store,
          [{ op: 'delete', key, ...(resourceVersion ? { resourceVersion } : {}) }],
          { actor: operator.name, dryRun: dryRunOf(call.query) },
        );
        call.json({ deleted: changeFor(changes, key)?.before ?? null, revision });
      },
    },
  );
  return routes;
}
