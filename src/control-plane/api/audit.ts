import { type ControlPlaneContext, HttpProblem, type OperatorIdentity, type Route } from '../routes.ts';
import type { ResourceKey } from '../store/types.ts';
import { fieldDiff } from './diff.ts';
import { kindNamed } from './kinds.ts';
import { operatorMay, requireRole } from './roles.ts';

const defaultLimit = 100;
const maxLimit = 1000;

/**
 * GET /api/v1/audit: the audit log (who, when, what, before/after and the field diff), oldest
 * first, for admins of the namespaces concerned. `next` is the cursor for the following page.
 */
export function auditRoute(ctx: ControlPlaneContext): Route {
  return {
    method: 'GET',
    path: '/api/v1/audit',
    auth: { kind: 'operator', role: 'admin', anyNamespace: true },
    summary: 'The audit log after ?after= (revision), optionally of one kind, namespace or name.',
    docs: { query: ['after', 'kind', 'namespace', 'name', 'limit'], responseSchema: 'AuditPage' },
    async handle(call) {
      const operator = call.operator as OperatorIdentity;
      requireRole(operator, call.query.get('namespace'), 'admin');
      const number = (name: string, fallback: number) => {
        const v = call.query.get(name);
        if (v === null) return fallback;
        if (!/^(0|[1-9][0-9]*)$/.test(v))
          throw new HttpProblem('bad_request', `${name} must be a whole number`);
        return Number(v);
      };
      const after = number('after', 0);
      const limit = Math.min(Math.max(number('limit', defaultLimit), 1), maxLimit);
      const key: Partial<ResourceKey> = {};
      const kindParam = call.query.get('kind');
      if (kindParam !== null) {
        const kind = kindNamed(kindParam);
        if (!kind) throw new HttpProblem('bad_request', `unknown kind ${kindParam}`);
        key.kind = kind;
      }
      const namespace = call.query.get('namespace');
      if (namespace !== null) key.namespace = namespace;
      const name = call.query.get('name');
      if (name !== null) key.name = name;
      const page = await ctx.store.changes({ after, key, limit });
      const items = page
        .filter((c) => operatorMay(operator, c.key.namespace, 'admin'))
        .map((c) => ({ ...c, diff: fieldDiff(c.before, c.after) }));
      const last = page.at(-1)?.revision ?? after;
      call.json({ items, next: page.length === limit ? last : null, revision: await ctx.store.revision() });
    },
  };
}
