import { createPrivateKey, type KeyObject } from 'node:crypto';
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  errors,
  exportJWK,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  type JWTVerifyOptions,
  type JWTVerifyResult,
  jwtVerify,
  SignJWT,
} from 'jose';
import type { Logger } from '../../telemetry/logger.ts';
import type { ResourceStore } from '../store/types.ts';
import {
  nextRing,
  publishedAt,
  type RotationRules,
  rotationDue,
  type StoredKeyRing,
  type StoredSigningKey,
  signingKeyAt,
} from './key-ring-state.ts';

export const securityCollection = 'security';
export const keyRingRecordId = 'jwt-signing-keys';

export interface JwtKeyRingOptions {
  store: ResourceStore;
  now: () => number;
  logger: Logger;
  rotationMs: number;
  /** The longest lifetime of a token this ring signs. */
  tokenLifetimeMs: number;
  /** How long a new key is published before it signs (default: a quarter of the rotation, at most 6 min). */
  publishAheadMs?: number;
  /** How often the ring is read again from the store (another control plane may have rotated). */
  refreshMs?: number;
}

/** Receivers using jose's createRemoteJWKSet keep a key set 5 min: publish a new key longer before. */
const maxPublishAheadMs = 6 * 60_000;
const clockSkewMs = 60_000;
const minReloadOnUnknownKidMs = 1000;

/**
 * The control plane's ES256 signing keys for subsystem JWTs, kept in one store record so every
 * control plane on one database signs with the same keys and publishes the same JWKS. Rotation is
 * decided under recordUpdate, so two control planes rotating at once add one key, not two.
 */
export class JwtKeyRing {
  readonly #options: JwtKeyRingOptions;
  readonly #rules: RotationRules;
  #ring: StoredKeyRing = { keys: [] };
  #privateKeys = new Map<string, KeyObject>();
  #localKeys: ReturnType<typeof createLocalJWKSet> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #lastReloadAt = 0;
  #reloading: Promise<void> | null = null;
  #closed = false;

  private constructor(options: JwtKeyRingOptions) {
    this.#options = options;
    this.#rules = {
      rotationMs: options.rotationMs,
      publishAheadMs: options.publishAheadMs ?? Math.min(options.rotationMs / 4, maxPublishAheadMs),
      tokenLifetimeMs: options.tokenLifetimeMs,
      clockSkewMs,
    };
    if (!(options.rotationMs > 0)) throw new TypeError('keyRotation must be positive');
    if (this.#rules.publishAheadMs >= options.rotationMs)
      throw new TypeError('a new key must be published for less than the rotation interval before it signs');
  }

  /** Reads the ring from the store, creating or rotating it when due, and keeps it current. */
  static async open(options: JwtKeyRingOptions): Promise<JwtKeyRing> {
    const ring = new JwtKeyRing(options);
    await ring.refresh();
    ring.#schedule();
    return ring;
  }

  /** Re-reads the ring from the store and rotates when due. */
  async refresh(): Promise<void> {
    const { store, now } = this.#options;
    let stored = await store.recordGet<StoredKeyRing>(securityCollection, keyRingRecordId);
    const candidate = rotationDue(stored, now(), this.#rules) ? await generateCandidate(now()) : null;
    const changed = nextRing(stored, now(), this.#rules, candidate);
    if (changed !== undefined) {
      stored = await store.recordUpdate<StoredKeyRing>(securityCollection, keyRingRecordId, (current) =>
        nextRing(current, now(), this.#rules, candidate),
      );
      const added = stored?.keys.find((k) => k.kid === candidate?.kid);
      if (added)
        this.#options.logger.info(
          { kid: added.kid, signsFrom: new Date(added.signsFrom).toISOString() },
          'subsystem JWT signing key added',
        );
    }
    this.#install(stored ?? { keys: [] });
    this.#lastReloadAt = now();
  }

  /** Signs `claims` with the key that signs now. */
  async sign(claims: JWTPayload, lifetimeMs: number): Promise<string> {
    let key = signingKeyAt(this.#ring, this.#options.now());
    if (!key) {
      await this.refresh();
      key = signingKeyAt(this.#ring, this.#options.now());
    }
    if (!key) throw new Error('no subsystem JWT signing key');
    if (lifetimeMs > this.#rules.tokenLifetimeMs)
      throw new TypeError('token lifetime is longer than the key ring keeps retired keys');
    const nowSec = Math.floor(this.#options.now() / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
      .setIssuedAt(nowSec)
      .setExpirationTime(nowSec + Math.ceil(lifetimeMs / 1000))
      .sign(this.#privateKey(key));
  }

  /** The JWK Set document (RFC 7517): public members only. */
  jwks(): { keys: JWK[] } {
    return { keys: publishedAt(this.#ring, this.#options.now(), this.#rules).map((k) => k.publicJwk) };
  }

  /**
   * Verifies a token signed by this ring; an unknown `kid` re-reads the store once (at most once a
   * second), as another control plane may have added a key. ES256 is pinned by the caller's options.
   */
  async verify(token: string, options: JWTVerifyOptions): Promise<JWTVerifyResult> {
    try {
      return await jwtVerify(token, this.#localKeys!, options);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      if (this.#options.now() - this.#lastReloadAt < minReloadOnUnknownKidMs) throw err;
      this.#reloading ??= this.refresh().finally(() => {
        this.#reloading = null;
      });
      await this.#reloading;
      return jwtVerify(token, this.#localKeys!, options);
    }
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #install(ring: StoredKeyRing): void {
    this.#ring = ring;
    this.#localKeys = createLocalJWKSet(this.jwks());
    const kids = new Set(ring.keys.map((k) => k.kid));
    for (const kid of this.#privateKeys.keys()) if (!kids.has(kid)) this.#privateKeys.delete(kid);
  }

  #privateKey(key: StoredSigningKey): KeyObject {
    let object = this.#privateKeys.get(key.kid);
    if (!object) {
      object = createPrivateKey({ key: key.privateJwk as never, format: 'jwk' });
      this.#privateKeys.set(key.kid, object);
    }
    return object;
  }

  #schedule(): void {
    if (this.#closed) return;
    const refreshMs = this.#options.refreshMs ?? Math.min(this.#rules.publishAheadMs / 2, 60_000);
    this.#timer = setTimeout(
      () => {
        this.refresh().then(
          () => this.#schedule(),
          (err: Error) => {
            this.#options.logger.error({ err: err.message }, 'subsystem JWT key ring refresh failed');
            this.#schedule();
          },
        );
      },
      Math.max(refreshMs, 100),
    );
    this.#timer.unref();
  }
}

async function generateCandidate(now: number): Promise<Omit<StoredSigningKey, 'signsFrom'>> {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const privateJwk = await exportJWK(privateKey);
  const { kty, crv, x, y } = privateJwk;
  const kid = await calculateJwkThumbprint({ kty, crv, x, y } as JWK);
  return {
    kid,
    privateJwk: { ...privateJwk, kid, alg: 'ES256' },
    publicJwk: { kty, crv, x, y, kid, alg: 'ES256', use: 'sig' } as JWK,
    createdAt: now,
  };
}
