import type { IncomingHttpHeaders } from 'node:http';
import type { RequestContext } from '../gateway/context.ts';
import { hopByHop } from '../gateway/headers.ts';

/** What the gateway adds to `Via` (RFC 9110 §7.6.3): protocol version and a pseudonym, no host name. */
export const viaEntry = '1.1 gatehouse';

/**
 * Request headers the forward proxy sets itself: a client's copies are dropped. `expect` is
 * answered by the gateway (100-continue) and not passed on; X-Forwarded-* other than -For and
 * Forwarded would describe the gateway's listener, which the destination has no use for.
 */
const proxySet = new Set([
  'host',
  'via',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
  'x-request-id',
  'expect',
]);

/** Names a Connection header nominates as hop-by-hop for this connection. */
function nominated(connection: string | string[] | undefined): Set<string> | null {
  if (connection === undefined) return null;
  const names = new Set<string>();
  for (const line of Array.isArray(connection) ? connection : [connection])
    for (const token of line.split(',')) {
      const name = token.trim().toLowerCase();
      if (name !== '') names.add(name);
    }
  return names.size > 0 ? names : null;
}

/**
 * Headers of a forwarded absolute-form request, as undici's flat list. Strip, then inject: hop-by-hop,
 * Connection-nominated, proxy-owned and policy-touched headers are dropped, then Host (the target's
 * authority), Via (appended to), X-Forwarded-For (appended to a trusted peer's, else the peer alone)
 * and X-Request-Id are set.
 */
export function forwardRequestHeaders(
  rawHeaders: readonly string[],
  ctx: RequestContext,
  authority: string,
): string[] {
  const skip = nominated(ctx.headers.connection);
  const policySet = ctx.upstreamHeaders;
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const lower = rawHeaders[i]!.toLowerCase();
    if (hopByHop.has(lower) || proxySet.has(lower) || skip?.has(lower) || policySet?.has(lower)) continue;
    out.push(rawHeaders[i]!, rawHeaders[i + 1]!);
  }
  const { headers, client } = ctx;
  const via = headers.via;
  const xff = headers['x-forwarded-for'];
  out.push('host', authority);
  out.push('via', typeof via === 'string' && via !== '' ? `${via}, ${viaEntry}` : viaEntry);
  out.push(
    'x-forwarded-for',
    typeof xff === 'string' && client.trustedPeer ? `${xff}, ${client.peerAddress}` : client.peerAddress,
  );
  out.push('x-request-id', ctx.id);
  if (policySet) for (const [name, value] of policySet) if (value !== null) out.push(name, value);
  return out;
}

/** Response headers relayed to the client: hop-by-hop and Connection-nominated ones dropped, Via added. */
export function forwardResponseHeaders(
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>,
  requestId: string,
): Record<string, string | string[]> {
  const skip = nominated(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || hopByHop.has(name) || skip?.has(name)) continue;
    out[name] = value;
  }
  const via = out.via;
  out.via = via === undefined ? viaEntry : `${Array.isArray(via) ? via.join(', ') : via}, ${viaEntry}`;
  out['x-request-id'] = requestId;
  return out;
}
