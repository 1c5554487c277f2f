import type { JwsAlgorithm } from './verification-keys.ts';

/** What of a JWS header is used: the algorithm (already allowed) and the key id. */
export interface JwsHeader {
  readonly alg: JwsAlgorithm;
  readonly kid: string | undefined;
}

export type HeaderCheck =
  | { readonly ok: true; readonly header: JwsHeader }
  | { readonly ok: false; readonly reason: string };

export interface HeaderRules {
  readonly algorithms: ReadonlySet<string>;
  /** Normalised `typ` required (see normaliseTyp); null: not checked. */
  readonly typ: string | null;
}

const base64url = /^[A-Za-z0-9_-]+$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Strict reading of a JWS compact serialization's header, before any key is looked at: exactly
 * three non-empty base64url parts, a JSON object header, an allowed `alg` (so `none` and any HMAC
 * algorithm are refused: an allow-list of the provider, never the token's choice), no `crit` (no
 * extension is understood, RFC 7515 §4.1.11) and no `b64` (RFC 7797). `jku`, `x5u`, `jwk` and
 * `x5c` are ignored: keys come only from the provider's key set. Reasons are safe to send.
 */
export function checkJwsHeader(token: string, rules: HeaderRules): HeaderCheck {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => base64url.test(p))) return refused('malformed token');
  let header: unknown;
  try {
    header = JSON.parse(utf8.decode(Buffer.from(parts[0]!, 'base64url')));
  } catch {
    return refused('malformed token header');
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header))
    return refused('malformed token header');
  const { alg, kid, crit, b64, typ } = header as Record<string, unknown>;
  if (typeof alg !== 'string') return refused('malformed token header');
  if (alg.toLowerCase() === 'none') return refused('unsigned tokens are not accepted');
  if (!rules.algorithms.has(alg)) return refused('signature algorithm not accepted');
  if (crit !== undefined) return refused('critical header extensions are not supported');
  if (b64 !== undefined) return refused('unencoded payloads are not supported');
  if (kid !== undefined && typeof kid !== 'string') return refused('malformed token header');
  if (rules.typ !== null && (typeof typ !== 'string' || normaliseTyp(typ) !== rules.typ))
    return refused('token type not accepted');
  return { ok: true, header: { alg: alg as JwsAlgorithm, kid } };
}

/** Media types compare case-insensitively, and `typ` may leave out `application/` (RFC 7515 §4.1.9). */
export function normaliseTyp(typ: string): string {
  const lower = typ.toLowerCase();
  return lower.startsWith('application/') ? lower.slice('application/'.length) : lower;
}

function refused(reason: string): HeaderCheck {
  return { ok: false, reason };
}
