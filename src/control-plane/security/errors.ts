/**
 * Why a subsystem JWT was refused. Stable codes, so callers map them without reading messages:
 * - `token_malformed`: not a compact JWS, or a header or claim of the wrong shape;
 * - `token_invalid`: signature, key, issuer, audience, algorithm or gateway claims not accepted;
 * - `token_expired`: past `exp` (beyond the allowed clock skew);
 * - `keys_unavailable`: the JWKS could not be fetched (timeout, not 200, too large, not a key set):
 *   the token could not be checked at all, so the caller should answer 503, not 401.
 */
export type SubsystemTokenErrorCode =
  | 'token_malformed'
  | 'token_invalid'
  | 'token_expired'
  | 'keys_unavailable';

export class SubsystemTokenError extends Error {
  readonly code: SubsystemTokenErrorCode;
  constructor(code: SubsystemTokenErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SubsystemTokenError';
    this.code = code;
  }
}
