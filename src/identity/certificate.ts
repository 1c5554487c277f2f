// The identity carried by a verified peer certificate, in the shape gateway policies match on.
//
// Node exposes no structured view of a certificate's names, only two rendered strings, and both
// are parsed here rather than matched with regexes:
//
// - `X509Certificate.subject` / `.issuer`: one RDN per line, in certificate order, e.g.
//   "O=Corp\nCN=orders". OpenSSL renders each value RFC 2253-escaped (`\,` `\+` `\"` `\\` `\;`
//   `\<` `\>`, a leading `\#` or `\ `, a trailing `\ `) with control characters as `\XX` hex
//   (so a value never contains a raw newline), UTF-8 as is, and the members of a multi-valued
//   RDN joined by " + ".
// - `X509Certificate.subjectAltName`: entries joined by ", ", each "TYPE:value"
//   (`DNS`, `URI`, `IP Address`, `email`, `DirName`, `othername`, `Registered ID`). Since the
//   CVE-2021-44532 fix, a value containing `,` `"` `\` `'` or a non-printable byte is emitted as a
//   JSON string literal (`,` becomes `\u002c`), e.g. `URI:"urn:x:a\u002c DNS:evil.test"`, so a
//   comma outside quotes always separates entries and a quoted value is decoded with JSON.parse.

import type { X509Certificate } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import type { TLSSocket } from 'node:tls';

export interface CertificateIdentity {
  /** RFC 4514 one-line subject, most specific RDN first: "CN=orders,O=Corp". */
  subject: string;
  /** The most specific (last in certificate order) subject CN, unescaped; null if there is none. */
  commonName: string | null;
  dnsNames: string[];
  uris: string[];
  /** The single spiffe:// URI SAN; null if there is none or more than one. */
  spiffeId: string | null;
  /** IP address SANs; IPv6 in RFC 5952 form ("::1", "fe80::1"). */
  ips: string[];
  /** rfc822Name SANs. */
  emails: string[];
  /** Hex, as Node renders it. */
  serialNumber: string;
  /** SHA-256 fingerprint, colon-separated hex, as Node renders it. */
  fingerprint256: string;
  /** ISO 8601 instant. */
  notAfter: string;
  /** RFC 4514 one-line issuer, like `subject`. */
  issuer: string;
}

export function certificateIdentity(cert: X509Certificate): CertificateIdentity {
  const subject = parseName(cert.subject ?? '');
  const sans = parseSubjectAltName(cert.subjectAltName ?? '');
  const ofType = (type: string) => sans.filter((s) => s.type === type).map((s) => s.value);
  const uris = ofType('URI');
  const spiffe = uris.filter((u) => u.startsWith('spiffe://'));
  let commonName: string | null = null;
  for (const rdn of subject) for (const ava of rdn) if (ava.type === 'CN') commonName = ava.value;
  return {
    subject: formatName(subject),
    commonName,
    dnsNames: ofType('DNS'),
    uris,
    spiffeId: spiffe.length === 1 ? spiffe[0]! : null,
    ips: ofType('IP Address').flatMap((ip) => {
      if (isIPv4(ip)) return [ip];
      if (isIPv6(ip)) return [compressIPv6(ip)];
      return []; // e.g. "<invalid>" for an address of the wrong length
    }),
    emails: ofType('email'),
    serialNumber: cert.serialNumber,
    fingerprint256: cert.fingerprint256,
    notAfter: cert.validToDate.toISOString(),
    issuer: formatName(parseName(cert.issuer ?? '')),
  };
}

/**
 * The identity of the certificate the peer presented, or null unless the TLS layer verified it
 * (`socket.authorized`) and one was presented.
 */
export function peerIdentity(socket: TLSSocket): CertificateIdentity | null {
  if (!socket.authorized) return null;
  const cert = socket.getPeerX509Certificate();
  return cert === undefined ? null : certificateIdentity(cert);
}

// ---------------------------------------------------------------------------------------------
// subjectAltName

export interface AltName {
  /** As Node renders it: "DNS", "URI", "IP Address", "email", "DirName", "othername", ... */
  type: string;
  /** Decoded value (JSON-quoted values unquoted). */
  value: string;
}

/** Split Node's `subjectAltName` rendering into entries, never splitting inside a quoted value. */
export function parseSubjectAltName(text: string): AltName[] {
  const out: AltName[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) throw malformed(text, i);
    const type = text.slice(i, colon);
    if (type.includes(',') || type.includes('"')) throw malformed(text, i);
    // Scan to the next comma outside a quoted string.
    let j = colon + 1;
    let quoted = false;
    for (; j < text.length; j++) {
      const c = text[j];
      if (quoted) {
        if (c === '\\') j++;
        else if (c === '"') quoted = false;
      } else if (c === '"') quoted = true;
      else if (c === ',') break;
    }
    if (quoted) throw malformed(text, colon + 1);
    const raw = text.slice(colon + 1, j);
    let value = raw;
    if (raw.startsWith('"')) {
      if (!raw.endsWith('"') || raw.length < 2) throw malformed(text, colon + 1);
      try {
        value = JSON.parse(raw) as string;
      } catch {
        throw malformed(text, colon + 1);
      }
    }
    out.push({ type, value });
    if (j >= text.length) break;
    // Node separates entries with ", ".
    if (text[j + 1] !== ' ' || j + 2 >= text.length) throw malformed(text, j);
    i = j + 2;
  }
  return out;
}

function malformed(text: string, at: number): Error {
  return new Error(`unparseable subjectAltName at offset ${at}: ${JSON.stringify(text)}`);
}

// ---------------------------------------------------------------------------------------------
// Distinguished names

export interface Ava {
  /** Attribute short name ("CN", "O", "emailAddress") or dotted OID. */
  type: string;
  /** Unescaped value. */
  value: string;
}

/** A DN as Node renders it (one RDN per line, certificate order) → RDNs of unescaped AVAs. */
export function parseName(text: string): Ava[][] {
  if (text === '') return [];
  return text.split('\n').map((line) => splitRdn(line).map(parseAva));
}

/** Split a rendered RDN at its unescaped `+` (multi-valued RDNs are joined by " + "). */
function splitRdn(line: string): string[] {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '\\') i++;
    else if (line[i] === '+') {
      parts.push(line.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(line.slice(start));
  // The padding around " + " is unescaped; spaces belonging to a value are always escaped there.
  return parts.map((p, n) => {
    let s = p;
    if (n > 0 && s.startsWith(' ')) s = s.slice(1);
    if (n < parts.length - 1 && s.endsWith(' ') && !isEscapedAt(s, s.length - 1)) s = s.slice(0, -1);
    return s;
  });
}

/** Whether the character at `idx` is preceded by an odd number of backslashes. */
function isEscapedAt(s: string, idx: number): boolean {
  let n = 0;
  for (let k = idx - 1; k >= 0 && s[k] === '\\'; k--) n++;
  return n % 2 === 1;
}

function parseAva(text: string): Ava {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new Error(`unparseable name attribute: ${JSON.stringify(text)}`);
  return { type: text.slice(0, eq), value: unescapeValue(text.slice(eq + 1)) };
}

/** Undo RFC 2253/4514 escaping: `\c` → c, `\XX` → byte XX (bytes decoded as UTF-8). */
function unescapeValue(s: string): string {
  if (!s.includes('\\')) return s;
  const bytes: number[] = [];
  const encoder = new TextEncoder();
  let lit = '';
  const flush = () => {
    if (lit !== '') bytes.push(...encoder.encode(lit));
    lit = '';
  };
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\\') {
      lit += c;
      continue;
    }
    const hex = s.slice(i + 1, i + 3);
    if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
      flush();
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (i + 1 < s.length) {
      lit += s[++i];
    } else {
      lit += c; // dangling backslash: keep it
    }
  }
  flush();
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** RFC 4514 string form: RDNs most specific first, joined by ",", multi-valued members by "+". */
export function formatName(rdns: Ava[][]): string {
  return rdns
    .map((rdn) => rdn.map((a) => `${a.type}=${escapeValue(a.value)}`).join('+'))
    .reverse()
    .join(',');
}

/** RFC 4514 §2.4 value escaping; control characters as `\XX`. */
export function escapeValue(v: string): string {
  let out = '';
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    const code = c.charCodeAt(0);
    if (code < 0x20 || code === 0x7f) out += '\\' + code.toString(16).toUpperCase().padStart(2, '0');
    else if ('"+,;<>\\'.includes(c)) out += '\\' + c;
    else if (i === 0 && (c === '#' || c === ' ')) out += '\\' + c;
    else if (i === v.length - 1 && c === ' ') out += '\\' + c;
    else out += c;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// IP addresses

/** Node renders IPv6 SANs as eight uppercase groups ("FE80:0:0:0:0:0:0:1"); give RFC 5952 form. */
function compressIPv6(ip: string): string {
  // Only full eight-group forms are rewritten; anything else is already compressed or unusual.
  const groups = ip.toLowerCase().split(':');
  if (groups.length !== 8 || !groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return ip.toLowerCase();
  const hex = groups.map((g) => Number.parseInt(g, 16).toString(16));
  // Longest run of two or more zero groups (the first one on a tie) becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (hex[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && hex[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return hex.join(':');
  return hex.slice(0, best).join(':') + '::' + hex.slice(best + bestLen).join(':');
}
