import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { ProblemCode } from '../errors.ts';
import { type CertificateIdentity, peerIdentity } from '../identity/certificate.ts';
import { unmapIPv4 } from '../plan/trusted-proxies.ts';
import type { RouteMatch } from '../plan/router.ts';
import type { CompiledRule, Plan } from '../plan/types.ts';
import { canonicalTarget, parseAuthority } from './canonical.ts';
import type { RequestContext } from './context.ts';
import { checkRawHeaders, clientAddress, requestIdFor } from './headers.ts';

export type Admission =
  | { ok: true; ctx: RequestContext; rawHost: string }
  | { ok: false; code: ProblemCode; detail: string; requestId: string };

const peerIdentities = new WeakMap<object, CertificateIdentity | null>();

/** Identity of the verified client certificate, computed once per TLS connection (also for the forward proxy). */
export function certificateOf(req: IncomingMessage): CertificateIdentity | null {
  const socket = req.socket as TLSSocket;
  if (!socket.encrypted) return null;
  let identity = peerIdentities.get(socket);
  if (identity === undefined) {
    identity = peerIdentity(socket);
    peerIdentities.set(socket, identity);
  }
  return identity;
}

/** A request as admission sees it: from a listener, or described by a proxy or an operator (explain). */
export interface RequestFacts {
  readonly method: string;
  /** The request target as received (origin-form). */
  readonly target: string;
  readonly rawHeaders: readonly string[];
  readonly headers: IncomingHttpHeaders;
  readonly peerAddress: string;
  readonly listener: RequestContext['listener'];
  readonly peerCertificate: CertificateIdentity | null;
  /** A client certificate was presented but did not verify (clientAuth: optional). */
  readonly certificateRejected: boolean;
}

/**
 * Turns a raw request into the canonical one and routes it, or says why it is refused.
 * Everything later (policies, forwarding, logs) uses what is computed here, once.
 */
export function admit(req: IncomingMessage, plan: Plan, listener: RequestContext['listener']): Admission {
  const tls = listener.protocol === 'https';
  const socket = req.socket as TLSSocket;
  return admitRequest(plan, {
    method: req.method ?? 'GET',
    target: req.url ?? '',
    rawHeaders: req.rawHeaders,
    headers: req.headers,
    peerAddress: req.socket.remoteAddress ?? '',
    listener,
    peerCertificate: tls ? certificateOf(req) : null,
    // clientAuth: optional lets the handshake through without a valid certificate; one that was
    // sent but does not verify must not be treated like no certificate at all.
    certificateRejected: tls && !socket.authorized && Boolean(socket.getPeerCertificate?.()?.raw),
  });
}

/** The checks and routing of admission, for a request from any source. */
export function admitRequest(plan: Plan, facts: RequestFacts): Admission {
  const peerAddress = unmapIPv4(facts.peerAddress);
  const trustedPeer = plan.trustedProxies(peerAddress);
  const { headers, method } = facts;
  const requestId = requestIdFor(headers, trustedPeer, randomUUID);
  const reject = (code: ProblemCode, detail: string): Admission => ({ ok: false, code, detail, requestId });

  const headerProblem = checkRawHeaders(facts.rawHeaders);
  if (headerProblem) return reject(headerProblem.code, headerProblem.detail);
  const target = canonicalTarget(facts.target);
  if (!target.ok) return reject(target.code, target.detail);
  const rawHost = headers.host ?? '';
  const authority = parseAuthority(rawHost);
  if (!authority.ok) return reject(authority.code, authority.detail);
  const match =
    plan.router.match(authority.hostname, method, target.path) ??
    preflightMatch(plan, authority.hostname, method, target.path, headers);
  if (!match) return reject('route_not_found', `no rule for ${method} ${target.path}`);
  if (facts.certificateRejected)
    return reject('client_certificate_invalid', 'the client certificate did not verify');
  const ctx: RequestContext = {
    id: requestId,
    plan,
    rule: match.value,
    method,
    host: authority.hostname,
    path: target.path,
    query: target.query,
    params: match.params,
    headers,
    client: {
      address: clientAddress(headers, peerAddress, trustedPeer, plan.trustedProxies),
      peerAddress,
      trustedPeer,
    },
    listener: facts.listener,
    peerCertificate: facts.peerCertificate,
    identity: null,
    upstreamHeaders: null,
    traceparent: undefined,
  };
  return { ok: true, ctx, rawHost };
}

/**
 * A CORS preflight (OPTIONS with Origin and Access-Control-Request-Method) that no rule takes as
 * OPTIONS goes to the rule serving the method it asks about, when that rule has a `request.cors`
 * policy: the policy answers it, and it is never forwarded. So a GET-only rule with CORS needs no
 * OPTIONS in its methods, sibling rules (GET and POST on one path) each judge the preflights for
 * their own method, and a plain OPTIONS request still finds no rule.
 */
function preflightMatch(
  plan: Plan,
  host: string,
  method: string,
  path: string,
  headers: IncomingHttpHeaders,
): RouteMatch<CompiledRule> | null {
  const requested = headers['access-control-request-method'];
  if (method !== 'OPTIONS' || headers.origin === undefined || typeof requested !== 'string') return null;
  const match = plan.router.match(host, requested, path);
  return match?.value.corsPreflights ? match : null;
}

/** The path sent upstream: the canonical path, prefix stripped, the target's base path in front. */
export function upstreamPath(ctx: RequestContext): string {
  const { rule } = ctx;
  let path = ctx.path;
  const prefix = rule.stripPrefix;
  if (
    prefix !== null &&
    path.startsWith(prefix) &&
    (path.length === prefix.length || path[prefix.length] === '/')
  ) {
    path = path.slice(prefix.length) || '/';
  }
  path = rule.upstream.basePath + path;
  const query = ctx.upstreamQuery ?? ctx.query;
  return query === '' ? path : `${path}?${query}`;
}
