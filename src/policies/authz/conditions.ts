// Conditions of the authorize stage, compiled once per plan into predicates that only read
// prepared state: claim paths are split, regexes and certificate patterns compiled, and
// `{path.x}` / `{header.x}` / `{query.x}` references parsed into resolvers.

import Type, { type Static } from 'typebox';
import type { Identity, RequestContext } from '../../gateway/context.ts';
import type { CertificateIdentity } from '../../identity/certificate.ts';
import { queryParam } from '../query-params.ts';
import { type PolicyDeps, respond, type Verdict } from '../types.ts';

const referenceHelp =
  'Strings may reference the request: {path.<param>}, {header.<name>}, {query.<name>} (a reference that ' +
  'resolves to nothing never matches; in a rule, {path.<param>} must name a parameter of its route); ' +
  'write a literal brace as {{ or }}.';

const Scalar = Type.Union([Type.String(), Type.Number(), Type.Boolean()]);

export const CertificateMatch = Type.Object(
  {
    spiffeId: Type.Optional(
      Type.String({
        pattern: '^spiffe://',
        description: 'SPIFFE id, exact or with `*` for one path segment (spiffe://corp/ns/*/sa/orders).',
      }),
    ),
    dnsName: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'A DNS SAN, exact or with `*` for one label (*.corp.example); case-insensitive.',
      }),
    ),
    subject: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'Subject in RFC 4514 form (CN=orders,O=Corp), exact or with `*` for one attribute value.',
      }),
    ),
  },
  {
    additionalProperties: false,
    description:
      'Names the verified client certificate must carry (at least one); every one given must match.',
  },
);
export type CertificateMatch = Static<typeof CertificateMatch>;

export const Condition = Type.Object(
  {
    claim: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'Claim name, or a dotted path into nested claims (a name that exists as written wins). For API-key ' +
          'consumers the claims are their metadata plus `sub` (name) and `groups`; otherwise only `sub`.',
      }),
    ),
    equals: Type.Optional(
      Type.Union([Type.String(), Type.Number(), Type.Boolean()], {
        description: `The claim equals this (an array claim: one element does). ${referenceHelp}`,
      }),
    ),
    oneOf: Type.Optional(
      Type.Array(Scalar, {
        minItems: 1,
        description: `The claim equals one of these (an array claim: one element does). ${referenceHelp}`,
      }),
    ),
    exists: Type.Optional(Type.Boolean({ description: 'The claim is present (true) or absent (false).' })),
    pattern: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'Regular expression the whole claim (an array claim: one element) must match.',
      }),
    ),
    group: Type.Optional(
      Type.String({ minLength: 1, description: 'The caller is a consumer in this group.' }),
    ),
    certificate: Type.Optional(CertificateMatch),
  },
  {
    additionalProperties: false,
    description:
      'One condition: `claim` with equals / oneOf / exists / pattern (all given must hold), or `group`, ' +
      'or `certificate`.',
  },
);
export type Condition = Static<typeof Condition>;

/** A compiled condition; the identity is the authenticated caller. */
export type Predicate = (ctx: RequestContext, identity: Identity) => boolean;

/**
 * The caller the authorize stage judges: null for public routes (noAuth) or when no method set
 * an identity. Authorization of nobody fails closed.
 */
export function callerOf(ctx: RequestContext): Identity | null {
  const identity = ctx.identity;
  return identity === null || identity.method === 'noAuth' ? null : identity;
}

export const notAuthenticated: Verdict = Object.freeze(
  respond('forbidden', 'authorization requires an authenticated caller'),
);

// ---------------------------------------------------------------------------------------------
// References: "{path.tenant}", "t-{header.x-tenant}"

type Value = string | number | boolean;
/** A configured value: constant, or resolved per request (undefined: resolves to nothing). */
type Expected = Value | ((ctx: RequestContext) => string | undefined);

const referenceSyntax = /^(path|header|query)\.([^{}]+)$/;

function resolverOf(source: string, name: string): (ctx: RequestContext) => string | undefined {
  const nonEmpty = (v: string | undefined) => (v === undefined || v === '' ? undefined : v);
  if (source === 'path')
    return (ctx) => nonEmpty(Object.hasOwn(ctx.params, name) ? ctx.params[name] : undefined);
  if (source === 'header') {
    const lower = name.toLowerCase();
    return (ctx) => {
      const v = ctx.headers[lower];
      return typeof v === 'string' ? nonEmpty(v) : undefined;
    };
  }
  return (ctx) => {
    const found = queryParam(ctx.query, name);
    return found ? nonEmpty(found.value) : undefined;
  };
}

/**
 * Where `{path.x}` references are checked at compile time: the parameter names of the one route
 * the condition is written for, or null when it is not known (a Policy spanning several routes,
 * where a route without the parameter simply never matches).
 */
export type RouteParams = ReadonlySet<string> | null;

/** The parameter names of a route template (`/t/{tenant}/{**}` → tenant, **). */
export function routeParams(template: string): ReadonlySet<string> {
  const names = new Set<string>();
  for (const m of template.matchAll(/\{([^{}*]+|\*\*)\}/g)) names.add(m[1]!);
  return names;
}

/** Parses a string with references; throws TypeError for a malformed one. */
export function compileTemplate(text: string, params: RouteParams = null): Expected {
  const parts: Array<string | ((ctx: RequestContext) => string | undefined)> = [];
  let literal = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if ((c === '{' || c === '}') && text[i + 1] === c) {
      literal += c;
      i++;
      continue;
    }
    if (c === '}') throw new TypeError(`unmatched } in ${JSON.stringify(text)} (a literal brace is }})`);
    if (c !== '{') {
      literal += c;
      continue;
    }
    const end = text.indexOf('}', i);
    const match = end === -1 ? null : referenceSyntax.exec(text.slice(i + 1, end));
    if (!match)
      throw new TypeError(
        `bad reference in ${JSON.stringify(text)}: use {path.<param>}, {header.<name>} or {query.<name>} ` +
          '(a literal brace is {{)',
      );
    if (params !== null && match[1] === 'path' && !params.has(match[2]!)) {
      // A misspelt parameter would never match: harmless in `allow`, but it would silently
      // switch a `deny` condition off. Refused where the route is known.
      throw new TypeError(`{path.${match[2]}}: the route has no parameter ${match[2]}`);
    }
    if (literal !== '') parts.push(literal);
    literal = '';
    parts.push(resolverOf(match[1]!, match[2]!));
    i = end;
  }
  if (literal !== '') parts.push(literal);
  if (parts.every((p) => typeof p === 'string')) return parts.join('');
  if (parts.length === 1) return parts[0] as (ctx: RequestContext) => string | undefined;
  return (ctx) => {
    let out = '';
    for (const part of parts) {
      if (typeof part === 'string') out += part;
      else {
        const v = part(ctx);
        if (v === undefined) return undefined;
        out += v;
      }
    }
    return out;
  };
}

function compileValue(value: Value, params: RouteParams): Expected {
  return typeof value === 'string' ? compileTemplate(value, params) : value;
}

// ---------------------------------------------------------------------------------------------
// Claims

/** The claim at a name or dotted path; undefined when absent. */
function claimReader(name: string): (identity: Identity) => unknown {
  const path = name.includes('.') ? name.split('.') : null;
  const fromClaims = (claims: Readonly<Record<string, unknown>>): unknown => {
    if (Object.hasOwn(claims, name)) return claims[name];
    if (path === null) return undefined;
    let node: unknown = claims;
    for (const step of path) {
      if (node === null || typeof node !== 'object' || Array.isArray(node) || !Object.hasOwn(node, step))
        return undefined;
      node = (node as Record<string, unknown>)[step];
    }
    return node;
  };
  return (identity) => {
    if (identity.claims) return fromClaims(identity.claims);
    const consumer = identity.consumer;
    if (consumer) {
      if (name === 'sub') return consumer.name;
      if (name === 'groups') return consumer.groups;
      return Object.hasOwn(consumer.metadata, name) ? consumer.metadata[name] : undefined;
    }
    return name === 'sub' ? (identity.subject ?? undefined) : undefined;
  };
}

/** Strings compare as strings; a number or boolean claim compares to a string by its text. */
function same(actual: unknown, expected: Value): boolean {
  if (actual === expected) return true;
  return (
    typeof expected === 'string' &&
    (typeof actual === 'number' || typeof actual === 'boolean') &&
    String(actual) === expected
  );
}

/** True when the claim (or, for an array claim, one of its elements) satisfies `test`. */
function anyValue(actual: unknown, test: (v: unknown) => boolean): boolean {
  if (Array.isArray(actual)) {
    for (const element of actual) if (test(element)) return true;
    return false;
  }
  return test(actual);
}

function equalsOneOf(actual: unknown, expected: readonly Expected[], ctx: RequestContext): boolean {
  for (const e of expected) {
    const value = typeof e === 'function' ? e(ctx) : e;
    if (value !== undefined && anyValue(actual, (v) => same(v, value))) return true;
  }
  return false;
}

function compileClaimCondition(condition: Condition, params: RouteParams): Predicate {
  const read = claimReader(condition.claim!);
  const checks: Array<(actual: unknown, ctx: RequestContext) => boolean> = [];
  if (condition.exists !== undefined) {
    const want = condition.exists;
    checks.push((actual) => (actual !== undefined && actual !== null) === want);
  }
  if (condition.equals !== undefined) {
    const expected = [compileValue(condition.equals, params)];
    checks.push((actual, ctx) => equalsOneOf(actual, expected, ctx));
  }
  if (condition.oneOf !== undefined) {
    const expected = condition.oneOf.map((v) => compileValue(v, params));
    checks.push((actual, ctx) => equalsOneOf(actual, expected, ctx));
  }
  if (condition.pattern !== undefined) {
    let regex: RegExp;
    try {
      regex = new RegExp(`^(?:${condition.pattern})$`, 'u');
    } catch (err) {
      throw new TypeError(`pattern is not a valid regular expression: ${(err as Error).message}`);
    }
    checks.push((actual) => anyValue(actual, (v) => typeof v === 'string' && regex.test(v)));
  }
  if (checks.length === 0)
    throw new TypeError(`claim ${condition.claim} needs equals, oneOf, exists or pattern`);
  return (ctx, identity) => {
    const actual = read(identity);
    for (const check of checks) if (!check(actual, ctx)) return false;
    return true;
  };
}

// ---------------------------------------------------------------------------------------------
// Certificates

/** `*` stands for one run of characters that are not a separator. */
function namePattern(text: string, oneSegment: string, flags: string): RegExp {
  if (text.includes('**'))
    throw new TypeError(`${JSON.stringify(text)}: * stands for one segment; ** is not supported`);
  const body = text
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'))
    .join(oneSegment);
  return new RegExp(`^${body}$`, flags);
}

/** A compiled certificate match: every name given must match. */
export function compileCertificateMatch(match: CertificateMatch): (cert: CertificateIdentity) => boolean {
  const checks: Array<(cert: CertificateIdentity) => boolean> = [];
  if (match.spiffeId !== undefined) {
    const spiffeId = match.spiffeId;
    if (spiffeId.includes('*')) {
      const regex = namePattern(spiffeId, '[^/]+', '');
      checks.push((cert) => cert.spiffeId !== null && regex.test(cert.spiffeId));
    } else checks.push((cert) => cert.spiffeId === spiffeId);
  }
  if (match.dnsName !== undefined) {
    const regex = namePattern(match.dnsName, '[^.]+', 'i');
    checks.push((cert) => cert.dnsNames.some((name) => regex.test(name)));
  }
  if (match.subject !== undefined) {
    const subject = match.subject;
    if (subject.includes('*')) {
      // One attribute value: escaped characters included, unescaped separators (, + =) not.
      const regex = namePattern(subject, '(?:[^,+=\\\\]|\\\\.)+', '');
      checks.push((cert) => regex.test(cert.subject));
    } else checks.push((cert) => cert.subject === subject);
  }
  if (checks.length === 0) throw new TypeError('certificate needs spiffeId, dnsName or subject');
  return (cert) => {
    for (const check of checks) if (!check(cert)) return false;
    return true;
  };
}

/** The verified client certificate of the request: the identity's, else the connection's. */
export function certificateOf(ctx: RequestContext, identity: Identity): CertificateIdentity | null {
  return identity.certificate ?? ctx.peerCertificate;
}

// ---------------------------------------------------------------------------------------------

/** Compiles one condition; throws TypeError (reported at the policy) for an unusable one. */
export function compileCondition(condition: Condition, params: RouteParams = null): Predicate {
  const kinds = (['claim', 'group', 'certificate'] as const).filter((k) => condition[k] !== undefined);
  if (kinds.length !== 1) throw new TypeError('a condition has exactly one of claim, group or certificate');
  if (condition.claim !== undefined) return compileClaimCondition(condition, params);
  const operators = (['equals', 'oneOf', 'exists', 'pattern'] as const).filter(
    (k) => condition[k] !== undefined,
  );
  if (operators.length > 0)
    throw new TypeError(`${operators.join(', ')}: only for a claim, not with group or certificate`);
  if (condition.group !== undefined) {
    const group = condition.group;
    return (_ctx, identity) => identity.consumer?.groups.includes(group) ?? false;
  }
  const matches = compileCertificateMatch(condition.certificate!);
  return (ctx, identity) => {
    const cert = certificateOf(ctx, identity);
    return cert !== null && matches(cert);
  };
}

/** Compiles a list of conditions, naming the failing entry in the error. */
export function compileConditions(conditions: readonly Condition[], params: RouteParams = null): Predicate[] {
  return conditions.map((condition, index) => {
    try {
      return compileCondition(condition, params);
    } catch (err) {
      throw new TypeError(`condition ${index}: ${(err as Error).message}`);
    }
  });
}

/** The route parameters to check references against: known only for a rule's own conditions. */
export function paramsFor(deps: PolicyDeps): RouteParams {
  return deps.rule && !deps.policy ? routeParams(deps.rule.template) : null;
}
