import type { Claims } from './types.ts';

const scopeClaims = ['scp', 'scope', 'scopes'] as const;

/**
 * Scopes granted by a token's claims: from `scp`, `scope` or `scopes`, each either a
 * space-separated string (RFC 6749, RFC 7662, RFC 9068) or an array of strings. Values of every
 * claim present are merged; anything that is not a string is ignored.
 */
export function scopesOf(claims: Claims): ReadonlySet<string> {
  const scopes = new Set<string>();
  for (const name of scopeClaims) {
    const value = claims[name];
    if (typeof value === 'string') {
      for (const scope of value.split(' ')) if (scope !== '') scopes.add(scope);
    } else if (Array.isArray(value)) {
      for (const scope of value) if (typeof scope === 'string' && scope !== '') scopes.add(scope);
    }
  }
  return scopes;
}
