// The decision endpoint (forward auth): a proxy in front (nginx auth_request, Traefik forwardAuth,
// Envoy ext_authz over HTTP) describes a request and the gateway answers whether it may go through,
// running the same admission and pipeline as a proxied request, without forwarding anything.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ProblemCode } from '../errors.ts';
import { unmapIPv4 } from '../plan/trusted-proxies.ts';
import type { Plan } from '../plan/types.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { RequestContext } from './context.ts';
import { admitDescribed, type DescribedRequest, evaluate } from './explain.ts';
import type { GatewayListener } from './gateway-response.ts';
import { sendProblem } from './respond.ts';

/** What the decision endpoint needs from the running gateway. */
export interface DecisionState {
  readonly plan: Plan;
  readonly logger: Logger;
}

/** Headers that describe the original request; the decision request's own copies are ignored. */
const describing = new Set([
  'x-forwarded-method',
  'x-forwarded-uri',
  'x-forwarded-host',
  'x-forwarded-proto',
]);

// Not part of the described request: its framing was the proxy's business (it sends no body here).
const framing = new Set(['host', 'content-length', 'transfer-encoding']);

// Never copied from the upstream headers a rule sets into the decision's answer.
const notAnswerHeaders = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'content-type',
  'upgrade',
  'te',
  'trailer',
]);

/**
 * Wraps a listener's request handler: requests for the decision path on the decision listener are
 * answered here, everything else goes on to `next`. The plan is read per request, so a reload that
 * changes `spec.decision` applies at once.
 */
export function withDecisionEndpoint(
  state: DecisionState,
  listener: RequestContext['listener'],
  next: GatewayListener,
): GatewayListener {
  return function handleOrPass(req, res) {
    const decision = state.plan.gateway.decision;
    if (decision === undefined || decision.listener !== listener.name) return next(req, res);
    const suffix = decisionSuffix(req.url ?? '', decision.path);
    if (suffix === null) return next(req, res);
    decide(state, listener, req, res, suffix);
  };
}

/**
 * `''` for the decision path itself (with or without a query), the rest for `<path>/<original
 * path>` (Envoy's path_prefix form), null for anything else.
 */
function decisionSuffix(url: string, path: string): string | null {
  if (!url.startsWith(path)) return null;
  const rest = url.slice(path.length);
  if (rest === '' || rest.startsWith('?')) return '';
  if (rest.startsWith('/')) return rest;
  return null;
}

function decide(
  state: DecisionState,
  listener: RequestContext['listener'],
  req: IncomingMessage,
  res: ServerResponse,
  suffix: string,
): void {
  // The original request's body is never looked at; let Node discard whatever the proxy sent.
  req.resume();
  const plan = state.plan;
  const peerAddress = unmapIPv4(req.socket.remoteAddress ?? '');
  const answer = (code: ProblemCode, detail?: string, requestId?: string) => {
    sendProblem(res, code, { detail, requestId });
    log(state, req, res.statusCode, code, requestId ?? null, null);
  };
  // The described request is believed as told: only trusted proxies may tell it (fail closed).
  if (!plan.trustedProxies(peerAddress)) {
    answer('forbidden', 'the decision endpoint answers trusted proxies only (spec.trustedProxies)');
    return;
  }
  const described = describe(req, listener, peerAddress, suffix);
  if (!described.ok) {
    answer(described.code, described.detail);
    return;
  }
  const admission = admitDescribed(plan, described.request);
  if (!admission.ok) {
    answer(admission.code, admission.detail, admission.requestId);
    return;
  }
  const { ctx } = admission;
  evaluate(ctx)
    .then((evaluation) => {
      if (evaluation.kind !== 'result') {
        if (evaluation.kind === 'error')
          state.logger.error(
            { err: evaluation.error, requestId: ctx.id, route: ctx.rule.id },
            'policy threw: request denied',
          );
        answer('internal_error', undefined, ctx.id);
        return;
      }
      const { result } = evaluation;
      // Headers policies set for the client's answer (RateLimit, CORS): the proxy passes them on.
      const forClient = ctx.responseHeaders ? Object.fromEntries(ctx.responseHeaders) : {};
      if (result.kind === 'answer') {
        // The gateway would answer this request itself (a CORS preflight): the proxy should too.
        res.writeHead(result.status, {
          ...forClient,
          ...result.headers,
          'content-length': '0',
          'x-request-id': ctx.id,
        });
        res.end();
        log(state, req, result.status, null, ctx.id, ctx);
        return;
      }
      if (result.kind === 'respond') {
        sendProblem(res, result.code, {
          detail: result.detail,
          requestId: ctx.id,
          headers: { ...forClient, ...result.headers },
        });
        log(state, req, res.statusCode, result.code, ctx.id, ctx);
        return;
      }
      // Allowed: the headers the rule would set upstream, for the proxy to copy (auth_request_set,
      // authResponseHeaders, allowed_upstream_headers).
      const headers: Record<string, string> = {
        ...forClient,
        'content-length': '0',
        'cache-control': 'no-store',
        'x-request-id': ctx.id,
      };
      for (const [name, value] of ctx.upstreamHeaders ?? []) {
        if (value !== null && !notAnswerHeaders.has(name)) headers[name] = value;
      }
      res.writeHead(200, headers);
      res.end();
      log(state, req, 200, null, ctx.id, ctx);
    })
    .catch((err: unknown) => {
      state.logger.error({ err, requestId: ctx.id }, 'decision could not be answered');
      res.destroy();
    });
}

type Described = { ok: true; request: DescribedRequest } | { ok: false; code: ProblemCode; detail: string };

/**
 * The original request, from X-Forwarded-Method / -Proto / -Host / -Uri and the headers the proxy
 * passed through. Without X-Forwarded-Uri, Envoy's form: the method and Host are the original's
 * and the original path follows the decision path.
 */
function describe(
  req: IncomingMessage,
  listener: RequestContext['listener'],
  peerAddress: string,
  suffix: string,
): Described {
  const told: Record<string, string> = {};
  const rawHeaders: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (describing.has(name)) {
      if (told[name] !== undefined)
        return { ok: false, code: 'duplicate_header', detail: `${name} header sent more than once` };
      told[name] = raw[i + 1]!;
    }
    if (name === 'x-forwarded-method' || name === 'x-forwarded-uri' || framing.has(name)) continue;
    rawHeaders.push(raw[i]!, raw[i + 1]!);
  }
  const target = told['x-forwarded-uri'] ?? (suffix === '' ? undefined : suffix);
  if (target === undefined)
    return {
      ok: false,
      code: 'bad_request',
      detail: 'X-Forwarded-Uri is required: the original request target',
    };
  // In Envoy's form the decision request's own Host is the original one; otherwise it names the
  // gateway, and routing on it would be routing a request nobody sent.
  const host = told['x-forwarded-host'] ?? (suffix === '' ? undefined : req.headers.host);
  if (host === undefined)
    return { ok: false, code: 'bad_host', detail: 'X-Forwarded-Host is required: the original Host' };
  const proto = told['x-forwarded-proto'] ?? listener.protocol;
  if (proto !== 'http' && proto !== 'https')
    return { ok: false, code: 'bad_request', detail: 'X-Forwarded-Proto must be http or https' };
  rawHeaders.push('Host', host);
  return {
    ok: true,
    request: {
      method: told['x-forwarded-method'] ?? req.method ?? 'GET',
      target,
      rawHeaders,
      listener: { name: listener.name, protocol: proto },
      peerAddress,
    },
  };
}

function log(
  state: DecisionState,
  req: IncomingMessage,
  status: number,
  error: ProblemCode | null,
  requestId: string | null,
  ctx: RequestContext | null,
): void {
  if (!state.plan.gateway.accessLog.enabled) return;
  state.logger.info({
    type: 'decision',
    requestId,
    route: ctx?.rule.id ?? null,
    method: ctx?.method ?? null,
    host: ctx?.host ?? null,
    path: ctx?.path ?? null,
    status,
    error,
    proxy: unmapIPv4(req.socket.remoteAddress ?? ''),
    client: ctx?.client.address ?? null,
  });
}
