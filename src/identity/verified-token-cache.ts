import { hash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { CredentialCheck } from './types.ts';

export type Verified = Extract<CredentialCheck, { ok: true }>;

/**
 * JWTs already verified, under a SHA-256 of the token (the token itself is never kept), bounded
 * in entries (least recently used dropped). An entry never outlives the token's `exp`, checked
 * against the injected clock on every read. Emptied by the owner when the key set changes.
 */
export class VerifiedTokenCache {
  readonly #entries: LRUCache<string, Verified> | null;
  readonly #now: () => number;

  constructor(maxEntries: number, now: () => number) {
    this.#entries = maxEntries > 0 ? new LRUCache<string, Verified>({ max: maxEntries }) : null;
    this.#now = now;
  }

  /** The cache key of a token. */
  static keyOf(token: string): string {
    // One-shot hash: a third cheaper than createHash().update().digest() on the request path.
    return hash('sha256', token, 'base64url');
  }

  get(key: string): Verified | undefined {
    const entry = this.#entries?.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt !== null && entry.expiresAt > this.#now()) return entry;
    this.#entries!.delete(key);
    return undefined;
  }

  /** Remembers a verified token until its `expiresAt`; one without, or already past it, is not kept. */
  set(key: string, verified: Verified): void {
    if (!this.#entries || verified.expiresAt === null) return;
    const ttl = verified.expiresAt - this.#now();
    if (ttl > 0) this.#entries.set(key, verified, { ttl });
  }

  clear(): void {
    this.#entries?.clear();
  }

  get size(): number {
    return this.#entries?.size ?? 0;
  }
}
