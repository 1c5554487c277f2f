import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Plan } from '../plan/types.ts';
import type { GatewayListener } from './gateway-response.ts';

export const jwksPath = '/.well-known/jwks.json';

/** A GET or HEAD of /.well-known/jwks.json (a query string is ignored). */
function isJwksRequest(req: IncomingMessage): boolean {
  const url = req.url ?? '';
  return (
    (req.method === 'GET' || req.method === 'HEAD') &&
    url.startsWith(jwksPath) &&
    (url.length === jwksPath.length || url[jwksPath.length] === '?')
  );
}

/**
 * Answers with the JWK Set of the gateway's signing keys (public members only). A short max-age:
 * a new key signs as soon as it is made, and verifiers refetch on an unknown kid anyway.
 */
export function sendJwks(res: ServerResponse, body: string): void {
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'public, max-age=60',
  });
  res.end(res.req?.method === 'HEAD' ? undefined : body);
}

/**
 * On the listener named by `spec.tokens.publishOn`, the gateway answers /.well-known/jwks.json
 * itself, before routing; everything else goes to `next`. Follows the current plan, so a reload
 * can move or drop it.
 */
export function withJwksEndpoint(
  state: { readonly plan: Plan },
  listenerName: string,
  next: GatewayListener,
): GatewayListener {
  return function jwksOrPass(req, res) {
    const issuer = state.plan.tokens;
    if (issuer === null || issuer.publishOn !== listenerName || !isJwksRequest(req)) return next(req, res);
    sendJwks(res, issuer.jwks());
  };
}
