import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ResourceStore } from '../store/types.ts';

/**
 * One-time bootstrap tokens: an admin creates one for a Gateway name, the operator hands it to the
 * gateway once (`gatehouse gateway --control-plane <url> --token <ghb_...>`), and registration
 * consumes a use. Only the SHA-256 of a token is stored; the token is shown once. The record id
 * is derived from the hash, so registration finds and consumes a token with one atomic
 * recordUpdate (no scan on an unauthenticated path).
 */
export const bootstrapTokensCollection = 'bootstrap-tokens';

const prefix = 'ghb_';
/** Kept this long after expiry or revocation for `list`, then dropped. */
const keepAfterEndMs = 24 * 3_600_000;

export interface BootstrapTokenRecord {
  id: string;
  /** Hex SHA-256 of the whole token. */
  sha256: string;
  gateway: string;
  namespace: string;
  labels: Record<string, string>;
  createdAt: string;
  createdBy: string;
  expiresAt: string;
  uses: number;
  used: number;
  revokedAt?: string;
  lastUsedAt?: string;
}

export type BootstrapTokenStatus = 'active' | 'used' | 'expired' | 'revoked';

/** What `GET /api/v1/bootstrap-tokens` shows: never the token or its hash. */
export interface BootstrapTokenView extends Omit<BootstrapTokenRecord, 'sha256'> {
  status: BootstrapTokenStatus;
}

export function statusOf(record: BootstrapTokenRecord, now: number): BootstrapTokenStatus {
  if (record.revokedAt !== undefined) return 'revoked';
  if (record.used >= record.uses) return 'used';
  if (Date.parse(record.expiresAt) <= now) return 'expired';
  return 'active';
}

export function viewOf(record: BootstrapTokenRecord, now: number): BootstrapTokenView {
  const { sha256: _hash, ...rest } = record;
  return { ...rest, status: statusOf(record, now) };
}

function sha256(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function idOf(hash: string): string {
  return `bt_${hash.slice(0, 20)}`;
}

export interface NewBootstrapToken {
  gateway: string;
  namespace: string;
  labels: Record<string, string>;
  ttlMs: number;
  uses: number;
  actor: string;
}

export async function createBootstrapToken(
  store: ResourceStore,
  now: number,
  input: NewBootstrapToken,
): Promise<{ token: string; record: BootstrapTokenRecord }> {
  const token = prefix + randomBytes(32).toString('base64url');
  const hash = sha256(token);
  const record: BootstrapTokenRecord = {
    id: idOf(hash),
    sha256: hash,
    gateway: input.gateway,
    namespace: input.namespace,
    labels: input.labels,
    createdAt: new Date(now).toISOString(),
    createdBy: input.actor,
    expiresAt: new Date(now + input.ttlMs).toISOString(),
    uses: input.uses,
    used: 0,
  };
  await store.recordPut(bootstrapTokensCollection, record.id, record);
  return { token, record };
}

/** Every token (newest first); ones that ended more than a day ago are deleted on the way. */
export async function listBootstrapTokens(store: ResourceStore, now: number): Promise<BootstrapTokenView[]> {
  const all = await store.recordList<BootstrapTokenRecord>(bootstrapTokensCollection);
  const views: BootstrapTokenView[] = [];
  for (const { id, value } of all) {
    const endedAt = value.revokedAt !== undefined ? Date.parse(value.revokedAt) : Date.parse(value.expiresAt);
    if (statusOf(value, now) !== 'active' && endedAt + keepAfterEndMs < now) {
      await store.recordDelete(bootstrapTokensCollection, id);
      continue;
    }
    views.push(viewOf(value, now));
  }
  return views.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

/** Marks the token revoked; null when there is no such token. */
export async function revokeBootstrapToken(
  store: ResourceStore,
  now: number,
  id: string,
): Promise<BootstrapTokenView | null> {
  const after = await store.recordUpdate<BootstrapTokenRecord>(bootstrapTokensCollection, id, (current) =>
    current === null || current.revokedAt !== undefined
      ? undefined
      : { ...current, revokedAt: new Date(now).toISOString() },
  );
  return after === null ? null : viewOf(after, now);
}

/**
 * Consumes one use of `token` atomically; the token's record (after the use) when it was active,
 * null when unknown, expired, revoked or used up. Two registrations racing for the last use: the
 * store serialises the updates, so exactly one sees `used < uses`.
 */
export async function consumeBootstrapToken(
  store: ResourceStore,
  now: number,
  token: string,
): Promise<BootstrapTokenRecord | null> {
  if (typeof token !== 'string' || !token.startsWith(prefix) || token.length > 100) return null;
  const hash = sha256(token);
  let consumed = false;
  const after = await store.recordUpdate<BootstrapTokenRecord>(
    bootstrapTokensCollection,
    idOf(hash),
    (current) => {
      consumed = false;
      if (current === null || !sameHash(current.sha256, hash) || statusOf(current, now) !== 'active')
        return undefined;
      consumed = true;
      return { ...current, used: current.used + 1, lastUsedAt: new Date(now).toISOString() };
    },
  );
  return consumed ? after : null;
}

function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}
