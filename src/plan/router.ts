// The route matcher: one path trie per host key, so the cost of a lookup follows the length of the
// request path rather than the number of configured routes.
//
// Templates are split on "/" after the leading slash, exactly like request paths:
//   "/"      -> [""]
//   "/a"     -> ["a"]
//   "/a/"    -> ["a", ""]   (the trailing empty segment is an ordinary literal "")
// so "/a" and "/a/" are different templates and match different paths. That is deliberate: the
// gateway must not guess whether an upstream treats them the same, and silently folding them would
// let one route answer for a path the operator never configured.
//
// Segment kinds, in precedence order when several could match the same request segment:
//   literal      exact, case-sensitive comparison with the raw (still percent-encoded) segment
//   {name}, {*}  any single non-empty segment; {name} is captured (percent-decoded), {*} is not
//   {**}         the rest of the path, zero or more segments, only as the last template segment
//
// Matching is a depth-first walk that tries the children of a node in that order and backtracks when
// a branch dead-ends (no deeper node, no route for the method, or a param that fails to decode).
// Every trie node sits at a fixed depth and each step consumes exactly one segment, so a node is
// reached at most once per lookup: backtracking never costs more than the trie nodes that fit the
// request path, whatever the number of rules.

export type RouteConflict = { message: string; existing: string; added: string };

export class RouteConflictError extends Error {
  readonly conflict: RouteConflict;

  constructor(conflict: RouteConflict) {
    super(conflict.message);
    this.name = 'RouteConflictError';
    this.conflict = conflict;
  }
}

export interface RouteMatch<T> {
  value: T;
  params: Record<string, string>;
  template: string;
}

interface RouteEntry<T> {
  readonly value: T;
  readonly template: string;
  /** One slot per single-segment param in template order; null for {*}, which is matched but not kept. */
  readonly paramNames: readonly (string | null)[];
  readonly hasRest: boolean;
  /** null = every method. */
  readonly methods: readonly string[] | null;
}

class TrieNode<T> {
  literals: Map<string, TrieNode<T>> | null = null;
  /** {name} and {*} share this child: they differ only in what is captured, not in what matches. */
  param: TrieNode<T> | null = null;
  /** {**} child; always a leaf because {**} must be the last segment. */
  rest: TrieNode<T> | null = null;
  /** Invariant: when anyMethod is set, byMethod is empty, and vice versa (see #conflictAt). */
  anyMethod: RouteEntry<T> | null = null;
  byMethod: Map<string, RouteEntry<T>> | null = null;
}

type Segment =
  | { readonly kind: 'literal'; readonly text: string }
  | { readonly kind: 'param'; readonly name: string | null }
  | { readonly kind: 'rest' };

type HostKey =
  | { readonly kind: 'exact'; readonly name: string }
  | { readonly kind: 'wildcard'; readonly suffix: string }
  | { readonly kind: 'any' };

const paramNamePattern = /^[A-Za-z_][A-Za-z0-9_]*$/;
// RFC 3986 pchar minus pct-encoded (checked separately): unreserved, sub-delims, ":" and "@".
const literalCharsPattern = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%]*$/;
const badPercentPattern = /%(?![0-9A-Fa-f]{2})/;
const encodedSlashPattern = /%2f/i;
// RFC 9110 token characters, restricted to upper case because request methods are case-sensitive and
// the gateway compares them as given.
const methodPattern = /^[A-Z0-9!#$%&'*+.^_`|~-]+$/;
const hostLabel = '[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?';
const exactHostPattern = new RegExp(`^${hostLabel}(?:\\.${hostLabel})*$`);
const ipv6HostPattern = /^\[[0-9a-f:.]+\]$/;

function parseTemplate(template: string): Segment[] {
  if (typeof template !== 'string' || !template.startsWith('/')) {
    throw new TypeError(`Invalid route template ${JSON.stringify(template)}: it must start with "/"`);
  }
  const raw = template.slice(1).split('/');
  const segments: Segment[] = [];
  const seen = new Set<string>();
  const fail = (why: string): never => {
    throw new TypeError(`Invalid route template ${JSON.stringify(template)}: ${why}`);
  };
  for (let i = 0; i < raw.length; i++) {
    const text = raw[i]!;
    if (text.includes('{') || text.includes('}')) {
      if (!text.startsWith('{') || !text.endsWith('}') || text.length < 3) {
        fail(`segment "${text}" mixes literal text and braces; a param must be the whole segment`);
      }
      const inner = text.slice(1, -1);
      if (inner === '**') {
        if (i !== raw.length - 1) fail('"{**}" is only allowed as the last segment');
        segments.push({ kind: 'rest' });
      } else if (inner === '*') {
        segments.push({ kind: 'param', name: null });
      } else {
        if (!paramNamePattern.test(inner)) {
          fail(`param name "${inner}" must be letters, digits or "_" and not start with a digit`);
        }
        // Assigning "__proto__" on a plain object would change its prototype instead of adding a key.
        if (inner === '__proto__') fail('param name "__proto__" is reserved');
        if (seen.has(inner)) fail(`param name "${inner}" is used more than once`);
        seen.add(inner);
        segments.push({ kind: 'param', name: inner });
      }
      continue;
    }
    // Request paths arrive normalised and percent-encoded, so literals that could never equal such a
    // segment are configuration mistakes; reject them instead of adding dead routes.
    if (text === '.' || text === '..') fail('dot segments never appear in a normalised path');
    if (!literalCharsPattern.test(text))
      fail(`segment "${text}" contains characters that must be percent-encoded`);
    if (badPercentPattern.test(text)) fail(`segment "${text}" has a "%" not followed by two hex digits`);
    if (encodedSlashPattern.test(text))
      fail(`segment "${text}" contains %2F, which requests may never carry`);
    segments.push({ kind: 'literal', text });
  }
  return segments;
}

function parseHost(host: string): HostKey {
  if (typeof host === 'string') {
    if (host.startsWith('*.')) {
      const suffix = host.slice(2);
      if (exactHostPattern.test(suffix)) return { kind: 'wildcard', suffix };
    } else if (exactHostPattern.test(host) || ipv6HostPattern.test(host)) {
      return { kind: 'exact', name: host };
    }
  }
  throw new TypeError(
    `Invalid route host ${JSON.stringify(host)}: expected a lowercase host name or "*.<domain>"; ` +
      'omit hosts to match any host',
  );
}

function parseMethods(methods: readonly string[] | undefined): string[] | null {
  if (methods === undefined || methods.length === 0) return null;
  const unique: string[] = [];
  for (const method of methods) {
    if (typeof method !== 'string' || !methodPattern.test(method)) {
      throw new TypeError(`Invalid route method ${JSON.stringify(method)}: expected an uppercase token`);
    }
    if (!unique.includes(method)) unique.push(method);
  }
  return unique;
}

function describe(methods: readonly string[] | null, template: string): string {
  return `${methods === null ? '*' : methods.join(',')} ${template}`;
}

function hostLabelOf(key: HostKey): string {
  if (key.kind === 'exact') return key.name;
  if (key.kind === 'wildcard') return `*.${key.suffix}`;
  return '*';
}

/** Decodes one captured value; null means the encoding is broken and the branch must not match. */
function decode(raw: string): string | null {
  if (!raw.includes('%')) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return null;
  }
}

export class Router<T> {
  readonly #exact = new Map<string, TrieNode<T>>();
  /** Keyed by the suffix after "*.", so a lookup walks the request host's labels, never this map. */
  readonly #wildcard = new Map<string, TrieNode<T>>();
  readonly #any = new TrieNode<T>();
  readonly #listing: Array<{ host: string; methods: string[] | null; template: string }> = [];
  // Capture positions of single-segment params, reused across lookups so a miss allocates no
  // params object. Safe to share: match() is synchronous and calls no user code.
  readonly #capStart: number[] = [];
  readonly #capEnd: number[] = [];

  add(
    hosts: readonly string[] | undefined,
    methods: readonly string[] | undefined,
    template: string,
    value: T,
  ): void {
    const segments = parseTemplate(template);
    const methodList = parseMethods(methods);
    const keys: HostKey[] = [];
    const seenHosts = new Set<string>();
    for (const host of hosts ?? []) {
      const key = parseHost(host);
      // A repeated host would otherwise make the route conflict with itself.
      if (seenHosts.has(host)) continue;
      seenHosts.add(host);
      keys.push(key);
    }
    if (keys.length === 0) keys.push({ kind: 'any' });

    const paramNames: (string | null)[] = [];
    for (const segment of segments) if (segment.kind === 'param') paramNames.push(segment.name);
    const route: RouteEntry<T> = {
      value,
      template,
      paramNames,
      hasRest: segments.at(-1)?.kind === 'rest',
      methods: methodList,
    };

    // Check every host before touching any trie so a conflict on the second host cannot leave the
    // route half-registered on the first.
    for (const key of keys) {
      const root = this.#root(key, false);
      const node = root && Router.#locate(root, segments, false);
      const existing = node && Router.#conflictAt(node, methodList);
      if (existing) {
        const host = hostLabelOf(key);
        throw new RouteConflictError({
          message:
            `Route "${describe(methodList, template)}" conflicts with "${describe(existing.methods, existing.template)}" ` +
            `on host "${host}": both match the same paths and methods with equal precedence`,
          existing: existing.template,
          added: template,
        });
      }
    }

    for (const key of keys) {
      const node = Router.#locate(this.#root(key, true)!, segments, true)!;
      if (methodList === null) {
        node.anyMethod = route;
      } else {
        node.byMethod ??= new Map();
        for (const method of methodList) node.byMethod.set(method, route);
      }
      this.#listing.push({ host: hostLabelOf(key), methods: methodList && [...methodList], template });
    }
  }

  match(host: string, method: string, path: string): RouteMatch<T> | null {
    if (path.length === 0 || path.charCodeAt(0) !== 47 /* "/" */) return null;

    const exact = this.#exact.get(host);
    if (exact) {
      const found = this.#walk(exact, method, path, 1, 0);
      if (found) return found;
    }

    if (this.#wildcard.size > 0) {
      // Most specific first: for a.b.example.com try "b.example.com", then "example.com", then "com".
      // Starting after the first dot guarantees at least one label in front of the suffix, so
      // "*.example.com" never matches "example.com" itself.
      let dot = host.indexOf('.');
      while (dot > 0) {
        const root = this.#wildcard.get(host.slice(dot + 1));
        if (root) {
          const found = this.#walk(root, method, path, 1, 0);
          if (found) return found;
        }
        dot = host.indexOf('.', dot + 1);
      }
    }

    return this.#walk(this.#any, method, path, 1, 0);
  }

  routes(): Array<{ host: string; methods: string[] | null; template: string }> {
    return this.#listing.map((entry) => ({
      host: entry.host,
      methods: entry.methods && [...entry.methods],
      template: entry.template,
    }));
  }

  #root(key: HostKey, create: boolean): TrieNode<T> | null {
    if (key.kind === 'any') return this.#any;
    const map = key.kind === 'exact' ? this.#exact : this.#wildcard;
    const name = key.kind === 'exact' ? key.name : key.suffix;
    let root = map.get(name) ?? null;
    if (!root && create) {
      root = new TrieNode<T>();
      map.set(name, root);
    }
    return root;
  }

  /** Follows (or, with create, builds) the node for a template; null if it does not exist yet. */
  static #locate<T>(root: TrieNode<T>, segments: readonly Segment[], create: boolean): TrieNode<T> | null {
    let node = root;
    for (const segment of segments) {
      let next: TrieNode<T> | null;
      if (segment.kind === 'literal') {
        next = node.literals?.get(segment.text) ?? null;
        if (!next && create) {
          next = new TrieNode<T>();
          node.literals ??= new Map();
          node.literals.set(segment.text, next);
        }
      } else if (segment.kind === 'param') {
        next = node.param;
        if (!next && create) next = node.param = new TrieNode<T>();
      } else {
        next = node.rest;
        if (!next && create) next = node.rest = new TrieNode<T>();
      }
      if (!next) return null;
      node = next;
    }
    return node;
  }

  /**
   * The existing route that would make `methods` ambiguous at this node, if any. An any-method route
   * shares the node with nothing: letting an explicit route silently shadow part of it would make the
   * outcome depend on the method in a way nobody configured, so equal precedence fails closed.
   */
  static #conflictAt<T>(node: TrieNode<T>, methods: readonly string[] | null): RouteEntry<T> | null {
    if (node.anyMethod) return node.anyMethod;
    if (!node.byMethod || node.byMethod.size === 0) return null;
    if (methods === null) return node.byMethod.values().next().value ?? null;
    for (const method of methods) {
      const existing = node.byMethod.get(method);
      if (existing) return existing;
    }
    return null;
  }

  /**
   * Matches path[pos..] against the subtree at node. `pos` is the index just after the "/" that opens
   * the current segment; pos > path.length means every segment has been consumed. `ncap` is the number
   * of single-segment params captured so far on this branch.
   */
  #walk(node: TrieNode<T>, method: string, path: string, pos: number, ncap: number): RouteMatch<T> | null {
    if (pos > path.length) {
      const found = this.#accept(node, method, path, ncap, -1);
      if (found) return found;
      // "{**}" also matches zero remaining segments: "/files/{**}" answers "/files".
      return node.rest && this.#accept(node.rest, method, path, ncap, -1);
    }

    let end = path.indexOf('/', pos);
    if (end === -1) end = path.length;

    if (node.literals) {
      const child = node.literals.get(path.slice(pos, end));
      if (child) {
        const found = this.#walk(child, method, path, end + 1, ncap);
        if (found) return found;
      }
    }
    // An empty segment ("/users/" against "/users/{id}") is not a value: params only take non-empty
    // segments, so a missing id falls through to a literal "" or {**} route instead of matching id="".
    if (node.param && end > pos) {
      this.#capStart[ncap] = pos;
      this.#capEnd[ncap] = end;
      const found = this.#walk(node.param, method, path, end + 1, ncap + 1);
      if (found) return found;
    }
    return node.rest && this.#accept(node.rest, method, path, ncap, pos);
  }

  /** Builds the match for the route at node that takes `method`; restStart < 0 means an empty {**}. */
  #accept(
    node: TrieNode<T>,
    method: string,
    path: string,
    ncap: number,
    restStart: number,
  ): RouteMatch<T> | null {
    const route = node.byMethod?.get(method) ?? node.anyMethod;
    if (!route) return null;
    const params: Record<string, string> = {};
    for (let i = 0; i < ncap; i++) {
      const name = route.paramNames[i];
      if (name === null || name === undefined) continue;
      const value = decode(path.slice(this.#capStart[i]!, this.#capEnd[i]!));
      if (value === null) return null;
      params[name] = value;
    }
    if (route.hasRest) {
      const value = restStart < 0 ? '' : decode(path.slice(restStart));
      if (value === null) return null;
      params['**'] = value;
    }
    return { value: route.value, params, template: route.template };
  }
}
