// Header value templates: `"{{ identity.sub }}"`, `"tenant={{ claims.tenant }}"`. A template is
// parsed once, when the plan is compiled, into a function over the request context: per request
// there is no parsing and no evaluation of configured text, only property reads.

import type { RequestContext } from '../../../gateway/context.ts';

/** Renders one header value; undefined means the header is not set (the client's copy is still removed). */
export type HeaderTemplate = (ctx: RequestContext) => string | undefined;

/** A variable's raw value, before rendering to text. */
type Read = (ctx: RequestContext) => unknown;

const certificateFields = [
  'subject',
  'commonName',
  'spiffeId',
  'dnsNames',
  'uris',
  'ips',
  'emails',
  'serialNumber',
  'fingerprint256',
  'notAfter',
  'issuer',
] as const;

const certificateOf = (ctx: RequestContext) => ctx.identity?.certificate ?? ctx.peerCertificate;

/** Variables without a parameter. */
const fixedVariables: Readonly<Record<string, Read>> = {
  'identity.sub': (ctx) => ctx.identity?.subject,
  'identity.subject': (ctx) => ctx.identity?.subject,
  'identity.method': (ctx) => ctx.identity?.method,
  'identity.provider': (ctx) => ctx.identity?.provider,
  // Scopes are a set: space-separated, like the OAuth `scope` claim.
  'identity.scopes': (ctx) => {
    const scopes = ctx.identity?.scopes;
    return scopes && scopes.size > 0 ? [...scopes].join(' ') : undefined;
  },
  'consumer.name': (ctx) => ctx.identity?.consumer?.name,
  'consumer.groups': (ctx) => ctx.identity?.consumer?.groups,
  token: (ctx) => ctx.internalToken,
  'request.id': (ctx) => ctx.id,
  'request.method': (ctx) => ctx.method,
  'request.host': (ctx) => ctx.host,
  'request.path': (ctx) => ctx.path,
  'client.address': (ctx) => ctx.client.address,
  ...Object.fromEntries(
    certificateFields.map((field) => [
      `certificate.${field}`,
      (ctx: RequestContext) => certificateOf(ctx)?.[field],
    ]),
  ),
};

/** Variables named by a prefix and a parameter: everything after the prefix, taken literally. */
const prefixedVariables: ReadonlyArray<readonly [string, (name: string) => Read]> = [
  // Claims of a verified token; for an apiKey identity, the Consumer's metadata (as authorization reads them).
  [
    'claims.',
    (name) => (ctx) => {
      const identity = ctx.identity;
      if (!identity) return undefined;
      const claims = identity.claims;
      if (claims && Object.hasOwn(claims, name)) return claims[name];
      const metadata = identity.consumer?.metadata;
      return metadata && Object.hasOwn(metadata, name) ? metadata[name] : undefined;
    },
  ],
  [
    'consumer.metadata.',
    (name) => (ctx) => {
      const metadata = ctx.identity?.consumer?.metadata;
      return metadata && Object.hasOwn(metadata, name) ? metadata[name] : undefined;
    },
  ],
  ['params.', (name) => (ctx) => (Object.hasOwn(ctx.params, name) ? ctx.params[name] : undefined)],
];

/** Every variable a template may use, for error messages and the docs. */
export const templateVariables: readonly string[] = [
  ...Object.keys(fixedVariables),
  ...prefixedVariables.map(([prefix]) => `${prefix}<name>`),
];

function variable(expression: string): Read | undefined {
  const fixed = fixedVariables[expression];
  if (fixed) return fixed;
  for (const [prefix, make] of prefixedVariables)
    if (expression.startsWith(prefix) && expression.length > prefix.length)
      return make(expression.slice(prefix.length));
  return undefined;
}

/**
 * A value as header text. Arrays are joined with "," (HTTP list syntax); objects become JSON;
 * null, empty strings and empty arrays are nothing.
 */
function render(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value === '' ? undefined : value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  if (Array.isArray(value)) {
    const items = value.map(render).filter((v) => v !== undefined);
    return items.length > 0 ? items.join(',') : undefined;
  }
  return JSON.stringify(value);
}

// Header values may hold visible ASCII, space and tab (RFC 9110 §5.5). Control characters (CR and
// LF above all: header injection) are removed; other characters are percent-encoded as UTF-8,
// because Node refuses characters above U+00FF and would mangle Latin-1 into mojibake.
const needsCleaning = /[^\x20-\x7e]/;
const controlCharacters = /[\x00-\x1f\x7f]/g;
const nonAscii = /[^\x00-\x7f]+/gu;

/** Makes text safe as a header value; undefined when nothing is left. */
export function sanitizeHeaderValue(text: string): string | undefined {
  let value = text;
  if (needsCleaning.test(value)) {
    value = value
      .toWellFormed()
      .replace(controlCharacters, '')
      .replace(nonAscii, (s) => encodeURIComponent(s));
  }
  value = value.trim();
  return value === '' ? undefined : value;
}

const placeholder = /\{\{\s*([^{}]*?)\s*\}\}/g;

/**
 * Compiles a template. Throws TypeError naming every unknown variable, an unclosed `{{`, or
 * control characters in the literal text.
 */
export function compileTemplate(source: string): HeaderTemplate {
  const parts: Array<string | Read> = [];
  const unknown: string[] = [];
  let last = 0;
  const literal = (text: string) => {
    if (text.includes('{{') || text.includes('}}'))
      throw new TypeError(`unbalanced {{ }} in template ${JSON.stringify(source)}`);
    if (/[\x00-\x1f\x7f]/.test(text))
      throw new TypeError(`control characters in template ${JSON.stringify(source)}`);
    if (text !== '') parts.push(text.toWellFormed().replace(nonAscii, (s) => encodeURIComponent(s)));
  };
  for (const match of source.matchAll(placeholder)) {
    literal(source.slice(last, match.index));
    last = match.index + match[0].length;
    const expression = match[1]!;
    const read = variable(expression);
    if (read) parts.push(read);
    else unknown.push(expression === '' ? '(empty)' : expression);
  }
  literal(source.slice(last));
  if (unknown.length > 0)
    throw new TypeError(
      `unknown template variable${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; known: ${templateVariables.join(', ')}`,
    );

  const reads = parts.filter((p): p is Read => typeof p !== 'string');
  if (reads.length === 0) {
    const value = sanitizeHeaderValue(source);
    return () => value;
  }
  if (parts.length === 1) {
    const read = reads[0]!;
    return (ctx) => valueText(read(ctx));
  }
  // With literal text around variables, a missing variable leaves the header unset rather than
  // sending a half-filled value ("Bearer ", "tenant=").
  return (ctx) => {
    let out = '';
    for (const part of parts) {
      if (typeof part === 'string') {
        out += part;
        continue;
      }
      const text = valueText(part(ctx));
      if (text === undefined) return undefined;
      out += text;
    }
    return out.trim() || undefined;
  };
}

function valueText(value: unknown): string | undefined {
  const text = render(value);
  return text === undefined ? undefined : sanitizeHeaderValue(text);
}
