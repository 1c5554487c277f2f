import { compactVerify, errors } from 'jose';
import { toMillis } from '../config/duration.ts';
import type { IdentityProviderSpec } from '../config/schemas/identity-provider.ts';
import { checkJwsHeader, type HeaderRules, type JwsHeader, normaliseTyp } from './jws-header.ts';
import { type ClaimRules, claimsProblem } from './jwt-claims.ts';
import { KeySet } from './key-set.ts';
import type { CredentialCheck, JwtVerifier, ProviderDeps } from './types.ts';
import { VerifiedTokenCache, type Verified } from './verified-token-cache.ts';

const NOT_ACTIVE: CredentialCheck = Object.freeze({
  ok: false,
  kind: 'unavailable',
  reason: 'signing keys are not fetched in this process',
});
const KEYS_EXPIRED: CredentialCheck = Object.freeze({
  ok: false,
  kind: 'unavailable',
  reason: 'signing keys could not be refreshed within the grace period',
});
const KEYS_COLD: CredentialCheck = Object.freeze({
  ok: false,
  kind: 'unavailable',
  reason: 'signing keys not loaded yet',
});

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Verifies JWTs of one IdentityProvider against its key set (key-set.ts). Nothing is fetched until
 * a `jwt` policy activates the verifier, and only in a process that starts background work, so a
 * provider used only for introspection neither fetches keys nor holds readiness back.
 *
 * verify(): header checked strictly first (jws-header.ts), synchronously; a token verified before
 * is answered synchronously from the verified-token cache; otherwise the signature is checked with
 * jose against the keys for the header's `kid` and `alg`, then the claims (jwt-claims.ts). An
 * unknown `kid` causes one rate-limited, shared refetch (key rotation). No keys yet, or keys older
 * than the grace period: `unavailable` (the caller answers 503), after waiting at most for the one
 * fetch in flight.
 */
export function createJwtVerifier(id: string, spec: IdentityProviderSpec, deps: ProviderDeps): JwtVerifier {
  return new KeySetJwtVerifier(id, spec, deps);
}

class KeySetJwtVerifier implements JwtVerifier {
  readonly #id: string;
  readonly #spec: IdentityProviderSpec;
  readonly #deps: ProviderDeps;
  readonly #keySet: KeySet;
  readonly #cache: VerifiedTokenCache;
  readonly #pending = new Map<string, Promise<CredentialCheck>>();
  readonly #headerRules: HeaderRules;
  readonly #claimRules: ClaimRules;
  #activated = false;
  #closed = false;

  constructor(id: string, spec: IdentityProviderSpec, deps: ProviderDeps) {
    this.#id = id;
    this.#spec = spec;
    this.#deps = deps;
    const ks = spec.keySet;
    this.#keySet = new KeySet(
      {
        id,
        issuer: spec.issuer,
        jwksUri: spec.jwksUri ?? null,
        algorithms: spec.algorithms,
        refreshIntervalMs: toMillis(ks.refreshInterval),
        gracePeriodMs: toMillis(ks.gracePeriod),
        timeoutMs: toMillis(ks.timeout),
        minRefetchIntervalMs: toMillis(ks.minRefetchInterval),
        maxBytes: ks.maxBytes,
        maxKeys: ks.maxKeys,
      },
      { now: deps.now, log: deps.log, onChange: () => this.#cache.clear() },
    );
    this.#cache = new VerifiedTokenCache(spec.verifiedTokenCache.maxEntries, deps.now);
    this.#headerRules = {
      algorithms: new Set(spec.algorithms),
      typ: spec.typ === undefined ? null : normaliseTyp(spec.typ),
    };
    this.#claimRules = {
      issuer: spec.issuer,
      audiences: spec.audiences.length > 0 ? new Set(spec.audiences) : null,
      skewSeconds: toMillis(spec.clockSkew) / 1000,
      requiredClaims: spec.requiredClaims,
    };
  }

  activate(): void {
    if (this.#activated) return;
    const { jwksUri, issuer, keySet } = this.#spec;
    if (jwksUri === undefined && !/^https?:\/\//i.test(issuer))
      throw new TypeError(
        `IdentityProvider ${this.#id}: jwksUri is not set and issuer ${issuer} is not an http(s) URL to discover it from`,
      );
    if (toMillis(keySet.refreshInterval) < 1000)
      throw new TypeError(`IdentityProvider ${this.#id}: keySet.refreshInterval must be at least 1s`);
    if (toMillis(keySet.timeout) === 0)
      throw new TypeError(`IdentityProvider ${this.#id}: keySet.timeout must be more than 0`);
    if (!this.#deps.start) return; // offline compile (validate, explain): no I/O
    this.#activated = true;
    this.#keySet.start();
  }

  ready(): boolean {
    return !this.#activated || this.#keySet.state() === 'usable';
  }

  cached(token: string): CredentialCheck | undefined {
    if (!this.#activated || this.#keySet.state() === 'expired') return undefined;
    return this.#cache.get(VerifiedTokenCache.keyOf(token));
  }

  verify(token: string): CredentialCheck | Promise<CredentialCheck> {
    if (!this.#activated) return NOT_ACTIVE;
    // Past the grace period even cached answers stop: the keys they were checked with may be revoked.
    if (this.#keySet.state() === 'expired') return KEYS_EXPIRED;
    const key = VerifiedTokenCache.keyOf(token);
    const cached = this.#cache.get(key);
    if (cached) return cached;
    const header = checkJwsHeader(token, this.#headerRules);
    if (!header.ok) return invalid(header.reason);
    let pending = this.#pending.get(key);
    if (!pending) {
      pending = this.#verifySignatureAndClaims(token, header.header, key).finally(() =>
        this.#pending.delete(key),
      );
      this.#pending.set(key, pending);
    }
    return pending;
  }

  /** Stops fetching. Requests still in flight on an old plan keep verifying against the keys held. */
  close(): void {
    this.#closed = true;
    this.#keySet.close();
    this.#cache.clear();
  }

  async #verifySignatureAndClaims(
    token: string,
    header: JwsHeader,
    cacheKey: string,
  ): Promise<CredentialCheck> {
    let keys = this.#keySet.keysFor(header.kid, header.alg);
    if (keys.length === 0) {
      const cold = this.#keySet.state() === 'cold';
      const unknownKid = header.kid !== undefined && !this.#keySet.knowsKid(header.kid);
      if (!cold && !unknownKid) return invalid('no signing key for this algorithm');
      // Rotation (or a cold start): one shared fetch, at most one per minRefetchInterval.
      const refresh = this.#keySet.requestRefresh();
      if (refresh) await refresh;
      const state = this.#keySet.state();
      if (state === 'cold') return KEYS_COLD;
      if (state === 'expired') return KEYS_EXPIRED;
      keys = this.#keySet.keysFor(header.kid, header.alg);
      if (keys.length === 0) return invalid('signing key not found');
    }
    const version = this.#keySet.version;
    let payload: Uint8Array | null = null;
    // Several candidates only for a token without `kid` (or a reused kid): bounded by keySet.maxKeys.
    for (const candidate of keys) {
      try {
        payload = (await compactVerify(token, candidate.key, { algorithms: [header.alg] })).payload;
        break;
      } catch (err) {
        if (err instanceof errors.JWSSignatureVerificationFailed) continue;
        return invalid('malformed token');
      }
    }
    if (payload === null) return invalid('signature invalid');
    const claims = parseClaims(payload);
    if (claims === null) return invalid('malformed token payload');
    const problem = claimsProblem(claims, this.#claimRules, this.#deps.now());
    if (problem !== null) return invalid(problem);
    const verified: Verified = Object.freeze({
      ok: true,
      claims: deepFreeze(claims),
      expiresAt: (claims.exp as number) * 1000,
    });
    // Keys changed meanwhile (the cache was emptied): do not refill it with a check made before.
    if (!this.#closed && this.#keySet.version === version) this.#cache.set(cacheKey, verified);
    return verified;
  }
}

function parseClaims(payload: Uint8Array): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(utf8.decode(payload));
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
    return value as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** Claims are shared by every request the cache answers: nothing may change them. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

function invalid(reason: string): CredentialCheck {
  return { ok: false, kind: 'invalid', reason };
}
