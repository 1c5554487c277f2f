import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { ApiEventRecorder, RecordedCall } from '../analytics/call.ts';
import type { ProblemCode } from '../errors.ts';
import type { Plan, RetryReason } from '../plan/types.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { RequestTrace, RequestTracing } from '../telemetry/tracing.ts';
import { type AccessEntry, createAccessLog } from '../telemetry/access-log.ts';
import { type GatewayMetrics, statusClass } from '../telemetry/metrics.ts';
import type { RequestContext } from './context.ts';
import type { EndHolder, GatewayResponse } from './gateway-response.ts';
import { applyResponseHeaders, downstreamResponseHeaders, upstreamRequestHeaders } from './headers.ts';
import { runPipeline } from './pipeline.ts';
import { admit, upstreamPath } from './request-context.ts';
import { type RelayHooks, ResponseRelay } from './response-relay.ts';
import { sendProblem } from './respond.ts';
import { setHostHeader } from './upstream/host.ts';
import type { LiveUpstream } from './upstream/live-upstream.ts';
import type { UpstreamRegistry } from './upstream/registry.ts';
import { failureReason, retryable, statusReason } from './upstream/retry.ts';
import type { TargetRuntime } from './upstream/target.ts';
import { classifyUpstreamError, type UpstreamFailure } from './upstream-errors.ts';

/** What the request path needs from the running gateway. */
export interface GatewayState {
  /** The plan new requests start on; each request keeps the one it started with. */
  readonly plan: Plan;
  readonly upstreams: UpstreamRegistry;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  readonly draining: boolean;
  /** API event records for analytics (Gateway spec.analytics); absent: none. */
  readonly analytics?: ApiEventRecorder | null;
  /** OpenTelemetry spans (Gateway spec.tracing); absent: none. */
  readonly tracing?: RequestTracing | null;
}

/**
 * Per-request bookkeeping for the access log and metrics, and the upstream call in flight. It is
 * also the call handed to analytics (a RecordedCall: its last fields are set by `finishCall`), so
 * that recording allocates nothing more.
 */
interface Outcome extends RecordedCall {
  route: string;
  upstreamMs: number | null;
  bytesIn: number;
  bytesOut: number;
  error: ProblemCode | null;
  trace: RequestTrace | null;
  /** The one-try upstream call, told when the client's response closes. */
  relay: ResponseRelay<Outcome> | null;
  /** Whether a request body is streamed upstream (a failure then closes the client connection). */
  hasBody: boolean;
  /** `performance.now()` when the request arrived. */
  started: number;
  /** The analytics event was recorded when the response ended (`endHolder`). */
  recorded: boolean;
  // RecordedCall: known when the request arrives …
  readonly time: number;
  readonly requestId: string;
  readonly ctx: RequestContext | null;
  readonly method: string;
  // … and when it ends (finishCall).
  client: string;
  status: number;
  latencyMs: number;
  traceId: string | null;
  completed: boolean;
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
  const hooks = relayHooks(state);
  const holder = endHolder(state);
  return function handleRequest(req: IncomingMessage, res: GatewayResponse): void {
    const started = performance.now();
    const plan = state.plan;
    const trace = state.tracing ? state.tracing.begin(req.method ?? 'GET', req.headers) : null;
    const admission = admit(req, plan, listener);
    const requestId = admission.ok ? admission.ctx.id : admission.requestId;
    const outcome: Outcome = {
      route: '',
      upstreamMs: null,
      bytesIn: 0,
      bytesOut: 0,
      error: null,
      trace,
      relay: null,
      hasBody: false,
      started,
      recorded: false,
      time: performance.timeOrigin + started,
      requestId,
      ctx: admission.ok ? admission.ctx : null,
      method: req.method ?? '',
      client: '',
      status: 0,
      latencyMs: 0,
      traceId: null,
      completed: false,
    };
    if (state.analytics?.holdsResponses) res.holdEnd(holder, outcome);
    // The request's only `close` listener (`on`: a response closes once, and `once` costs a wrapper).
    res.on('close', () => {
      outcome.relay?.clientClosed();
      record(state, writeAccess, req, res, outcome);
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
      const trace = outcome.trace;
      verdict = trace ? trace.run(() => runPipeline(ctx.rule, ctx)) : runPipeline(ctx.rule, ctx);
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
      forward(state, hooks, req, res, ctx, admission.rawHost, outcome, started);
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
  sendProblem(res, 'internal_error', { requestId: ctx.id, headers: withResponseHeaders(ctx, undefined) });
}

function forward(
  state: GatewayState,
  hooks: RelayHooks<Outcome>,
  req: IncomingMessage,
  res: ServerResponse,
  ctx: RequestContext,
  rawHost: string,
  outcome: Outcome,
  started: number,
): void {
  const { plan } = ctx;
  const upstream = ctx.rule.upstream;
  const max = ctx.rule.maxBodyBytes ?? plan.limits.maxBodyBytes;
  const lengthHeader = req.headers['content-length'];
  let body: Readable | null = null;
  if (lengthHeader !== undefined) {
    const length = Number(lengthHeader);
    if (length > max) {
      outcome.error = 'payload_too_large';
      sendProblem(res, 'payload_too_large', {
        detail: `limit is ${max} bytes`,
        requestId: ctx.id,
        headers: withResponseHeaders(ctx, undefined),
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
  const live = state.upstreams.get(upstream);
  const target = live.pick(ctx, null);
  if (target === null) {
    noHealthyTarget(state, res, ctx, outcome, body !== null);
    return;
  }
  if (live.retryBudget !== null) live.countRequest();
  if (outcome.trace) ctx.traceparent = outcome.trace.startUpstream(ctx.method, upstream.id);
  const headers = upstreamRequestHeaders(req.rawHeaders, ctx, rawHost);
  if (retryable(upstream.retries, ctx.method, body !== null)) {
    forwardWithRetries(state, res, ctx, live, target, headers, outcome, started);
    return;
  }
  // One try. This is the path of most requests: keep it free of allocations beyond the call itself.
  if (target.hostHeader !== upstream.hostHeader && !upstream.preserveHost)
    setHostHeader(headers, target.hostHeader);
  outcome.hasBody = body !== null;
  const holdLast = state.analytics?.holdsResponses === true;
  const relay = new ResponseRelay(res, ctx, outcome, live, target, state.draining, hooks, holdLast);
  outcome.relay = relay;
  if (live.tracked) live.begin(target);
  const options: TargetRequest = {
    method: ctx.method,
    path: upstreamPath(ctx),
    headers,
    body,
    headersTimeout: ctx.rule.responseTimeoutMs,
    bodyTimeout: upstream.idleTimeoutMs,
    servername: target.servername,
  };
  target.pool.dispatch(options, relay);
}

/** How a one-try call ends badly; one set per request handler, shared by its requests. */
function relayHooks(state: GatewayState): RelayHooks<Outcome> {
  return {
    failedBeforeAnswer(relay, err) {
      const { res, ctx, outcome } = relay;
      const tooLarge =
        err instanceof BodyTooLarge || (err as { cause?: unknown }).cause instanceof BodyTooLarge;
      if (res.destroyed || tooLarge) {
        relay.settle(null);
        if (res.destroyed) return; // the client went away: nothing to answer
        outcome.error = 'payload_too_large';
        sendProblem(res, 'payload_too_large', {
          detail: `limit is ${ctx.rule.maxBodyBytes ?? ctx.plan.limits.maxBodyBytes} bytes`,
          requestId: ctx.id,
          headers: withResponseHeaders(ctx, undefined),
          close: true,
        });
        return;
      }
      const { failure, code } = classifyUpstreamError(err);
      relay.settle(false);
      answerUpstreamFailure(state, res, ctx, outcome, err, failure, code, {
        started: outcome.started,
        tries: 1,
        close: outcome.hasBody && !res.req.readableEnded,
      });
    },
    failedMidBody(relay, err) {
      const { failure } = classifyUpstreamError(err);
      state.metrics.upstreamErrors.labels(relay.ctx.rule.upstream.id, failure).inc();
      relay.res.destroy();
    },
  };
}

/** undici reads `servername` (SNI and the name the certificate is checked against); its types omit it. */
type TargetRequest = Dispatcher.RequestOptions & { servername: string | undefined };

/**
 * A request that may be retried (docs/decisions/0006): it has no body, so nothing was streamed
 * upstream that a retry would lack. Each retry goes to a target not tried yet when one is available,
 * within the retry budget, and all tries share the rule's response timeout. A retried answer's body
 * is thrown away; the client sees only the last try.
 */
function forwardWithRetries(
  state: GatewayState,
  res: ServerResponse,
  ctx: RequestContext,
  live: LiveUpstream,
  first: TargetRuntime,
  headers: string[],
  outcome: Outcome,
  started: number,
): void {
  const upstream = live.config;
  const policy = upstream.retries!;
  const tracked = live.tracked;
  const abort = new AbortController();
  const tried: TargetRuntime[] = [];
  const path = upstreamPath(ctx);
  const upstreamStarted = performance.now();
  const deadline = upstreamStarted + ctx.rule.responseTimeoutMs;
  let retriesLeft = policy.attempts;
  let current = first;
  let calling = false;
  let upstreamBody: Readable | null = null;
  const release = () => {
    if (!calling) return;
    calling = false;
    if (tracked) live.release(current);
  };
  res.once('close', () => {
    release();
    if (res.writableFinished) return;
    abort.abort();
    if (upstreamBody && !upstreamBody.readableEnded) upstreamBody.destroy();
  });
  const retryTarget = (reason: RetryReason): TargetRuntime | null => {
    if (retriesLeft === 0 || !policy.on.has(reason) || res.destroyed) return null;
    if (deadline - performance.now() < 1) return null;
    const next = live.pick(ctx, tried);
    if (next === null) return null;
    if (!live.takeRetry()) {
      state.metrics.upstreamRetryBudgetExhausted.labels(upstream.id).inc();
      return null;
    }
    retriesLeft--;
    state.metrics.upstreamRetries.labels(upstream.id, reason).inc();
    return next;
  };
  const attempt = (target: TargetRuntime) => {
    current = target;
    calling = true;
    tried.push(target);
    if (!upstream.preserveHost) setHostHeader(headers, target.hostHeader);
    if (tracked) live.begin(target);
    const remaining = Math.max(1, Math.ceil(deadline - performance.now()));
    const options: TargetRequest = {
      method: ctx.method,
      path,
      headers,
      body: null,
      signal: abort.signal,
      headersTimeout:
        policy.perTryTimeoutMs === null ? remaining : Math.min(policy.perTryTimeoutMs, remaining),
      bodyTimeout: upstream.idleTimeoutMs,
      servername: target.servername,
    };
    target.pool.request(options).then(
      (response) => {
        if (tracked) live.settle(target, response.statusCode < 500);
        const reason = statusReason(response.statusCode);
        const next = reason === null ? null : retryTarget(reason);
        if (next !== null) {
          release();
          response.body.dump().catch(() => {});
          attempt(next);
          return;
        }
        outcome.upstreamMs = performance.now() - upstreamStarted;
        upstreamBody = deliver(state, res, ctx, outcome, response);
      },
      (err: unknown) => {
        if (res.destroyed) {
          if (tracked) live.settle(target, null);
          release();
          outcome.upstreamMs = performance.now() - upstreamStarted;
          return; // the client went away: nothing to answer
        }
        const { failure, code } = classifyUpstreamError(err);
        if (tracked) live.settle(target, false);
        release();
        const reason = failureReason(failure);
        const next = reason === null ? null : retryTarget(reason);
        if (next !== null) {
          state.metrics.upstreamErrors.labels(upstream.id, failure).inc();
          attempt(next);
          return;
        }
        outcome.upstreamMs = performance.now() - upstreamStarted;
        answerUpstreamFailure(state, res, ctx, outcome, err, failure, code, {
          started,
          tries: tried.length,
          close: false,
        });
      },
    );
  };
  attempt(first);
}

/** Streams an upstream answer to the client; returns its body (a client that leaves stops it). */
function deliver(
  state: GatewayState,
  res: ServerResponse,
  ctx: RequestContext,
  outcome: Outcome,
  response: Dispatcher.ResponseData,
): Readable {
  const responseHeaders = downstreamResponseHeaders(response.headers);
  applyResponseHeaders(responseHeaders, ctx);
  responseHeaders['x-request-id'] = ctx.id;
  if (state.draining) responseHeaders.connection = 'close';
  res.writeHead(response.statusCode, responseHeaders);
  const body = response.body;
  const length = response.headers['content-length'];
  const bodyless = ctx.method === 'HEAD' || response.statusCode === 204 || response.statusCode === 304;
  if (length !== undefined || bodyless) outcome.bytesOut = bodyless ? 0 : Number(length);
  else
    body.on('data', (chunk: Buffer) => {
      outcome.bytesOut += chunk.length;
    });
  body.once('error', (err) => {
    const { failure } = classifyUpstreamError(err);
    state.metrics.upstreamErrors.labels(ctx.rule.upstream.id, failure).inc();
    res.destroy();
  });
  if (state.analytics?.holdsResponses) pipeHoldingLast(body, res);
  else body.pipe(res);
  return body;
}

/** `body.pipe(res)` that sends the last chunk with `res.end()` (see ResponseRelay.holdLast). */
function pipeHoldingLast(body: Readable, res: ServerResponse): void {
  let last: Buffer | null = null;
  const resume = () => body.resume();
  body.on('data', (chunk: Buffer) => {
    if (res.destroyed) return; // the client left: the close listener stops the body
    const previous = last;
    last = chunk;
    if (previous === null || res.write(previous)) return;
    body.pause();
    res.once('drain', resume);
  });
  body.once('end', () => {
    if (last === null) res.end();
    else res.end(last);
  });
}

function answerUpstreamFailure(
  state: GatewayState,
  res: ServerResponse,
  ctx: RequestContext,
  outcome: Outcome,
  err: unknown,
  failure: UpstreamFailure,
  code: ProblemCode,
  how: { started: number; tries: number; close: boolean },
): void {
  const upstream = ctx.rule.upstream;
  state.metrics.upstreamErrors.labels(upstream.id, failure).inc();
  state.logger.warn(
    {
      requestId: ctx.id,
      upstream: upstream.id,
      failure,
      err: (err as Error).message,
      tries: how.tries,
      ms: Math.round(performance.now() - how.started),
    },
    'upstream call failed',
  );
  outcome.error = code;
  sendProblem(res, code, {
    requestId: ctx.id,
    headers: withResponseHeaders(ctx, undefined),
    close: how.close,
  });
}

/** Every target is unhealthy, ejected or has its circuit open: nothing is called. */
function noHealthyTarget(
  state: GatewayState,
  res: ServerResponse,
  ctx: RequestContext,
  outcome: Outcome,
  hasBody: boolean,
): void {
  state.metrics.upstreamErrors.labels(ctx.rule.upstream.id, 'no_healthy_target').inc();
  outcome.error = 'upstream_unavailable';
  sendProblem(res, 'upstream_unavailable', {
    detail: 'no healthy target',
    requestId: ctx.id,
    headers: withResponseHeaders(ctx, undefined),
    close: hasBody,
  });
}

function record(
  state: GatewayState,
  writeAccess: (entry: AccessEntry) => void,
  req: IncomingMessage,
  res: ServerResponse,
  outcome: Outcome,
): void {
  const ms = performance.now() - outcome.started;
  const status = res.headersSent ? res.statusCode : 0;
  const route = outcome.route || 'none';
  const { ctx, requestId } = outcome;
  state.metrics.observeRequest(route, outcome.method, status ? statusClass(status) : 'aborted', ms / 1000);
  if (!outcome.recorded) state.analytics?.record(finishCall(outcome, req, res, ms, res.writableFinished));
  outcome.trace?.end(status, ctx?.rule.template ?? null, outcome.error, outcome.upstreamMs);
  if (!state.plan.gateway.accessLog.enabled) return;
  writeAccess({
    requestId,
    route: outcome.route || null,
    method: outcome.method,
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

/** The outcome, complete as the call it is (see Outcome). */
function finishCall(
  outcome: Outcome,
  req: IncomingMessage,
  res: ServerResponse,
  ms: number,
  completed: boolean,
): RecordedCall {
  outcome.client = outcome.ctx?.client.address ?? req.socket.remoteAddress ?? '';
  outcome.status = res.headersSent ? res.statusCode : 0;
  outcome.latencyMs = ms;
  outcome.traceId = outcome.trace?.traceId ?? null;
  outcome.completed = completed;
  return outcome;
}

/**
 * Durable analytics (a spool): a response's `end()` waits (GatewayResponse.holdEnd) until the call's
 * event is in the spool file, so a gateway killed at any moment has the event of every call the
 * client got an answer to. The event is made at `end()`: its latency and byte counts are those of
 * that moment (the final flush to the client is not in the latency). One holder per handler.
 */
function endHolder(state: GatewayState): EndHolder<Outcome> {
  return {
    ended(res, outcome) {
      const recorder = state.analytics;
      if (outcome.recorded || !recorder) {
        res.releaseEnd();
        return;
      }
      outcome.recorded = true;
      const ms = performance.now() - outcome.started;
      recorder.recordThen(finishCall(outcome, res.req, res, ms, true), res);
    },
  };
}
