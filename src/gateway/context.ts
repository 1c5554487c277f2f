import type { IncomingHttpHeaders } from 'node:http';
import type { CertificateIdentity } from '../identity/certificate.ts';
import type { CompiledRule, Plan } from '../plan/types.ts';

/** Who the caller is, as established by the authenticate stage. */
export interface Identity {
  /** The authentication method that established it (`noAuth`, `anonymous`, `jwt`, `introspection`, `apiKey`, `mtls`). */
  method: string;
  /** Subject (`sub`, consumer name, certificate id); null for public routes. */
  subject: string | null;
  /** `namespace/name` of the IdentityProvider that vouched for it (jwt, introspection). */
  provider?: string;
  /** Verified token claims (jwt, introspection). */
  claims?: Readonly<Record<string, unknown>>;
  /** Scopes granted, from `scp`, `scope` or `scopes` (string or array). */
  scopes?: ReadonlySet<string>;
  /** The Consumer resource (apiKey). */
  consumer?: {
    readonly name: string;
    readonly groups: readonly string[];
    readonly metadata: Readonly<Record<string, string>>;
  };
  /** The verified client certificate (mtls, or any request on an mTLS listener). */
  certificate?: CertificateIdentity;
}

/**
 * State of one request: the only mutable state in the request path. Policies read the canonical
 * request and record effects here; the forwarder applies the effects once.
 */
export interface RequestContext {
  readonly id: string;
  readonly plan: Plan;
  readonly rule: CompiledRule;
  readonly method: string;
  /** Lowercase host name, without port. */
  readonly host: string;
  /** Canonical path: what was routed on and what is forwarded. */
  readonly path: string;
  /** Raw query string without `?`; empty when none. */
  readonly query: string;
  /** Path parameters from the route template, percent-decoded. */
  readonly params: Readonly<Record<string, string>>;
  readonly headers: IncomingHttpHeaders;
  readonly client: {
    /** The caller's address: the peer, or the first untrusted hop of X-Forwarded-For behind trusted proxies. */
    readonly address: string;
    readonly peerAddress: string;
    readonly trustedPeer: boolean;
  };
  readonly listener: { readonly name: string; readonly protocol: 'http' | 'https' };
  /** Identity of a verified client certificate (https listeners with clientAuth). */
  readonly peerCertificate: CertificateIdentity | null;
  identity: Identity | null;
  /** Headers to set on the upstream request (null: only remove); the client's copies are removed first. */
  upstreamHeaders: Map<string, string | null> | null;
  /** Headers added to whatever the client is answered (forwarded response, error or answer), e.g. CORS, RateLimit. */
  responseHeaders?: Map<string, string>;
  /** Query string sent upstream when a policy changed it (e.g. removed an API key); otherwise `query`. */
  upstreamQuery?: string;
  /** The internal JWT minted for this request by `mutate.token` (header templates read it as `{{ token }}`). */
  internalToken?: string;
  /**
   * W3C `traceparent` of the upstream call's span (tracing on): replaces the client's upstream. Always
   * present (undefined until set), so setting it does not change the object's shape mid-request.
   */
  traceparent: string | undefined;
}

/** Records a header for the upstream request (strip-then-inject is applied by the forwarder). */
export function setUpstreamHeader(ctx: RequestContext, name: string, value: string): void {
  ctx.upstreamHeaders ??= new Map();
  ctx.upstreamHeaders.set(name.toLowerCase(), value);
}

/** Keeps a client-sent header (e.g. a credential) from being forwarded upstream. */
export function removeUpstreamHeader(ctx: RequestContext, name: string): void {
  ctx.upstreamHeaders ??= new Map();
  ctx.upstreamHeaders.set(name.toLowerCase(), null);
}

/** Records a header for the response to the client, whatever it turns out to be. */
export function setResponseHeader(ctx: RequestContext, name: string, value: string): void {
  ctx.responseHeaders ??= new Map();
  ctx.responseHeaders.set(name.toLowerCase(), value);
}
