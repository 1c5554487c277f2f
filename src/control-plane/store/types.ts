import type { ConfigError } from '../../config/errors.ts';
import type { Kind } from '../../config/schemas/index.ts';

/**
 * The control plane's store: resources of every kind, versioned, with the audit log of every
 * change, plus small records for the control plane's own state (gateways, bootstrap tokens, CA,
 * signing keys). One interface, one conformance suite (conformance.ts), two implementations:
 * node:sqlite (embedded) and PostgreSQL (several control planes on one database).
 */

export interface ResourceKey {
  kind: Kind;
  namespace: string;
  name: string;
}

export interface StoredMetadata {
  name: string;
  namespace: string;
  labels?: Record<string, string>;
  /** The store revision of the resource's last change, as a decimal string (optimistic concurrency). */
  resourceVersion: string;
  /** Stable across updates; new when a deleted resource is created again. */
  uid: string;
  /** ISO 8601, when first created. */
  creationTimestamp: string;
}

export interface StoredResource {
  apiVersion: string;
  kind: Kind;
  metadata: StoredMetadata;
  spec: Record<string, unknown>;
}

/** A resource as a client sends it: `resourceVersion`, when present, must be the current one. */
export interface ResourceInput {
  apiVersion: string;
  kind: Kind;
  metadata: { name: string; namespace: string; labels?: Record<string, string>; resourceVersion?: string };
  spec: Record<string, unknown>;
}

export type WriteOp =
  /** Create or update. With `metadata.resourceVersion`: update only if it is still the current one. */
  | { op: 'put'; resource: ResourceInput }
  /** Create only: refused with `already_exists` when the resource exists. */
  | { op: 'create'; resource: ResourceInput }
  /** Delete; with `resourceVersion`: only if it is still the current one. */
  | { op: 'delete'; key: ResourceKey; resourceVersion?: string };

/** One committed change: the audit log is the list of these. */
export interface Change {
  /** Store-wide, strictly increasing; the new resourceVersion of the resource. */
  revision: number;
  /** ISO 8601. */
  at: string;
  /** Who made it (operator name, `system:...`). */
  actor: string;
  action: 'create' | 'update' | 'delete';
  key: ResourceKey;
  before: StoredResource | null;
  after: StoredResource | null;
}

export type WriteRefusal =
  | { reason: 'conflict'; key: ResourceKey; message: string }
  | { reason: 'not_found'; key: ResourceKey; message: string }
  | { reason: 'already_exists'; key: ResourceKey; message: string }
  | { reason: 'invalid'; errors: ConfigError[]; message: string };

export type WriteResult =
  /** `changes` is empty when every op left its resource as it was (a put with the same labels and spec). */
  { ok: true; revision: number; changes: Change[] } | ({ ok: false } & WriteRefusal);

export interface WriteContext {
  actor: string;
  /**
   * Called under the store's write lock with every resource (all namespaces) as it would be after
   * the ops; returning errors refuses the whole write and changes nothing.
   */
  validate?: (after: readonly StoredResource[]) => ConfigError[] | Promise<ConfigError[]>;
  /** Run the checks and report the changes that would be made, commit nothing. */
  dryRun?: boolean;
}

export interface ListQuery {
  kind?: Kind;
  namespace?: string;
  /** Every label must be present with this value. */
  labels?: Record<string, string>;
}

export interface ResourceStore {
  readonly backend: 'sqlite' | 'postgres';
  get(key: ResourceKey): Promise<StoredResource | null>;
  /** Sorted by kind, namespace, name; `revision` is the store revision the list was read at. */
  list(query?: ListQuery): Promise<{ items: StoredResource[]; revision: number }>;
  /** All ops commit together or none do. */
  write(ops: readonly WriteOp[], context: WriteContext): Promise<WriteResult>;
  /** The audit log, oldest first: changes with revision > `after`, optionally of one resource or kind. */
  changes(query?: { after?: number; key?: Partial<ResourceKey>; limit?: number }): Promise<Change[]>;
  /** The newest revision (0 for an empty store). */
  revision(): Promise<number>;
  /**
   * Called with the new revision after every committed write — made by this process or by another
   * control plane on the same database. Returns the unsubscribe function.
   */
  onChange(listener: (revision: number) => void): () => void;

  /** Small JSON records of the control plane's own state, by collection and id. */
  recordGet<T>(collection: string, id: string): Promise<T | null>;
  recordList<T>(collection: string): Promise<Array<{ id: string; value: T }>>;
  recordPut<T>(collection: string, id: string, value: T): Promise<void>;
  recordDelete(collection: string, id: string): Promise<boolean>;
  /**
   * Atomic read-modify-write of one record (under the same lock as writes): `update` gets the
   * current value (null when absent) and returns the new one, or null to delete it, or `undefined`
   * to leave it as it is. Resolves to the stored value afterwards.
   */
  recordUpdate<T>(
    collection: string,
    id: string,
    update: (current: T | null) => T | null | undefined,
  ): Promise<T | null>;
  close(): Promise<void>;
}
