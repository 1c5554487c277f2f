import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { ProblemCode } from '../errors.ts';
import type { Plan } from '../plan/types.ts';
import type { Logger } from '../telemetry/logger.ts';
import { type AccessEntry, createAccessLog } from '../telemetry/access-log.ts';
import { type GatewayMetrics, statusClass } from '../telemetry/metrics.ts';
import type { RequestContext } from './context.ts';
import { downstreamResponseHeaders, upstreamRequestHeaders } from './headers.ts';
import { runPipeline } from './pipeline.ts';
import type { PoolRegistry } from './pools.ts';
import { admit, upstreamPath } from './request-context.ts';
import { sendProblem } from './respond.ts';
import { classifyUpstreamError } from './upstream-errors.ts';

/** What the request path needs from the running gateway. */
export interface GatewayState {
  /** The plan new requests start on; each request keeps the one it started with. */
  readonly plan: Plan;
  readonly pools: PoolRegistry;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  readonly draining: boolean;
}

/** Per-request bookkeeping for the access log and metrics. */
interface Outcome {
  route: string;
  upstreamMs: number | null;
  bytesIn: number;
  bytesOut: number;
  error: ProblemCode | null;
}

class BodyTooLarge extends Error {
  readonly code = 'GATEHOUSE_BODY_TOO_LARGE';
}

/** Counts a chunked body as it streams, failing the upstream call once it passes the limit. */
async function* limitedBody(req: IncomingMessage, max: number, outcome: Outcome) {
  for await (const chunk of req as AsyncIterable<Buffer>) {
    outcome.bytesIn += chunk.length;
    if (outcome.bytesIn > max) throw new BodyTooLarge();
    yield chunk;
  }
}

export function createRequestHandler(state: GatewayState, listener: RequestContext['listener']) {
  const writeAccess = createAccessLog(state.logger);
  return function handleRequest(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    const plan = state.plan;
    const outcome: Outcome = { route: '', upstreamMs: null, bytesIn: 0, bytesOut: 0, error: null };
    const admission = admit(req, plan, listener);
    const requestId = admission.ok ? admission.ctx.id : admission.requestId;
    res.once('close', () => {
      record(state, writeAccess, req, res, outcome, admission.ok ? admission.ctx : null, requestId, started);
    });
    if (state.draining) res.setHeader('connection', 'close');
    if (!admission.ok) {
      outcome.error = admission.code;
      sendProblem(res, admission.code, {
        detail: admission.detail,
        requestId,
        close: admission.code !== 'route_not_found',
      });
      return;
    }
    const { ctx } = admission;
    outcome.route = ctx.rule.id;
    let verdict: ReturnType<typeof runPipeline>;
    try {
      verdict = runPipeline(ctx.rule, ctx);
    } catch (err) {
      fail(state, res, outcome, ctx, err);
      return;
    }
    const proceed = (result: Awaited<typeof verdict>) => {
      if (result.kind === 'respond') {
        outcome.error = result.code;
        sendProblem(res, result.code, {
          detail: result.detail,
          requestId,
          headers: withResponseHeaders(ctx, result.headers),
        });
        return;
      }
      if (result.kind === 'answer') {
        res.writeHead(result.status, {
          ...withResponseHeaders(ctx, result.headers),
          'x-request-id': requestId,
        });
        res.end();
        return;
      }
      forward(state, req, res, ctx, admission.rawHost, outcome, started);
    };
    if (verdict instanceof Promise) verdict.then(proceed, (err) => fail(state, res, outcome, ctx, err));
    else proceed(verdict);
  };
}

/** A verdict's headers plus those policies recorded for every answer (CORS, rate-limit state). */
function withResponseHeaders(
  ctx: RequestContext,
  headers: Readonly<Record<string, string>> | undefined,
): Record<string, string> | undefined {
  if (!ctx.responseHeaders) return headers;
  return { ...Object.fromEntries(ctx.responseHeaders), ...headers };
}

function fail(state: GatewayState, res: ServerResponse, outcome: Outcome, ctx: RequestContext, err: unknown) {
  state.logger.error({ err, requestId: ctx.id, route: ctx.rule.id }, 'policy threw: request denied');
  outcome.error = 'internal_error';
  sendProblem(res, 'internal_error', { requestId: ctx.id });
}

function forward(
  state: GatewayState,
  req: IncomingMessage,
  res: ServerResponse,
  ctx: RequestContext,
  rawHost: string,
  outcome: Outcome,
  started: number,
): void {
  const { plan } = ctx;
  const upstream = ctx.rule.upstream;
  const max = plan.limits.maxBodyBytes;
  const lengthHeader = req.headers['content-length'];
  let body: Readable | null = null;
  if (lengthHeader !== undefined) {
    const length = Number(lengthHeader);
    if (length > max) {
      outcome.error = 'payload_too_large';
      sendProblem(res, 'payload_too_large', {
        detail: `limit is ${max} bytes`,
        requestId: ctx.id,
        close: true,
      });
      return;
    }
    if (length > 0) {
      outcome.bytesIn = length;
      body = req;
    }
  } else if (req.headers['transfer-encoding'] !== undefined) {
    body = Readable.from(limitedBody(req, max, outcome), { objectMode: false });
  }
  const headers = upstreamRequestHeaders(req.rawHeaders, ctx, rawHost);
  const abort = new AbortController();
  let upstreamBody: Readable | null = null;
  res.once('close', () => {
    if (res.writableFinished) return;
    abort.abort();
    if (upstreamBody && !upstreamBody.readableEnded) upstreamBody.destroy();
  });
  const upstreamStarted = performance.now();
  state.pools
    .get(upstream)
    .request({
      method: ctx.method,
      path: upstreamPath(ctx),
      headers,
      body,
      signal: abort.signal,
      headersTimeout: ctx.rule.responseTimeoutMs,
      bodyTimeout: upstream.idleTimeoutMs,
    })
    .then(
      (response) => {
        outcome.upstreamMs = performance.now() - upstreamStarted;
        const responseHeaders = downstreamResponseHeaders(response.headers);
        if (ctx.responseHeaders)
          for (const [name, value] of ctx.responseHeaders) responseHeaders[name] = value;
        responseHeaders['x-request-id'] = ctx.id;
        if (state.draining) responseHeaders.connection = 'close';
        res.writeHead(response.statusCode, responseHeaders);
        const body = response.body;
        upstreamBody = body;
        const length = response.headers['content-length'];
        const bodyless = ctx.method === 'HEAD' || response.statusCode === 204 || response.statusCode === 304;
        if (length !== undefined || bodyless) outcome.bytesOut = bodyless ? 0 : Number(length);
        else
          body.on('data', (chunk: Buffer) => {
            outcome.bytesOut += chunk.length;
          });
        body.once('error', (err) => {
          const { failure } = classifyUpstreamError(err);
          state.metrics.upstreamErrors.labels(upstream.id, failure).inc();
          res.destroy();
        });
        body.pipe(res);
      },
      (err: unknown) => {
        outcome.upstreamMs = performance.now() - upstreamStarted;
        if (res.destroyed) return; // the client went away: nothing to answer
        if (err instanceof BodyTooLarge || (err as { cause?: unknown }).cause instanceof BodyTooLarge) {
          outcome.error = 'payload_too_large';
          sendProblem(res, 'payload_too_large', {
            detail: `limit is ${max} bytes`,
            requestId: ctx.id,
            close: true,
          });
          return;
        }
        const { failure, code } = classifyUpstreamError(err);
        state.metrics.upstreamErrors.labels(upstream.id, failure).inc();
        state.logger.warn(
          {
            requestId: ctx.id,
            upstream: upstream.id,
            failure,
            err: (err as Error).message,
            ms: Math.round(performance.now() - started),
          },
          'upstream call failed',
        );
        outcome.error = code;
        sendProblem(res, code, { requestId: ctx.id, close: body !== null && !req.readableEnded });
      },
    );
}

function record(
  state: GatewayState,
  writeAccess: (entry: AccessEntry) => void,
  req: IncomingMessage,
  res: ServerResponse,
  outcome: Outcome,
  ctx: RequestContext | null,
  requestId: string,
  started: number,
): void {
  const ms = performance.now() - started;
  const status = res.headersSent ? res.statusCode : 0;
  const route = outcome.route || 'none';
  state.metrics.observeRequest(route, req.method ?? '', status ? statusClass(status) : 'aborted', ms / 1000);
  if (!state.plan.gateway.accessLog.enabled) return;
  writeAccess({
    requestId,
    route: outcome.route || null,
    method: req.method ?? '',
    host: ctx?.host ?? null,
    path: ctx?.path ?? null,
    status,
    ms,
    upstreamMs: outcome.upstreamMs,
    bytesIn: outcome.bytesIn,
    bytesOut: outcome.bytesOut,
    client: ctx?.client.address ?? req.socket.remoteAddress ?? null,
    error: outcome.error,
    completed: res.writableFinished,
  });
}
