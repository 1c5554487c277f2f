import type { Kind } from '../../config/schemas/index.ts';
import type { Change, ResourceKey, StoredResource } from './types.ts';

/** A change as both backends keep it: key columns for queries, the resources as JSON text. */
export interface ChangeRow {
  revision: number | string;
  at: string;
  actor: string;
  action: string;
  kind: string;
  namespace: string;
  name: string;
  before_doc: string | null;
  after_doc: string | null;
}

export function changeFromRow(row: ChangeRow): Change {
  return {
    revision: Number(row.revision),
    at: row.at,
    actor: row.actor,
    action: row.action as Change['action'],
    key: { kind: row.kind as Kind, namespace: row.namespace, name: row.name },
    before: row.before_doc === null ? null : (JSON.parse(row.before_doc) as StoredResource),
    after: row.after_doc === null ? null : (JSON.parse(row.after_doc) as StoredResource),
  };
}

export function changeToRow(change: Change): ChangeRow {
  return {
    revision: change.revision,
    at: change.at,
    actor: change.actor,
    action: change.action,
    kind: change.key.kind,
    namespace: change.key.namespace,
    name: change.key.name,
    before_doc: change.before === null ? null : JSON.stringify(change.before),
    after_doc: change.after === null ? null : JSON.stringify(change.after),
  };
}

/** The optional filters of changes(), checked: a bad `after` or `limit` is a TypeError, not a full scan. */
export function changesFilter(query: { after?: number; key?: Partial<ResourceKey>; limit?: number } = {}): {
  after: number;
  key: Partial<ResourceKey>;
  limit: number | null;
} {
  const after = query.after ?? 0;
  if (!Number.isSafeInteger(after) || after < 0)
    throw new TypeError('changes(): after must be a non-negative integer');
  const limit = query.limit ?? null;
  if (limit !== null && (!Number.isSafeInteger(limit) || limit < 1)) {
    throw new TypeError('changes(): limit must be a positive integer');
  }
  return { after, key: query.key ?? {}, limit };
}
