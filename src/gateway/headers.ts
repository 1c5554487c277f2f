import type { IncomingHttpHeaders } from 'node:http';
import type { ProblemCode } from '../errors.ts';
import type { RequestContext } from './context.ts';

/** Hop-by-hop headers (RFC 9110 §7.6.1 and the usual legacy ones): never forwarded in either direction. */
export const hopByHop: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Headers the gateway sets itself on the upstream request; a client's copies are always replaced. */
const gatewaySet = new Set([
  'host',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
  'x-request-id',
]);

/**
 * Headers a policy may not set upstream (lowercase name): the gateway's own, hop-by-hop ones and
 * message framing.
 */
export function isReservedUpstreamHeader(name: string): boolean {
  return gatewaySet.has(name) || hopByHop.has(name) || name === 'content-length';
}

/** Headers that must appear at most once; a repeat makes the request ambiguous. */
const singletons = new Set(['host', 'authorization', 'content-length', 'transfer-encoding', 'content-type']);

export interface HeaderRejection {
  code: ProblemCode;
  detail: string;
}

/**
 * Checks the raw header list for what Node's parser lets through but a gateway must not guess
 * about: repeated singleton headers (e.g. two Host or two Authorization) and conflicting framing.
 */
export function checkRawHeaders(rawHeaders: readonly string[]): HeaderRejection | null {
  let seen: Set<string> | null = null;
  let hasLength = false;
  let hasChunked = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (!singletons.has(name)) continue;
    seen ??= new Set();
    if (seen.has(name)) return { code: 'duplicate_header', detail: `${name} header sent more than once` };
    seen.add(name);
    if (name === 'content-length') hasLength = true;
    else if (name === 'transfer-encoding') {
      if (rawHeaders[i + 1]!.trim().toLowerCase() !== 'chunked') {
        return { code: 'bad_framing', detail: 'only transfer-encoding: chunked is accepted' };
      }
      hasChunked = true;
    }
  }
  if (hasLength && hasChunked)
    return { code: 'bad_framing', detail: 'both content-length and transfer-encoding sent' };
  return null;
}

/** Names listed in Connection headers: hop-by-hop for this connection only. */
function connectionNominated(headers: IncomingHttpHeaders): Set<string> | null {
  const value = headers.connection;
  if (!value) return null;
  const names = new Set<string>();
  for (const token of value.split(',')) {
    const name = token.trim().toLowerCase();
    if (name && name !== 'close' && name !== 'keep-alive') names.add(name);
  }
  return names.size ? names : null;
}

const requestIdPattern = /^[A-Za-z0-9._:-]{1,128}$/;
const traceparentPattern = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The X-Request-Id to use: a trusted peer's well-formed one is kept, otherwise a new one. */
export function requestIdFor(
  headers: IncomingHttpHeaders,
  trustedPeer: boolean,
  generate: () => string,
): string {
  const incoming = headers['x-request-id'];
  if (trustedPeer && typeof incoming === 'string' && requestIdPattern.test(incoming)) return incoming;
  return generate();
}

/**
 * The caller's address. Behind trusted proxies it is the right-most X-Forwarded-For entry that is
 * not itself a trusted proxy; from anyone else X-Forwarded-For is ignored.
 */
export function clientAddress(
  headers: IncomingHttpHeaders,
  peer: string,
  trustedPeer: boolean,
  isTrusted: (a: string) => boolean,
): string {
  if (!trustedPeer) return peer;
  const xff = headers['x-forwarded-for'] as string | undefined;
  if (!xff) return peer;
  const hops = xff.split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!.trim();
    if (hop && !isTrusted(hop)) return hop;
  }
  return hops[0]?.trim() || peer;
}

function forwardedFor(address: string): string {
  return address.includes(':') ? `"[${address}]"` : address;
}

/**
 * The header list sent upstream, as undici's flat [name, value, …] array. Strip, then inject:
 * hop-by-hop, Connection-nominated, gateway-owned and policy-set headers are removed from what
 * the client sent, then the gateway's values are added.
 */
export function upstreamRequestHeaders(
  rawHeaders: readonly string[],
  ctx: RequestContext,
  rawHost: string,
): string[] {
  const upstream = ctx.rule.upstream;
  const host = upstream.preserveHost ? rawHost : upstream.hostHeader;
  const nominated = connectionNominated(ctx.headers);
  const policySet = ctx.upstreamHeaders;
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (gatewaySet.has(lower)) continue;
    // Upgrade and Connection are hop-by-hop too: for WebSockets undici sets its own.
    if (hopByHop.has(lower)) continue;
    if (nominated?.has(lower) || policySet?.has(lower)) continue;
    // A malformed traceparent is dropped rather than forwarded (W3C Trace Context: restart the trace).
    if (
      lower === 'traceparent' &&
      (ctx.traceparent !== undefined || !traceparentPattern.test(rawHeaders[i + 1]!))
    )
      continue;
    out.push(name, rawHeaders[i + 1]!);
  }
  const { headers, client, listener } = ctx;
  const proto = listener.protocol;
  out.push('host', host);
  if (ctx.client.trustedPeer) {
    const xff = headers['x-forwarded-for'];
    out.push('x-forwarded-for', xff ? `${xff}, ${client.peerAddress}` : client.peerAddress);
    out.push('x-forwarded-proto', (headers['x-forwarded-proto'] as string | undefined) ?? proto);
    out.push('x-forwarded-host', (headers['x-forwarded-host'] as string | undefined) ?? rawHost);
    const element = `for=${forwardedFor(client.peerAddress)};host="${rawHost}";proto=${proto}`;
    out.push('forwarded', headers.forwarded ? `${headers.forwarded}, ${element}` : element);
  } else {
    out.push('x-forwarded-for', client.peerAddress);
    out.push('x-forwarded-proto', proto);
    out.push('x-forwarded-host', rawHost);
    out.push('forwarded', `for=${forwardedFor(client.peerAddress)};host="${rawHost}";proto=${proto}`);
  }
  out.push('x-request-id', ctx.id);
  if (ctx.traceparent !== undefined) out.push('traceparent', ctx.traceparent);
  if (policySet) for (const [name, value] of policySet) if (value !== null) out.push(name, value);
  return out;
}

/** Response headers from upstream, minus hop-by-hop and Connection-nominated ones. */
export function downstreamResponseHeaders(
  headers: Record<string, string | string[] | undefined>,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const connection = headers.connection;
  const nominated =
    typeof connection === 'string'
      ? connection
          .toLowerCase()
          .split(',')
          .map((t) => t.trim())
      : null;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || hopByHop.has(name)) continue;
    if (nominated?.includes(name)) continue;
    out[name] = value;
  }
  return out;
}

/**
 * Adds what policies recorded for the client's answer (`ctx.responseHeaders`) to a forwarded
 * response. `Vary` is merged with the upstream's rather than replaced (a cache must keep varying on
 * what the upstream said). On a rule with a CORS policy the gateway alone speaks CORS: the
 * upstream's own `Access-Control-*` headers are dropped, or they could allow what the policy does
 * not (any origin, with credentials).
 */
export function applyResponseHeaders(target: Record<string, string | string[]>, ctx: RequestContext): void {
  if (ctx.rule.corsPreflights)
    for (const name of Object.keys(target)) if (name.startsWith('access-control-')) delete target[name];
  if (!ctx.responseHeaders) return;
  for (const [name, value] of ctx.responseHeaders)
    target[name] = name === 'vary' && target.vary !== undefined ? mergeVary(target.vary, value) : value;
}

/** The union of two Vary values, each field name once (case-insensitive); `*` absorbs everything. */
function mergeVary(upstream: string | string[], added: string): string {
  const names = new Map<string, string>();
  for (const part of [upstream, added].flat().join(',').split(',')) {
    const name = part.trim();
    if (name === '*') return '*';
    if (name !== '' && !names.has(name.toLowerCase())) names.set(name.toLowerCase(), name);
  }
  return [...names.values()].join(', ');
}
