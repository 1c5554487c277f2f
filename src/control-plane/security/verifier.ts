import { createRemoteJWKSet, customFetch, errors, jwtVerify } from 'jose';
import { boundedFetch } from './bounded-fetch.ts';
import { identityFromClaims } from './claims.ts';
import { SubsystemTokenError } from './errors.ts';
import type { GatewayIdentity } from './types.ts';

export interface SubsystemJwtVerifierOptions {
  /** The control plane's JWKS, `<control plane>/.well-known/jwks.json`. */
  jwksUrl: string;
  /** The control plane's issuer (its public URL). */
  issuer: string;
  /** What this receiver is: `audiences.analytics`, `audiences.controlPlane`. */
  audience: string;
  /** Time allowed for one JWKS fetch (default 5000). */
  fetchTimeoutMs?: number;
  /** Leeway on exp/iat/nbf (default 30). */
  clockSkewSec?: number;
  /** PEM CA to verify the JWKS URL's TLS certificate with (default: the system CAs). */
  ca?: string;
  /** Largest JWKS document accepted (default 64 KiB). */
  maxBytes?: number;
  /** Shortest time between two fetches caused by an unknown `kid` (default 30000). */
  cooldownMs?: number;
}

export interface SubsystemJwtVerifier {
  /** The gateway that holds the token; throws SubsystemTokenError. */
  verify(token: string): Promise<GatewayIdentity>;
  /** Closes the JWKS connection pool. */
  close(): Promise<void>;
}

/** Cached keys are refetched after this even when every kid is known (a key removed is dropped). */
const cacheMaxAgeMs = 5 * 60_000;

/**
 * Receiver side of jwt mode (the control plane's own gateway routes, analytics ingestion run
 * elsewhere): checks a gateway's short-lived JWT against the control plane's JWKS URL. ES256
 * only (the control plane signs with nothing else; the token never chooses), issuer and audience
 * required. jose's createRemoteJWKSet fetches on demand and refetches once per cooldown for an
 * unknown kid, which is how a rotated-in key is found; the fetch is bounded in time and size.
 */
export function createSubsystemJwtVerifier(options: SubsystemJwtVerifierOptions): SubsystemJwtVerifier {
  const { jwksUrl, issuer, audience } = options;
  let url: URL;
  try {
    url = new URL(jwksUrl);
  } catch {
    throw new TypeError(`jwksUrl is not a URL: ${JSON.stringify(jwksUrl)}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new TypeError('jwksUrl must be an http(s) URL');
  if (typeof issuer !== 'string' || issuer.length === 0) throw new TypeError('issuer is required');
  if (typeof audience !== 'string' || audience.length === 0) throw new TypeError('audience is required');
  const timeoutMs = options.fetchTimeoutMs ?? 5000;
  const clockSkewSec = options.clockSkewSec ?? 30;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0)
    throw new TypeError('fetchTimeoutMs must be a positive integer');
  if (!Number.isFinite(clockSkewSec) || clockSkewSec < 0) throw new TypeError('clockSkewSec must be ≥ 0');

  const fetcher = boundedFetch({
    maxBytes: options.maxBytes ?? 65_536,
    ...(options.ca === undefined ? {} : { ca: options.ca }),
  });
  const keys = createRemoteJWKSet(url, {
    timeoutDuration: timeoutMs,
    cooldownDuration: options.cooldownMs ?? 30_000,
    cacheMaxAge: cacheMaxAgeMs,
    [customFetch]: fetcher.fetch,
  });

  return {
    async verify(token) {
      if (typeof token !== 'string' || token.length === 0 || token.length > 8192)
        throw new SubsystemTokenError('token_malformed', 'not a JWT');
      let payload: Record<string, unknown>;
      try {
        ({ payload } = await jwtVerify(token, keys, {
          issuer,
          audience,
          algorithms: ['ES256'],
          clockTolerance: clockSkewSec,
          requiredClaims: ['exp', 'iat', 'sub'],
        }));
      } catch (err) {
        throw toTokenError(err);
      }
      const identity = identityFromClaims(payload);
      if (!identity) throw new SubsystemTokenError('token_invalid', 'token has no gateway identity claims');
      return identity;
    },
    close: () => fetcher.close(),
  };
}

function toTokenError(err: unknown): SubsystemTokenError {
  if (err instanceof errors.JWTExpired)
    return new SubsystemTokenError('token_expired', 'token expired', { cause: err });
  if (err instanceof errors.JWTClaimValidationFailed)
    return new SubsystemTokenError('token_invalid', `claim ${err.claim}: ${err.reason}`, { cause: err });
  if (
    err instanceof errors.JWSSignatureVerificationFailed ||
    err instanceof errors.JWKSNoMatchingKey ||
    err instanceof errors.JWKSMultipleMatchingKeys ||
    err instanceof errors.JOSEAlgNotAllowed ||
    err instanceof errors.JOSENotSupported
  )
    return new SubsystemTokenError('token_invalid', err.message, { cause: err });
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid)
    return new SubsystemTokenError('token_malformed', err.message, { cause: err });
  // Timeouts, refused connections, non-200 answers, oversized or invalid key sets: the token
  // could not be checked.
  return new SubsystemTokenError('keys_unavailable', `JWKS not available: ${(err as Error).message}`, {
    cause: err,
  });
}
