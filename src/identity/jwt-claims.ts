export interface ClaimRules {
  readonly issuer: string;
  /** A token must name at least one of these in `aud`; null: `aud` is not checked here. */
  readonly audiences: ReadonlySet<string> | null;
  readonly skewSeconds: number;
  /** Claims that must be present (not null), besides `exp`. */
  readonly requiredClaims: readonly string[];
}

/**
 * Checks the registered claims of a signature-verified JWT (RFC 7519 §4.1, RFC 8725 §3.8-3.9).
 * Returns why the token is refused (safe to send), or null. Written here rather than left to
 * jose's jwtVerify because its checks let `exp: 1e400` (JSON for Infinity) never expire and do
 * not refuse an `iat` in the future.
 */
export function claimsProblem(
  claims: Readonly<Record<string, unknown>>,
  rules: ClaimRules,
  nowMs: number,
): string | null {
  const now = nowMs / 1000;
  const skew = rules.skewSeconds;
  if (claims.iss !== rules.issuer) return 'issuer not accepted';
  const { exp, nbf, iat } = claims;
  if (!isTime(exp)) return 'exp missing or not a number';
  if (now >= exp + skew) return 'token expired';
  if (nbf !== undefined) {
    if (!isTime(nbf)) return 'nbf is not a number';
    if (now + skew < nbf) return 'token not yet valid';
  }
  if (iat !== undefined) {
    if (!isTime(iat)) return 'iat is not a number';
    if (iat > now + skew) return 'token issued in the future';
  }
  if (claims.sub !== undefined && typeof claims.sub !== 'string') return 'sub is not a string';
  const audiences = audiencesOf(claims.aud);
  if (audiences === null) return 'aud is not a string or array of strings';
  if (rules.audiences !== null && !audiences.some((a) => rules.audiences!.has(a)))
    return 'audience not accepted';
  for (const name of rules.requiredClaims) {
    if (claims[name] === undefined || claims[name] === null) return `claim ${name} missing`;
  }
  return null;
}

/** `aud` as a list (RFC 7519 §4.1.3: a string or an array of strings); null when it is neither. */
export function audiencesOf(aud: unknown): readonly string[] | null {
  if (aud === undefined) return [];
  if (typeof aud === 'string') return [aud];
  if (Array.isArray(aud) && aud.every((a) => typeof a === 'string')) return aud;
  return null;
}

function isTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}
