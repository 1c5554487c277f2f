// Which origins a CORS policy allows, compiled once: exact origins in a Set, `scheme://*.domain[:port]`
// patterns as prefix/suffix pairs. Matching uses no regular expression over the whole Origin, so its
// cost stays linear in the header's length whatever the client sends.

export interface OriginMatcher {
  /** `*`: every origin (only without credentials; the policy checks that). */
  readonly any: boolean;
  allows(origin: string): boolean;
}

interface OriginPattern {
  /** `https://` */
  readonly prefix: string;
  /** `.example.com` or `.example.com:8443` */
  readonly suffix: string;
}

const schemeAuthority = /^([a-z][a-z0-9+.-]*):\/\/([^/?#\s]+)$/;
const label = '[a-z0-9](?:[a-z0-9-]*[a-z0-9])?';
/** Host and optional port after `*.`: at least two labels, so `*.com` cannot be written. */
const patternRest = new RegExp(`^${label}(?:\\.${label})+(?::[0-9]{1,5})?$`);
/** What the `*` of a pattern stands for: one or more labels, nothing else (no `:`, `/`, `@`). */
const subdomains = /^[a-z0-9-]+(?:\.[a-z0-9-]+)*$/;
/** Browsers send short origins; anything longer is refused without looking further. */
const maxOriginLength = 2048;

/**
 * Compiles `allowOrigins`. Entries are `*`, an exact origin as browsers send it
 * (`https://app.example.com`, `http://localhost:3000`: scheme, host and non-default port, lowercase,
 * no path), or a pattern whose first label is `*` (`https://*.example.com`: one or more labels in
 * front of example.com, same scheme and port). Problems are appended to `problems`.
 */
export function compileOrigins(entries: readonly string[], problems: string[]): OriginMatcher {
  const exact = new Set<string>();
  const patterns: OriginPattern[] = [];
  let any = false;
  for (const entry of entries) {
    if (entry === '*') {
      any = true;
      if (entries.length > 1) problems.push('allowOrigins: `*` allows every origin, so list it alone');
      continue;
    }
    if (entry === 'null') {
      problems.push(
        'allowOrigins: the `null` origin is sent by sandboxed documents and local files, which anyone ' +
          'can make, so it cannot be allowed',
      );
      continue;
    }
    const parts = schemeAuthority.exec(entry);
    if (!parts) {
      problems.push(`allowOrigins: ${entry} is not an origin (scheme://host[:port], no path)`);
      continue;
    }
    const [, scheme, authority] = parts as unknown as [string, string, string];
    if (authority.startsWith('*.')) {
      const rest = authority.slice(2);
      if (!patternRest.test(rest) || !isCanonical(`${scheme}://x.${rest}`)) {
        problems.push(
          `allowOrigins: ${entry} is not a pattern of the form scheme://*.domain[:port] with a lowercase ` +
            'domain of at least two labels and no default port',
        );
        continue;
      }
      patterns.push({ prefix: `${scheme}://`, suffix: `.${rest}` });
      continue;
    }
    if (authority.includes('*')) {
      problems.push(
        `allowOrigins: ${entry}: \`*\` may only stand for the whole first label (https://*.example.com)`,
      );
      continue;
    }
    if (!isCanonical(entry)) {
      problems.push(
        `allowOrigins: ${entry} is not written as browsers send it (lowercase, no default port, no trailing slash)`,
      );
      continue;
    }
    exact.add(entry);
  }
  return {
    any,
    allows(origin) {
      if (any || exact.has(origin)) return true;
      if (origin.length > maxOriginLength) return false;
      for (const { prefix, suffix } of patterns) {
        if (
          origin.length > prefix.length + suffix.length &&
          origin.startsWith(prefix) &&
          origin.endsWith(suffix) &&
          subdomains.test(origin.slice(prefix.length, origin.length - suffix.length))
        )
          return true;
      }
      return false;
    },
  };
}

/**
 * True when an http(s) origin is spelled exactly as browsers serialise it (the WHATWG URL parser's
 * `origin`); other schemes (`chrome-extension://…`) only need to be lowercase.
 */
function isCanonical(origin: string): boolean {
  if (!origin.startsWith('http://') && !origin.startsWith('https://')) return origin === origin.toLowerCase();
  try {
    return new URL(origin).origin === origin;
  } catch {
    return false;
  }
}
