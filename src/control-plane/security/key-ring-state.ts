import type { JWK } from 'jose';

/**
 * The control plane's JWT signing keys as kept in the store (one record, shared by every control
 * plane on the database), and the pure rules of rotation with overlap:
 * - a new key is published `publishAheadMs` before it signs, so receivers that cached the JWKS
 *   have it before the first token signed with it reaches them;
 * - a key stops signing when the next one starts (`signsFrom`), and stays published until every
 *   token it signed has expired (`tokenLifetimeMs` + clock skew later), then it is removed.
 */

export interface StoredSigningKey {
  kid: string;
  /** Private JWK (ES256, P-256). Never leaves the control plane: only `publicJwk` is published. */
  privateJwk: JWK;
  publicJwk: JWK;
  createdAt: number;
  /** When this key starts signing (ms since the epoch). */
  signsFrom: number;
}

export interface StoredKeyRing {
  /** Oldest first, by `signsFrom`. */
  keys: StoredSigningKey[];
}

export interface RotationRules {
  rotationMs: number;
  publishAheadMs: number;
  tokenLifetimeMs: number;
  /** Extra time a retired key stays published for clocks that run behind. */
  clockSkewMs: number;
}

/** The key that signs at `now`: the newest whose `signsFrom` has come. */
export function signingKeyAt(ring: StoredKeyRing, now: number): StoredSigningKey | null {
  let current: StoredSigningKey | null = null;
  for (const key of ring.keys) if (key.signsFrom <= now) current = key;
  return current;
}

/** Keys whose tokens may still be alive, or that will sign soon: what the JWKS lists. */
export function publishedAt(ring: StoredKeyRing, now: number, rules: RotationRules): StoredSigningKey[] {
  return ring.keys.filter((_key, i) => {
    const next = ring.keys[i + 1];
    // Still signing, or retired less than a token lifetime (+ skew) ago.
    return (
      next === undefined ||
      next.signsFrom > now ||
      next.signsFrom + rules.tokenLifetimeMs + rules.clockSkewMs > now
    );
  });
}

/** Whether a new key must be added now: none yet, or the newest one is due to be followed. */
export function rotationDue(ring: StoredKeyRing | null, now: number, rules: RotationRules): boolean {
  const newest = ring?.keys.at(-1);
  if (!newest) return true;
  return now >= newest.signsFrom + rules.rotationMs - rules.publishAheadMs;
}

/**
 * The ring after `now`: the candidate added when a rotation is due, expired keys dropped;
 * undefined when nothing changes (so a recordUpdate leaves the record alone). The first key
 * signs at once: no receiver can have cached a key set without it.
 */
export function nextRing(
  ring: StoredKeyRing | null,
  now: number,
  rules: RotationRules,
  candidate: Omit<StoredSigningKey, 'signsFrom'> | null,
): StoredKeyRing | undefined {
  let keys = ring?.keys ?? [];
  let changed = false;
  if (candidate && rotationDue(ring, now, rules)) {
    const signsFrom = keys.length === 0 ? now : now + rules.publishAheadMs;
    keys = [...keys, { ...candidate, signsFrom }];
    changed = true;
  }
  const kept = publishedAt({ keys }, now, rules);
  if (kept.length !== keys.length) changed = true;
  return changed ? { keys: kept } : undefined;
}
