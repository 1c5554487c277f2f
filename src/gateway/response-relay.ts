import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { type Dispatcher, errors } from 'undici';
import type { RequestContext } from './context.ts';
import { applyResponseHeaders, downstreamResponseHeaders } from './headers.ts';
import type { LiveUpstream } from './upstream/live-upstream.ts';
import type { TargetRuntime } from './upstream/target.ts';

/** What the relay reports into: the request's access-log and metrics bookkeeping. */
export interface RelayOutcome {
  upstreamMs: number | null;
  bytesOut: number;
}

/** How a relay ends badly; functions of the handler, shared by every request. */
export interface RelayHooks<O extends RelayOutcome> {
  /** The call failed before the upstream answered (connect, timeout, reset, request body too large). */
  failedBeforeAnswer(relay: ResponseRelay<O>, err: Error): void;
  /** The upstream's answer broke off after its head was sent to the client. */
  failedMidBody(relay: ResponseRelay<O>, err: Error): void;
}

/**
 * An undici dispatch handler that writes the upstream's answer straight into the client's response:
 * the head once it arrives, each body chunk as it comes, pausing the upstream while the client's
 * socket is full. One object per forwarded request; it replaces `pool.request()`'s promise, its
 * AsyncResource and body stream and the pipe between that stream and the response, which together
 * cost more CPU per request than everything else the gateway does for a request on the noAuth
 * route (bench/RESULTS.md). A client that goes away aborts the upstream call (`clientClosed`).
 */
export class ResponseRelay<O extends RelayOutcome = RelayOutcome> implements Dispatcher.DispatchHandler {
  readonly res: ServerResponse;
  readonly ctx: RequestContext;
  readonly outcome: O;
  readonly live: LiveUpstream;
  readonly target: TargetRuntime;
  readonly draining: boolean;
  /**
   * Keep the latest body chunk back and send it with `res.end()`: the client must not have the
   * whole answer before `end()` (which the analytics spool may hold until the event is written).
   */
  readonly holdLast: boolean;
  readonly upstreamStarted: number;
  readonly hooks: RelayHooks<O>;
  #controller: Dispatcher.DispatchController | null = null;
  #clientGone = false;
  #settled = false;
  #answered = false;
  #countBytes = false;
  #drainListening = false;
  #last: Buffer | null = null;

  constructor(
    res: ServerResponse,
    ctx: RequestContext,
    outcome: O,
    live: LiveUpstream,
    target: TargetRuntime,
    draining: boolean,
    hooks: RelayHooks<O>,
    holdLast: boolean,
  ) {
    this.res = res;
    this.ctx = ctx;
    this.outcome = outcome;
    this.live = live;
    this.target = target;
    this.draining = draining;
    this.hooks = hooks;
    this.holdLast = holdLast;
    this.upstreamStarted = performance.now();
  }

  /** The client's response closed: if it did not finish, the upstream call is of no use any more. */
  clientClosed(): void {
    if (this.live.tracked) this.live.release(this.target);
    if (this.res.writableFinished) return;
    this.#clientGone = true;
    this.#controller?.abort(new errors.RequestAbortedError());
  }

  /** The client left before the relay started, or its answer is complete: no upstream data is wanted. */
  get clientGone(): boolean {
    return this.#clientGone;
  }

  /** Whether the upstream answered (its head was written to the client). */
  get answered(): boolean {
    return this.#answered;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#clientGone) controller.abort(new errors.RequestAbortedError());
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (statusCode < 200) return; // 1xx: informational, not relayed (as with pool.request())
    this.settle(statusCode < 500);
    this.outcome.upstreamMs = performance.now() - this.upstreamStarted;
    this.#answered = true;
    const { res, ctx } = this;
    const responseHeaders = downstreamResponseHeaders(
      headers as Record<string, string | string[] | undefined>,
    );
    applyResponseHeaders(responseHeaders, ctx);
    responseHeaders['x-request-id'] = ctx.id;
    if (this.draining) responseHeaders.connection = 'close';
    res.writeHead(statusCode, responseHeaders);
    const length = headers['content-length'];
    const bodyless = ctx.method === 'HEAD' || statusCode === 204 || statusCode === 304;
    if (length !== undefined || bodyless) this.outcome.bytesOut = bodyless ? 0 : Number(length);
    else this.#countBytes = true;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#clientGone) return;
    if (this.#countBytes) this.outcome.bytesOut += chunk.length;
    if (this.holdLast) {
      const previous = this.#last;
      this.#last = chunk;
      if (previous === null) return;
      chunk = previous;
    }
    if (this.res.write(chunk)) return;
    controller.pause();
    if (!this.#drainListening) {
      this.#drainListening = true;
      this.res.on('drain', () => this.#controller?.resume());
    }
  }

  onResponseEnd(): void {
    // The upstream call is over. The controller holds undici's request and the response's raw
    // headers: let them go now, not when the response closes — with the analytics spool the last
    // bytes wait for the turn's spool write (~0.3 ms), and the longer request objects live, the more
    // of them scavenges copy and promote.
    this.#controller = null;
    if (this.#clientGone) return;
    const last = this.#last;
    this.#last = null;
    if (last === null) this.res.end();
    else this.res.end(last);
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, err: Error): void {
    if (!this.#answered) {
      this.outcome.upstreamMs = performance.now() - this.upstreamStarted;
      this.hooks.failedBeforeAnswer(this, err);
      return;
    }
    // After the head: the client is told by a broken-off response; one that left caused this itself.
    if (!this.#clientGone && !this.res.destroyed) this.hooks.failedMidBody(this, err);
  }

  /** Reports the target's verdict to health tracking, once. */
  settle(ok: boolean | null): void {
    if (this.#settled) return;
    this.#settled = true;
    if (this.live.tracked) this.live.settle(this.target, ok);
  }
}
