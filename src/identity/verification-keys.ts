import { createHash } from 'node:crypto';
import { type CryptoKey, importJWK } from 'jose';
import type { JwsAlgorithm } from '../config/schemas/identity-provider.ts';

export type { JwsAlgorithm };

/** One public key, imported for exactly one algorithm (WebCrypto keys are bound to theirs). */
export interface VerificationKey {
  readonly kid: string | null;
  readonly alg: JwsAlgorithm;
  readonly key: CryptoKey;
}

export interface ImportedKeySet {
  readonly keys: readonly VerificationKey[];
  /** Changes exactly when the usable keys change (kids, algorithms or key material). */
  readonly fingerprint: string;
  /** Why listed keys were left out, for the log (`kid: reason`); never key material. */
  readonly skipped: readonly string[];
}

/** The key type (and curve) each accepted algorithm needs. */
const keyTypes: Readonly<Record<JwsAlgorithm, { kty: string; crv?: string }>> = {
  RS256: { kty: 'RSA' },
  RS384: { kty: 'RSA' },
  RS512: { kty: 'RSA' },
  PS256: { kty: 'RSA' },
  PS384: { kty: 'RSA' },
  PS512: { kty: 'RSA' },
  ES256: { kty: 'EC', crv: 'P-256' },
  ES384: { kty: 'EC', crv: 'P-384' },
  ES512: { kty: 'EC', crv: 'P-521' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
};

/** The members that make up a public key of each type; everything else in a JWK is ignored. */
const publicMembers: Readonly<Record<string, readonly string[]>> = {
  RSA: ['n', 'e'],
  EC: ['crv', 'x', 'y'],
  OKP: ['crv', 'x'],
};

export class KeySetRejected extends Error {
  override readonly name = 'KeySetRejected';
}

/**
 * The signature keys of a JWK Set (RFC 7517) usable with the allowed algorithms. Only the public
 * members are imported, for algorithms the allow-list holds and the key's type fits — a key's own
 * `alg` can narrow that, never widen it. Left out: keys for another use (`use` other than `sig`,
 * `key_ops` without `verify`), symmetric (`oct`) and private keys, unknown types, RSA keys under
 * 2048 bits. A key without `use` is kept (the member is optional in RFC 7517). A set listing more
 * than `maxKeys` entries, or none usable, is rejected as a whole so the keys held are kept.
 */
export async function importVerificationKeys(
  jwks: Record<string, unknown>,
  algorithms: readonly JwsAlgorithm[],
  maxKeys: number,
): Promise<ImportedKeySet> {
  const listed = jwks.keys;
  if (!Array.isArray(listed)) throw new KeySetRejected('not a JWK Set (no "keys" array)');
  if (listed.length > maxKeys) throw new KeySetRejected(`lists ${listed.length} keys, more than ${maxKeys}`);
  const keys: VerificationKey[] = [];
  const skipped: string[] = [];
  const fingerprintParts: unknown[] = [];
  for (const [index, entry] of listed.entries()) {
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      skipped.push(`#${index}: not an object`);
      continue;
    }
    const jwk = entry as Record<string, unknown>;
    const label = typeof jwk.kid === 'string' ? jwk.kid : `#${index}`;
    const refusal = refuse(jwk);
    if (refusal) {
      skipped.push(`${label}: ${refusal}`);
      continue;
    }
    const kid = (jwk.kid as string | undefined) ?? null;
    const kty = jwk.kty as string;
    const candidates = algorithms.filter(
      (alg) =>
        keyTypes[alg].kty === kty &&
        (keyTypes[alg].crv === undefined || keyTypes[alg].crv === jwk.crv) &&
        (jwk.alg === undefined || jwk.alg === alg),
    );
    if (candidates.length === 0) {
      skipped.push(`${label}: no accepted algorithm fits (kty ${kty}, alg ${String(jwk.alg ?? '-')})`);
      continue;
    }
    const publicJwk: Record<string, unknown> = { kty };
    for (const member of publicMembers[kty]!) if (jwk[member] !== undefined) publicJwk[member] = jwk[member];
    for (const alg of candidates) {
      let key: CryptoKey;
      try {
        key = (await importJWK(publicJwk, alg)) as CryptoKey;
      } catch {
        skipped.push(`${label}: not a valid ${alg} key`);
        continue;
      }
      const bits = (key.algorithm as { modulusLength?: number }).modulusLength;
      if (bits !== undefined && bits < 2048) {
        skipped.push(`${label}: RSA key of ${bits} bits (at least 2048 needed)`);
        break;
      }
      keys.push(Object.freeze({ kid, alg, key }));
      fingerprintParts.push([kid, alg, publicJwk]);
    }
  }
  if (keys.length === 0)
    throw new KeySetRejected(`no usable signature key (${skipped.join('; ') || 'empty'})`);
  const fingerprint = createHash('sha256').update(JSON.stringify(fingerprintParts)).digest('hex');
  return { keys: Object.freeze(keys), fingerprint, skipped };
}

/** Why a listed key is not a public signature key we can use; null when it may be. */
function refuse(jwk: Record<string, unknown>): string | null {
  if (typeof jwk.kty !== 'string') return 'no kty';
  if (jwk.kty === 'oct') return 'symmetric key';
  if (publicMembers[jwk.kty] === undefined) return `unsupported kty ${jwk.kty}`;
  if (jwk.kid !== undefined && typeof jwk.kid !== 'string') return 'kid is not a string';
  if (jwk.alg !== undefined && typeof jwk.alg !== 'string') return 'alg is not a string';
  if (jwk.use !== undefined && jwk.use !== 'sig') return `use is ${String(jwk.use)}, not sig`;
  if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify')))
    return 'key_ops does not allow verify';
  if (jwk.d !== undefined) return 'private key published';
  return null;
}
