import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import { type ProblemCode, rawProblemResponse } from '../errors.ts';
import type { RequestContext } from './context.ts';
import type { GatewayState } from './handler.ts';
import { upstreamRequestHeaders } from './headers.ts';
import { runPipeline } from './pipeline.ts';
import { admit, upstreamPath } from './request-context.ts';
import { setHostHeader } from './upstream/host.ts';
import { classifyUpstreamError } from './upstream-errors.ts';

/**
 * WebSocket (and other Upgrade) requests: routed, checked and authorised exactly like any other
 * request, then the upstream's 101 is relayed and the two sockets are joined byte for byte.
 */
export function createUpgradeHandler(state: GatewayState, listener: RequestContext['listener']) {
  return function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const refuse = (
      code: ProblemCode,
      detail?: string,
      requestId?: string,
      headers?: Record<string, string>,
    ) => {
      state.logger.info(
        { type: 'access', upgrade: true, requestId, error: code, path: req.url },
        'upgrade refused',
      );
      socket.end(rawProblemResponse(code, detail, requestId, headers));
    };
    if (state.draining) {
      refuse('shutting_down');
      return;
    }
    const admission = admit(req, state.plan, listener);
    if (!admission.ok) {
      refuse(admission.code, admission.detail, admission.requestId);
      return;
    }
    const { ctx } = admission;
    const proceed = (result: Awaited<ReturnType<typeof runPipeline>>) => {
      if (result.kind === 'respond')
        return refuse(result.code, result.detail, ctx.id, result.headers as Record<string, string>);
      if (result.kind === 'answer') return refuse('bad_request', 'not an upgrade request', ctx.id);
      connect(state, req, socket, head, ctx, admission.rawHost, refuse);
    };
    try {
      const verdict = runPipeline(ctx.rule, ctx);
      if (verdict instanceof Promise)
        verdict.then(proceed, () => refuse('internal_error', undefined, ctx.id));
      else proceed(verdict);
    } catch {
      refuse('internal_error', undefined, ctx.id);
    }
  };
}

function connect(
  state: GatewayState,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  ctx: RequestContext,
  rawHost: string,
  refuse: (code: ProblemCode, detail?: string, requestId?: string) => void,
) {
  const upstream = ctx.rule.upstream;
  const live = state.upstreams.get(upstream);
  // One try, no retries: the 101 hands the connection over for good.
  const target = live.pick(ctx, null);
  if (target === null) {
    state.metrics.upstreamErrors.labels(upstream.id, 'no_healthy_target').inc();
    refuse('upstream_unavailable', 'no healthy target', ctx.id);
    return;
  }
  if (live.retryBudget !== null) live.countRequest();
  const headers = upstreamRequestHeaders(req.rawHeaders, ctx, rawHost);
  if (target.hostHeader !== upstream.hostHeader && !upstream.preserveHost)
    setHostHeader(headers, target.hostHeader);
  const abort = new AbortController();
  const onEarlyClose = () => abort.abort();
  socket.once('close', onEarlyClose);
  // A joined WebSocket counts as a request in flight until it closes (least-request).
  if (live.tracked) {
    live.begin(target);
    socket.once('close', () => live.release(target));
  }
  const options: Dispatcher.UpgradeOptions & { servername: string | undefined } = {
    path: upstreamPath(ctx),
    method: ctx.method,
    headers,
    protocol: String(req.headers.upgrade ?? 'websocket'),
    signal: abort.signal,
    servername: target.servername,
  };
  target.pool.upgrade(options).then(
    ({ headers: responseHeaders, socket: upstreamSocket }) => {
      socket.off('close', onEarlyClose);
      if (live.tracked) live.settle(target, true);
      if (socket.destroyed) {
        upstreamSocket.destroy();
        return;
      }
      let response = 'HTTP/1.1 101 Switching Protocols\r\n';
      for (const [name, value] of Object.entries(responseHeaders)) {
        if (value === undefined) continue;
        for (const v of Array.isArray(value) ? value : [value]) response += `${name}: ${v}\r\n`;
      }
      response += `x-request-id: ${ctx.id}\r\n\r\n`;
      socket.write(response);
      if (head.length > 0) upstreamSocket.write(head);
      upstreamSocket.on('error', () => socket.destroy());
      socket.on('close', () => upstreamSocket.destroy());
      upstreamSocket.on('close', () => socket.destroy());
      upstreamSocket.pipe(socket);
      socket.pipe(upstreamSocket);
      state.logger.info({
        type: 'access',
        upgrade: true,
        requestId: ctx.id,
        route: ctx.rule.id,
        status: 101,
      });
    },
    (err: unknown) => {
      socket.off('close', onEarlyClose);
      if (live.tracked) live.settle(target, socket.destroyed ? null : false);
      if (socket.destroyed) return;
      const { failure, code } = classifyUpstreamError(err);
      state.metrics.upstreamErrors.labels(upstream.id, failure).inc();
      refuse(code, undefined, ctx.id);
    },
  );
}
