import { randomUUID } from 'node:crypto';
import type { ConfigError } from '../../config/errors.ts';
import { isKind } from '../../config/schemas/index.ts';
import { canonicalJson, jsonCopy } from './canonical-json.ts';
import { describeKey, keyId, sortResources } from './resource-key.ts';
import { invalidMessage, runValidate } from './validate-call.ts';
import type {
  Change,
  ResourceInput,
  ResourceKey,
  StoredResource,
  WriteContext,
  WriteOp,
  WriteRefusal,
  WriteResult,
} from './types.ts';

/**
 * The write semantics both backends share, as a pure function: the backend loads the current
 * resources under its write lock, this decides what changes, the backend commits it. Keeping it in
 * one place is what makes SQLite and PostgreSQL behave identically.
 */
export interface WritePlanInput {
  ops: readonly WriteOp[];
  /** The current version of (at least) every resource the ops name, by `keyId`. */
  current: ReadonlyMap<string, StoredResource>;
  /** The store revision the current state was read at. */
  revision: number;
  actor: string;
  now: string;
  newUid: () => string;
}

export type WritePlan =
  | {
      ok: true;
      /** One change per op that changed something, each with its own revision, in op order. */
      changes: Change[];
      /** The store revision after the write (`revision` unchanged when nothing changed). */
      revision: number;
      /** Final state of every resource touched: null = deleted. */
      touched: Map<string, StoredResource | null>;
    }
  | ({ ok: false } & WriteRefusal);

const maxNameLength = 253;

export function planWrite(input: WritePlanInput): WritePlan {
  if (typeof input.actor !== 'string' || input.actor === '') {
    throw new TypeError('store write: context.actor must name who makes the change');
  }
  const shapeErrors = checkOps(input.ops);
  if (shapeErrors.length > 0) {
    return { ok: false, reason: 'invalid', errors: shapeErrors, message: invalidMessage(shapeErrors) };
  }
  const state = new Map<string, StoredResource | null>();
  const lookup = (key: ResourceKey) => {
    const id = keyId(key);
    return state.has(id) ? state.get(id)! : (input.current.get(id) ?? null);
  };
  let revision = input.revision;
  const changes: Change[] = [];
  for (const op of input.ops) {
    if (op.op === 'delete') {
      const key = { kind: op.key.kind, namespace: op.key.namespace, name: op.key.name };
      const existing = lookup(key);
      if (!existing)
        return { ok: false, reason: 'not_found', key, message: `${describeKey(key)} does not exist` };
      const stale = staleVersion(existing, op.resourceVersion);
      if (stale) return { ok: false, reason: 'conflict', key, message: stale };
      revision++;
      state.set(keyId(key), null);
      changes.push({
        revision,
        at: input.now,
        actor: input.actor,
        action: 'delete',
        key,
        before: existing,
        after: null,
      });
      continue;
    }
    const resource = op.resource;
    const key: ResourceKey = {
      kind: resource.kind,
      namespace: resource.metadata.namespace,
      name: resource.metadata.name,
    };
    const existing = lookup(key);
    if (op.op === 'create' && existing) {
      return { ok: false, reason: 'already_exists', key, message: `${describeKey(key)} already exists` };
    }
    const wantedVersion = op.op === 'put' ? resource.metadata.resourceVersion : undefined;
    if (wantedVersion !== undefined && !existing) {
      return {
        ok: false,
        reason: 'not_found',
        key,
        message: `${describeKey(key)} does not exist (resourceVersion ${wantedVersion} was given: it was deleted)`,
      };
    }
    if (existing) {
      const stale = staleVersion(existing, wantedVersion);
      if (stale) return { ok: false, reason: 'conflict', key, message: stale };
      if (sameContent(existing, resource)) continue;
    }
    revision++;
    const labels = resource.metadata.labels;
    const after: StoredResource = {
      apiVersion: resource.apiVersion,
      kind: resource.kind,
      metadata: {
        name: key.name,
        namespace: key.namespace,
        ...(labels && Object.keys(labels).length > 0 ? { labels: { ...labels } } : {}),
        resourceVersion: String(revision),
        uid: existing?.metadata.uid ?? input.newUid(),
        creationTimestamp: existing?.metadata.creationTimestamp ?? input.now,
      },
      spec: jsonCopy(resource.spec),
    };
    state.set(keyId(key), after);
    changes.push({
      revision,
      at: input.now,
      actor: input.actor,
      action: existing ? 'update' : 'create',
      key,
      before: existing,
      after,
    });
  }
  return { ok: true, changes, revision, touched: state };
}

/**
 * The keys a write names: what a backend loads when it does not load everything. Malformed ops
 * are left out here; planWrite refuses them with a clear message.
 */
export function opKeys(ops: readonly WriteOp[]): ResourceKey[] {
  if (!Array.isArray(ops)) return [];
  const keys: ResourceKey[] = [];
  for (const op of ops as unknown[]) {
    if (!isObject(op)) continue;
    const key =
      op.op === 'delete'
        ? op.key
        : isObject(op.resource)
          ? { ...op.resource, ...asObject(op.resource.metadata) }
          : null;
    if (
      isObject(key) &&
      typeof key.kind === 'string' &&
      typeof key.namespace === 'string' &&
      typeof key.name === 'string'
    ) {
      keys.push({ kind: key.kind as ResourceKey['kind'], namespace: key.namespace, name: key.name });
    }
  }
  return keys;
}

/** The full set after the write: `all` (every current resource) with the touched ones replaced. */
export function stateAfter(
  all: ReadonlyMap<string, StoredResource>,
  touched: ReadonlyMap<string, StoredResource | null>,
): StoredResource[] {
  const merged = new Map(all);
  for (const [id, resource] of touched) {
    if (resource) merged.set(id, resource);
    else merged.delete(id);
  }
  return [...merged.values()];
}

function staleVersion(existing: StoredResource, wanted: string | undefined): string | null {
  if (wanted === undefined || wanted === existing.metadata.resourceVersion) return null;
  const key = { kind: existing.kind, namespace: existing.metadata.namespace, name: existing.metadata.name };
  return `${describeKey(key)} has changed: resourceVersion ${wanted} was given, the current one is ${existing.metadata.resourceVersion}`;
}

function sameContent(existing: StoredResource, input: ResourceInput): boolean {
  return (
    existing.apiVersion === input.apiVersion &&
    canonicalJson(existing.metadata.labels ?? {}) === canonicalJson(input.metadata.labels ?? {}) &&
    canonicalJson(existing.spec) === canonicalJson(input.spec)
  );
}

// The store is reached from HTTP handlers: it checks the shape of what it is given itself rather
// than trusting the types, so a malformed op is a clear refusal and never a half-stored resource.
function checkOps(ops: readonly WriteOp[]): ConfigError[] {
  const errors: ConfigError[] = [];
  if (!Array.isArray(ops)) return [storeError('write', '', 'ops must be an array')];
  for (const [i, op] of ops.entries()) {
    const where = `ops[${i}]`;
    const fail = (path: string, message: string) => errors.push(storeError(where, path, message));
    if (!isObject(op) || (op.op !== 'put' && op.op !== 'create' && op.op !== 'delete')) {
      fail('op', 'op must be put, create or delete');
      continue;
    }
    if (op.op === 'delete') {
      if (!isObject(op.key)) {
        fail('key', 'key must be an object');
        continue;
      }
      checkKey(op.key, fail, 'key');
      if (op.resourceVersion !== undefined && typeof op.resourceVersion !== 'string') {
        fail('resourceVersion', 'resourceVersion must be a string');
      }
      continue;
    }
    const r = op.resource as unknown;
    if (!isObject(r)) {
      fail('resource', 'resource must be an object');
      continue;
    }
    if (typeof r.apiVersion !== 'string' || r.apiVersion === '')
      fail('apiVersion', 'apiVersion must be a non-empty string');
    if (!isObject(r.metadata)) {
      fail('metadata', 'metadata must be an object');
      continue;
    }
    if (!isObject(r.spec)) fail('spec', 'spec must be an object');
    checkKey({ kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name }, fail, 'metadata');
    const labels = r.metadata.labels;
    if (labels !== undefined) {
      if (!isObject(labels) || Object.values(labels).some((v) => typeof v !== 'string')) {
        fail('metadata.labels', 'labels must map names to strings');
      }
    }
    const rv = r.metadata.resourceVersion;
    if (rv !== undefined && typeof rv !== 'string')
      fail('metadata.resourceVersion', 'resourceVersion must be a string');
  }
  return errors;
}

function checkKey(
  key: Record<string, unknown>,
  fail: (path: string, message: string) => void,
  prefix: string,
): void {
  if (!isKind(key.kind))
    fail(prefix === 'key' ? 'key.kind' : 'kind', `unknown kind ${JSON.stringify(key.kind)}`);
  for (const field of ['namespace', 'name'] as const) {
    const value = key[field];
    if (
      typeof value !== 'string' ||
      value === '' ||
      value.length > maxNameLength ||
      value.includes('\u0000')
    ) {
      fail(
        `${prefix}.${field}`,
        `${field} must be a non-empty string of at most ${maxNameLength} characters`,
      );
    }
  }
}

function asObject(value: unknown): Record<string, unknown> {
  return isObject(value) ? value : {};
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function storeError(file: string, path: string, message: string): ConfigError {
  return { file, line: 0, column: 0, path, message };
}

/**
 * Plans a write against the state read under the write lock and runs the caller's validate():
 * `commit` says whether the backend must persist `value.changes` (false for refusals, dry runs and
 * writes that change nothing). Both backends call this, so they decide identically.
 */
export async function decideWrite(
  ops: readonly WriteOp[],
  context: WriteContext,
  current: ReadonlyMap<string, StoredResource>,
  revision: number,
): Promise<{ commit: false; value: WriteResult } | { commit: true; value: WriteResult & { ok: true } }> {
  const plan = planWrite({
    ops,
    current,
    revision,
    actor: context.actor,
    now: new Date().toISOString(),
    newUid: randomUUID,
  });
  if (!plan.ok) {
    const { ok: _ok, ...refusal } = plan;
    return { commit: false, value: { ok: false, ...refusal } };
  }
  if (context.validate) {
    const errors = await runValidate(context.validate, sortResources(stateAfter(current, plan.touched)));
    if (errors.length > 0)
      return {
        commit: false,
        value: { ok: false, reason: 'invalid', errors, message: invalidMessage(errors) },
      };
  }
  const value = { ok: true as const, revision: plan.revision, changes: plan.changes };
  if (context.dryRun || plan.changes.length === 0) return { commit: false, value };
  return { commit: true, value };
}
