/**
 * Canonical request target and authority.
 *
 * Computed once per request; the result is what routing and policies see and
 * exactly what is forwarded upstream, so every component agrees on a single
 * interpretation of the path. This is where path-confusion attacks
 * (encoded dot-segments, encoded slashes/backslashes, NUL bytes, duplicate
 * slashes, raw non-ASCII) are stopped.
 *
 * All functions are pure and never throw: they return a result or a Rejection.
 * Rejection details never echo the (attacker-controlled) input, only offsets
 * and fixed descriptions, so they are safe to log.
 */

export type Rejection = { ok: false; code: 'bad_path' | 'bad_host' | 'bad_target'; detail: string };

export type CanonicalTarget = {
  ok: true;
  path: string;
  /** Raw query, without the leading '?'; '' if none. Kept exactly as received. */
  query: string;
  hasQuery: boolean;
};

export type Authority = {
  ok: true;
  /** Lowercase, no trailing dot; IPv6 literals keep their brackets ("[::1]"). */
  hostname: string;
  port: number | null;
};

// ---------------------------------------------------------------------------
// Character classes (ASCII only; anything >= 0x80 is never allowed).

const C_PATH = 1; // pchar (minus '%', handled separately) plus '/'
const C_QUERY = 2; // C_PATH plus '?'
const C_UNRESERVED = 4; // ALPHA DIGIT - . _ ~
const C_HOST = 8; // reg-name chars we accept: ALPHA DIGIT - . _

const CLASS = new Uint8Array(128);
{
  const set = (chars: string, flags: number): void => {
    for (let i = 0; i < chars.length; i++) {
      const c = chars.charCodeAt(i);
      CLASS[c] = (CLASS[c] ?? 0) | flags;
    }
  };
  const alnum = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  set(alnum, C_PATH | C_QUERY | C_UNRESERVED | C_HOST);
  set('-._', C_PATH | C_QUERY | C_UNRESERVED | C_HOST);
  set('~', C_PATH | C_QUERY | C_UNRESERVED);
  set("!$&'()*+,;=", C_PATH | C_QUERY); // sub-delims
  set(':@/', C_PATH | C_QUERY);
  set('?', C_QUERY);
  // Real clients send these unencoded in queries (`?filter[name]=x`, `?a[]=1`); the query is never
  // routed on or normalised, only passed through, so accepting them is safe and what users expect.
  set('[]{}|^`', C_QUERY);
}

const CH_PERCENT = 0x25;
const CH_DOT = 0x2e;
const CH_SLASH = 0x2f;
const CH_COLON = 0x3a;
const CH_QUESTION = 0x3f;
const CH_AT = 0x40;
const CH_LBRACKET = 0x5b;
const CH_RBRACKET = 0x5d;

/** Value of an ASCII hex digit, or -1. `c` may be NaN (past end of string). */
function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

function reject(code: Rejection['code'], detail: string): Rejection {
  return { ok: false, code, detail };
}

// ---------------------------------------------------------------------------
// Request target

/**
 * Canonicalise an origin-form request-target (`http.IncomingMessage.url`).
 *
 * Fast path: a path that is entirely valid, contains no '%', no '//' and no
 * "." / ".." segment is returned unchanged (the identical string when there is
 * no query) without allocating any intermediate arrays.
 */
export function canonicalTarget(rawTarget: string): CanonicalTarget | Rejection {
  const len = rawTarget.length;
  // Origin-form only. Rejects "", "*", absolute-form and authority-form.
  if (len === 0 || rawTarget.charCodeAt(0) !== CH_SLASH) {
    return reject('bad_target', 'request-target is not origin-form');
  }
  if (rawTarget.indexOf('#') >= 0) return reject('bad_target', 'fragment (#) in request-target');

  let qIdx = -1;
  let slow = false;
  let prev = CH_SLASH;

  // Single pass over the path: validate every byte and percent-encoding, and
  // detect whether normalisation is needed.
  for (let i = 1; i < len; i++) {
    const c = rawTarget.charCodeAt(i);
    if (c === CH_QUESTION) {
      qIdx = i;
      break;
    }
    if (c < 128 && (CLASS[c]! & C_PATH) !== 0) {
      if (c === CH_SLASH) {
        if (prev === CH_SLASH) slow = true;
      } else if (c === CH_DOT && prev === CH_SLASH) {
        // "." or ".." segment?
        const n1 = i + 1 < len ? rawTarget.charCodeAt(i + 1) : CH_SLASH;
        if (n1 === CH_SLASH || n1 === CH_QUESTION) slow = true;
        else if (n1 === CH_DOT) {
          const n2 = i + 2 < len ? rawTarget.charCodeAt(i + 2) : CH_SLASH;
          if (n2 === CH_SLASH || n2 === CH_QUESTION) slow = true;
        }
      }
      prev = c;
      continue;
    }
    if (c === CH_PERCENT) {
      const h1 = hexVal(rawTarget.charCodeAt(i + 1));
      const h2 = hexVal(rawTarget.charCodeAt(i + 2));
      if (h1 < 0 || h2 < 0) return reject('bad_path', `invalid percent-encoding at offset ${i}`);
      const v = h1 * 16 + h2;
      if (v === 0x2f) return reject('bad_path', `encoded slash (%2F) at offset ${i}`);
      if (v === 0x5c) return reject('bad_path', `encoded backslash (%5C) at offset ${i}`);
      if (v === 0x00) return reject('bad_path', `encoded NUL (%00) at offset ${i}`);
      slow = true;
      prev = CH_PERCENT;
      i += 2;
      continue;
    }
    return reject('bad_path', `invalid character at offset ${i}`);
  }

  let query = '';
  if (qIdx >= 0) {
    for (let j = qIdx + 1; j < len; j++) {
      const c = rawTarget.charCodeAt(j);
      if (c < 128 && (CLASS[c]! & C_QUERY) !== 0) continue;
      if (c === CH_PERCENT) {
        if (hexVal(rawTarget.charCodeAt(j + 1)) < 0 || hexVal(rawTarget.charCodeAt(j + 2)) < 0) {
          return reject('bad_target', 'query');
        }
        j += 2;
        continue;
      }
      return reject('bad_target', 'query');
    }
    query = rawTarget.slice(qIdx + 1);
  }

  const pathEnd = qIdx >= 0 ? qIdx : len;
  let path: string;
  if (!slow) path = qIdx >= 0 ? rawTarget.slice(0, pathEnd) : rawTarget;
  else path = normalisePath(rawTarget, pathEnd);

  return { ok: true, path, query, hasQuery: qIdx >= 0 };
}

/**
 * Slow path. Precondition: raw[0] === '/' and raw[0, end) has been validated
 * (only allowed bytes, every '%' followed by two hex digits, no %2F/%5C/%00).
 *
 * Decodes unreserved percent-encodings, upper-cases the hex of the rest,
 * merges duplicate slashes and resolves dot-segments (after decoding).
 */
function normalisePath(raw: string, end: number): string {
  const segs: string[] = [];
  let trailingSlash = false;
  let i = 1;
  while (i <= end) {
    let seg = '';
    let runStart = i;
    let j = i;
    while (j < end) {
      const c = raw.charCodeAt(j);
      if (c === CH_SLASH) break;
      if (c === CH_PERCENT) {
        const h1 = hexVal(raw.charCodeAt(j + 1));
        const h2 = hexVal(raw.charCodeAt(j + 2));
        const v = h1 * 16 + h2;
        if (runStart < j) seg += raw.slice(runStart, j);
        if (v < 128 && (CLASS[v]! & C_UNRESERVED) !== 0) seg += String.fromCharCode(v);
        else seg += raw.slice(j, j + 3).toUpperCase();
        j += 3;
        runStart = j;
        continue;
      }
      j++;
    }
    if (runStart < j) seg += raw.slice(runStart, j);

    // Empty segments (duplicate or trailing slashes) and dot-segments only
    // matter for whether the result ends in '/'.
    if (seg === '' || seg === '.') {
      trailingSlash = true;
    } else if (seg === '..') {
      segs.pop(); // above the root stays at the root
      trailingSlash = true;
    } else {
      segs.push(seg);
      trailingSlash = false;
    }
    i = j + 1;
  }
  if (segs.length === 0) return '/';
  return '/' + segs.join('/') + (trailingSlash ? '/' : '');
}

// ---------------------------------------------------------------------------
// Authority (Host header)

const MAX_HOSTNAME = 253;

/**
 * Parse and canonicalise a Host header value: `host [ ":" port ]`, where host
 * is a reg-name / IPv4 address (letters, digits, '-', '.', '_') or a bracketed
 * IPv6 literal. Userinfo, zone identifiers and IPvFuture are rejected.
 */
export function parseAuthority(host: string): Authority | Rejection {
  const len = host.length;
  if (len === 0) return reject('bad_host', 'empty host');

  // Byte screen: whitespace, controls, DEL, non-ASCII, userinfo.
  let hasUpper = false;
  for (let i = 0; i < len; i++) {
    const c = host.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return reject('bad_host', `invalid character at offset ${i}`);
    if (c === CH_AT) return reject('bad_host', 'userinfo not allowed');
    if (c >= 0x41 && c <= 0x5a) hasUpper = true;
  }

  let hostEnd: number; // end of the host part (exclusive)
  let portStart: number; // index after ':' or -1
  let hostname: string;

  if (host.charCodeAt(0) === CH_LBRACKET) {
    const close = host.indexOf(']');
    if (close < 0) return reject('bad_host', 'unterminated IPv6 literal');
    if (close + 1 === len) portStart = -1;
    else if (host.charCodeAt(close + 1) === CH_COLON) portStart = close + 2;
    else return reject('bad_host', 'unexpected character after IPv6 literal');
    hostEnd = close + 1;
    if (!isIPv6(host, 1, close)) return reject('bad_host', 'invalid IPv6 literal');
    hostname = host.slice(0, hostEnd);
    if (hasUpper) hostname = hostname.toLowerCase();
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0) {
      if (host.indexOf(':', colon + 1) >= 0)
        return reject('bad_host', 'multiple colons outside IPv6 literal');
      hostEnd = colon;
      portStart = colon + 1;
    } else {
      hostEnd = len;
      portStart = -1;
    }

    // Validate reg-name characters and labels.
    let end = hostEnd;
    if (end > 0 && host.charCodeAt(end - 1) === CH_DOT) end--; // strip ONE trailing dot
    if (end === 0) return reject('bad_host', 'empty hostname');
    if (end > MAX_HOSTNAME) return reject('bad_host', 'hostname too long');
    let prev = CH_DOT; // a leading '.' is an empty label
    for (let i = 0; i < end; i++) {
      const c = host.charCodeAt(i);
      if ((CLASS[c]! & C_HOST) === 0) {
        if (c === CH_LBRACKET || c === CH_RBRACKET) return reject('bad_host', 'misplaced IPv6 bracket');
        return reject('bad_host', `invalid hostname character at offset ${i}`);
      }
      if (c === CH_DOT && prev === CH_DOT) return reject('bad_host', 'empty label in hostname');
      prev = c;
    }
    if (prev === CH_DOT) return reject('bad_host', 'empty label in hostname');
    hostname = end === len ? host : host.slice(0, end);
    if (hasUpper) hostname = hostname.toLowerCase();
  }

  let port: number | null = null;
  if (portStart >= 0) {
    const n = len - portStart;
    if (n === 0) return reject('bad_host', 'empty port');
    if (n > 5) return reject('bad_host', 'invalid port');
    let v = 0;
    for (let i = portStart; i < len; i++) {
      const c = host.charCodeAt(i);
      if (c < 0x30 || c > 0x39) return reject('bad_host', 'invalid port');
      v = v * 10 + (c - 0x30);
    }
    if (v > 65535) return reject('bad_host', 'invalid port');
    port = v;
  }

  return { ok: true, hostname, port };
}

/**
 * Strict IPv6 address check (RFC 4291 text form, RFC 3986 IPv6address) on
 * s[start, end). No zone identifiers. Allows an embedded dotted IPv4 tail.
 */
function isIPv6(s: string, start: number, end: number): boolean {
  if (end <= start) return false;
  let groups = 0; // 16-bit groups seen (IPv4 tail counts as 2)
  let doubleColon = false;
  let i = start;

  if (s.charCodeAt(i) === CH_COLON) {
    // Must be "::" at the start.
    if (s.charCodeAt(i + 1) !== CH_COLON || i + 1 >= end) return false;
    doubleColon = true;
    i += 2;
    if (i === end) return true; // "::"
  }

  while (i < end) {
    // Parse one group: 1-4 hex digits, or an IPv4 tail.
    const groupStart = i;
    while (i < end && hexVal(s.charCodeAt(i)) >= 0) i++;
    const digits = i - groupStart;

    if (i < end && s.charCodeAt(i) === CH_DOT) {
      // IPv4 tail: must be the last thing, starting at groupStart.
      if (!isIPv4(s, groupStart, end)) return false;
      groups += 2;
      i = end;
      break;
    }
    if (digits === 0 || digits > 4) return false;
    groups++;
    if (i === end) break;
    if (s.charCodeAt(i) !== CH_COLON) return false;
    i++;
    if (i < end && s.charCodeAt(i) === CH_COLON) {
      if (doubleColon) return false; // only one "::"
      doubleColon = true;
      i++;
      if (i === end) break; // trailing "::"
    } else if (i === end) {
      return false; // single trailing ':'
    }
  }

  return doubleColon ? groups <= 7 : groups === 8;
}

/** Dotted-quad IPv4 on s[start, end): four decimal octets 0-255, no leading zeros. */
function isIPv4(s: string, start: number, end: number): boolean {
  let octets = 0;
  let i = start;
  while (i <= end) {
    const octStart = i;
    let v = 0;
    while (i < end) {
      const c = s.charCodeAt(i);
      if (c < 0x30 || c > 0x39) break;
      v = v * 10 + (c - 0x30);
      i++;
    }
    const n = i - octStart;
    if (n === 0 || n > 3 || v > 255) return false;
    if (n > 1 && s.charCodeAt(octStart) === 0x30) return false;
    octets++;
    if (i === end) break;
    if (s.charCodeAt(i) !== CH_DOT || octets === 4) return false;
    i++;
  }
  return octets === 4;
}
