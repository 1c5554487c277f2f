import Type, { type Static } from 'typebox';
import type { RequestContext } from '../../gateway/context.ts';

/** The `from` field of token-based methods (jwt, introspection). */
export const TokenSource = Type.Object(
  {
    header: Type.Optional(
      Type.String({
        pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
        description:
          'Header whose whole value is the token. `Authorization` means the default: the `Bearer` scheme.',
      }),
    ),
    cookie: Type.Optional(Type.String({ minLength: 1, description: 'Cookie holding the token.' })),
    query: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'Query parameter holding the token (RFC 6750 §2.3). Discouraged: URLs end up in logs, and the ' +
          'parameter is forwarded upstream as sent.',
      }),
    ),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    maxProperties: 1,
    description:
      'Where the token is read from, instead of `Authorization: Bearer <token>`: one of header, cookie, query.',
  },
);
export type TokenSource = Static<typeof TokenSource>;

/** RFC 6750 §2.1 b64token: the only characters a bearer token may have. */
export const bearerTokenSyntax = /^[A-Za-z0-9\-._~+/]+=*$/;

const bearerScheme = /^bearer(?: +(.*))?$/is;

/**
 * The token a request carries in `from` (default: `Authorization: Bearer`).
 * - null: no credential of this kind (no such header, cookie or parameter; another scheme);
 * - a string: the credential as sent, not yet checked — callers test it against
 *   `bearerTokenSyntax`. It is '' when present but empty or repeated (ambiguous: refused).
 */
export function tokenFrom(ctx: RequestContext, from?: TokenSource): string | null {
  if (from?.cookie !== undefined) return cookieValue(ctx.headers.cookie, from.cookie);
  if (from?.query !== undefined) {
    if (ctx.query === '') return null;
    const values = new URLSearchParams(ctx.query).getAll(from.query);
    if (values.length === 0) return null;
    return values.length === 1 ? values[0]! : '';
  }
  const name = from?.header?.toLowerCase() ?? 'authorization';
  const value = ctx.headers[name];
  if (typeof value !== 'string') return null; // absent (only set-cookie is ever an array)
  if (name !== 'authorization') return value;
  const bearer = bearerScheme.exec(value);
  if (!bearer) return null; // another scheme (Basic, DPoP, ...): not ours
  return bearer[1] ?? '';
}

function cookieValue(header: string | undefined, name: string): string | null {
  if (header === undefined) return null;
  let found: string | null = null;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq === -1 || pair.slice(0, eq).trim() !== name) continue;
    if (found !== null) return ''; // the same cookie twice: which one is meant is not ours to guess
    const raw = pair.slice(eq + 1).trim();
    found = raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1) : raw;
  }
  return found;
}

/**
 * True when the token is a JWS compact serialization: three base64url parts, the first a JSON
 * object with `alg`. Such tokens belong to the `jwt` method; the `introspection` method steps
 * aside for them (and `jwt` for everything else).
 */
export function looksLikeJwt(token: string): boolean {
  const parts = token.split('.');
  if (parts.length !== 3 || !base64url.test(parts[0]!) || !base64url.test(parts[1]!)) return false;
  if (parts[2] !== '' && !base64url.test(parts[2]!)) return false;
  try {
    const header: unknown = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
    return (
      header !== null && typeof header === 'object' && typeof (header as { alg?: unknown }).alg === 'string'
    );
  } catch {
    return false;
  }
}

const base64url = /^[A-Za-z0-9_-]+$/;
