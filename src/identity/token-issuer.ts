import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { LRUCache } from 'lru-cache';
import type { SigningKeyRing } from './signing-keys.ts';

/** What one internal token says beyond iss, iat, exp and jti. */
export interface MintRequest {
  readonly audience: string;
  readonly lifetimeSeconds: number;
  /** `sub`; null (anonymous) leaves `sub` out. */
  readonly subject: string | null;
  /** Further claims, in a stable order (the cache key is built from them). Never iss/sub/aud/iat/exp/jti. */
  readonly claims: Readonly<Record<string, unknown>>;
}

/** Mints the gateway's internal JWTs and publishes the keys that verify them. */
export interface TokenIssuer {
  /** `iss` of every token. */
  readonly issuer: string;
  /** Listener that also serves the key set, if any. */
  readonly publishOn: string | null;
  /** Longest lifetime a token may have and still verify after a rotation (the key overlap). */
  readonly maxLifetimeMs: number;
  /** A signed compact JWT: sync when a fresh enough one is cached, a promise when one is signed. */
  mint(request: MintRequest): string | Promise<string>;
  /** The JWK Set document (public keys only). */
  jwks(): string;
  close(): void;
}

export interface TokenIssuerOptions {
  readonly issuer: string;
  readonly publishOn: string | null;
  readonly keys: SigningKeyRing;
  readonly cacheSize: number;
  readonly now: () => number;
}

interface CachedToken {
  readonly token: string;
  /** After this instant (ms) the token is re-minted rather than handed out. */
  readonly reuseUntil: number;
}

/** A token is reused until this much of its life is left, at most: upstreams get some margin. */
const maxReuseMarginMs = 30_000;

export class InternalTokenIssuer implements TokenIssuer {
  readonly issuer: string;
  readonly publishOn: string | null;
  readonly #keys: SigningKeyRing;
  readonly #now: () => number;
  readonly #cache: LRUCache<string, CachedToken>;
  /** Signatures under way, so concurrent misses for the same token sign once. */
  readonly #pending = new Map<string, Promise<string>>();

  constructor(options: TokenIssuerOptions) {
    this.issuer = options.issuer;
    this.publishOn = options.publishOn;
    this.#keys = options.keys;
    this.#now = options.now;
    this.#cache = new LRUCache({ max: options.cacheSize });
    // Tokens of the replaced key would still verify, but new ones must use the new key.
    options.keys.onRotate(() => this.#cache.clear());
  }

  get maxLifetimeMs(): number {
    return this.#keys.maxLifetimeMs();
  }

  mint(request: MintRequest): string | Promise<string> {
    const key = this.#keys.current();
    // The kid is part of the key, so a token signed by a replaced key is never handed out.
    const cacheKey = `${key.kid}\n${JSON.stringify([
      request.audience,
      request.lifetimeSeconds,
      request.subject,
      request.claims,
    ])}`;
    const now = this.#now();
    const cached = this.#cache.get(cacheKey);
    if (cached !== undefined && now < cached.reuseUntil) return cached.token;
    const pending = this.#pending.get(cacheKey);
    if (pending) return pending;
    const iat = Math.floor(now / 1000);
    const exp = iat + request.lifetimeSeconds;
    const margin = Math.min(maxReuseMarginMs, (request.lifetimeSeconds * 1000) / 2);
    const jwt = new SignJWT({ ...request.claims })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setAudience(request.audience)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(randomUUID());
    if (request.subject !== null) jwt.setSubject(request.subject);
    const signing = jwt
      .sign(key.privateKey)
      .then((token) => {
        this.#cache.set(cacheKey, { token, reuseUntil: exp * 1000 - margin });
        return token;
      })
      .finally(() => this.#pending.delete(cacheKey));
    this.#pending.set(cacheKey, signing);
    return signing;
  }

  jwks(): string {
    return this.#keys.jwks();
  }

  close(): void {
    this.#keys.close();
    this.#cache.clear();
  }
}
