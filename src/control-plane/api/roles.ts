import { HttpProblem, type OperatorIdentity, type Role } from '../routes.ts';

const rank: Readonly<Record<Role, number>> = { viewer: 1, editor: 2, admin: 3 };

/** viewer < editor < admin: a role includes everything the ones below it may do. */
export function roleIncludes(held: Role, needed: Role): boolean {
  return rank[held] >= rank[needed];
}

/** Whether the operator holds `role` (or more) in `namespace`, directly or through `*`. */
export function operatorMay(operator: OperatorIdentity, namespace: string, role: Role): boolean {
  return operator.roles.some(
    (r) => (r.namespace === '*' || r.namespace === namespace) && roleIncludes(r.role, role),
  );
}

/** Whether the operator holds `role` in at least one namespace. */
export function operatorMayAnywhere(operator: OperatorIdentity, role: Role): boolean {
  return operator.roles.some((r) => roleIncludes(r.role, role));
}

/** `shop:editor`, `*:admin` → a role binding; anything else → null (ignored, never widened). */
export function parseRoleBinding(value: unknown): { namespace: string; role: Role } | null {
  if (typeof value !== 'string') return null;
  const colon = value.lastIndexOf(':');
  if (colon <= 0) return null;
  const namespace = value.slice(0, colon);
  const role = value.slice(colon + 1);
  if (role !== 'viewer' && role !== 'editor' && role !== 'admin') return null;
  if (namespace !== '*' && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)) return null;
  return { namespace, role };
}

/** Refuses (403, naming the role and namespace needed) unless the operator holds `role` there; null = in some namespace. */
export function requireRole(operator: OperatorIdentity, namespace: string | null, role: Role): void {
  const ok =
    namespace === null ? operatorMayAnywhere(operator, role) : operatorMay(operator, namespace, role);
  if (ok) return;
  throw new HttpProblem(
    'forbidden',
    `${operator.name} needs role ${role} ${namespace === null ? 'in some namespace' : `in namespace ${namespace}`}`,
    { requiredRole: role, namespace },
  );
}
