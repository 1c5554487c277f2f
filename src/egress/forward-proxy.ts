import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { Agent } from 'undici';
import { type ProblemCode, problems, rawProblemResponse } from '../errors.ts';
import type { RequestContext } from '../gateway/context.ts';
import type { GatewayState } from '../gateway/handler.ts';
import { checkRawHeaders, clientAddress, requestIdFor } from '../gateway/headers.ts';
import { type PipelineResult, runPipeline } from '../gateway/pipeline.ts';
import { certificateOf } from '../gateway/request-context.ts';
import { sendProblem } from '../gateway/respond.ts';
import { classifyUpstreamError } from '../gateway/upstream-errors.ts';
import { unmapIPv4 } from '../plan/trusted-proxies.ts';
import type { Plan } from '../plan/types.ts';
import { type AccessEntry, createAccessLog } from '../telemetry/access-log.ts';
import { statusClass } from '../telemetry/metrics.ts';
import { type CompiledForwardProxy, forwardProxyRuleId } from './compile.ts';
import { forwardRequestHeaders, forwardResponseHeaders } from './forward-headers.ts';
import { createEgressMetrics, type EgressMetrics, type EgressResult, otherDestination } from './metrics.ts';
import { type Lookup, type Resolution, resolveDestination, systemLookup } from './resolve.ts';
import { isAbsoluteForm, type ProxyTarget, parseAbsoluteTarget, parseConnectTarget } from './targets.ts';

type Listener = RequestContext['listener'];

/** Bookkeeping of one proxied request for the access log and metrics. */
interface Outcome {
  destination: string;
  host: string | null;
  path: string | null;
  error: ProblemCode | null;
  upstreamMs: number | null;
  bytesIn: number;
  bytesOut: number;
}

class BodyTooLarge extends Error {
  readonly code = 'GATEHOUSE_BODY_TOO_LARGE';
}

/**
 * The forward proxy of an egress gateway: absolute-form `http://` requests are forwarded and
 * CONNECT opens a TCP tunnel, after the proxy's policies (authenticate, authorize, limits), only to
 * allow-listed destinations, and only to an address that was resolved once and checked (never a
 * loopback, private, link-local or metadata one unless allowed). Reads the current plan on every
 * request, so a reload changes the allow-list without a restart.
 */
export class ForwardProxy {
  readonly #state: GatewayState;
  readonly #metrics: EgressMetrics;
  readonly #writeAccess: (entry: AccessEntry) => void;
  readonly #lookup: Lookup;
  /** Connection pools to destinations, by connect timeout (a plan's setting). */
  readonly #agents = new Map<number, Agent>();
  readonly #tunnels = new Set<Socket>();

  constructor(state: GatewayState, lookup: Lookup = systemLookup) {
    this.#state = state;
    this.#metrics = createEgressMetrics(state.metrics.registry);
    this.#writeAccess = createAccessLog(state.logger);
    this.#lookup = lookup;
  }

  /** The request is the forward proxy's: an absolute-form target, on a gateway that serves one. */
  accepts(req: IncomingMessage): boolean {
    return this.#state.plan.forwardProxy != null && isAbsoluteForm(req.url ?? '');
  }

  /** An absolute-form request (`GET http://host/path HTTP/1.1`). */
  handleRequest(req: IncomingMessage, res: ServerResponse, listener: Listener): void {
    const started = performance.now();
    const plan = this.#state.plan;
    const proxy = plan.forwardProxy!;
    const peer = peerOf(req, plan);
    const requestId = requestIdFor(req.headers, peer.trusted, randomUUID);
    const outcome: Outcome = {
      destination: otherDestination,
      host: null,
      path: null,
      error: null,
      upstreamMs: null,
      bytesIn: 0,
      bytesOut: 0,
    };
    res.once('close', () => this.#record(req, res, outcome, requestId, peer.address, started));
    if (this.#state.draining) res.setHeader('connection', 'close');
    const hasBody =
      req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    const refuse = (
      code: ProblemCode,
      detail: string | undefined,
      result: EgressResult,
      headers?: Readonly<Record<string, string>>,
    ) => {
      this.#metrics.count(outcome.destination, result);
      outcome.error = code;
      sendProblem(res, code, { detail, requestId, headers, close: hasBody && !req.readableEnded });
    };

    const headerProblem = checkRawHeaders(req.rawHeaders);
    if (headerProblem) {
      refuse(headerProblem.code, headerProblem.detail, 'rejected');
      return;
    }
    const parsed = parseAbsoluteTarget(req.url ?? '');
    if (!parsed.ok) {
      refuse('bad_target', parsed.detail, 'rejected');
      return;
    }
    const { target } = parsed;
    outcome.host = target.authority;
    outcome.path = target.path;
    const allowed = proxy.destinations.match(target.host, target.port);
    if (allowed !== null) outcome.destination = allowed;
    const ctx = this.#context(req, plan, proxy, listener, requestId, peer, target, outcome.destination);
    if (ctx === null) {
      refuse('client_certificate_invalid', 'the client certificate did not verify', 'rejected');
      return;
    }

    this.#admit(ctx, allowed, proxy).then(
      (admission) => {
        if (res.destroyed) return;
        if (admission.kind === 'refuse')
          return refuse(
            admission.code,
            admission.detail,
            admission.result,
            withResponseHeaders(ctx, admission.headers),
          );
        if (admission.kind === 'answer') {
          this.#metrics.count(outcome.destination, 'rejected');
          res.writeHead(admission.status, {
            ...withResponseHeaders(ctx, admission.headers),
            'x-request-id': requestId,
          });
          res.end();
          return;
        }
        this.#forward(req, res, ctx, proxy, target, admission.resolution, outcome, refuse);
      },
      (err: unknown) => {
        this.#state.logger.error({ err, requestId }, 'forward proxy failed: request denied');
        refuse('internal_error', undefined, 'failed');
      },
    );
  }

  /** A CONNECT request: a TCP tunnel to `host:port` once everything allows it. */
  handleConnect(req: IncomingMessage, socket: Socket, head: Buffer, listener: Listener): void {
    socket.on('error', () => socket.destroy());
    const started = performance.now();
    const plan = this.#state.plan;
    const proxy = plan.forwardProxy;
    const peer = peerOf(req, plan);
    const requestId = requestIdFor(req.headers, peer.trusted, randomUUID);
    let destination = otherDestination;
    let host: string | null = null;
    const entry = (status: number, error: ProblemCode | null, bytesIn = 0, bytesOut = 0): AccessEntry => ({
      requestId,
      route: forwardProxyRuleId,
      method: 'CONNECT',
      host,
      path: null,
      status,
      ms: performance.now() - started,
      upstreamMs: null,
      bytesIn,
      bytesOut,
      client: peer.address,
      error,
      completed: error === null,
    });
    const refuse = (
      code: ProblemCode,
      detail: string | undefined,
      result: EgressResult,
      headers?: Readonly<Record<string, string>>,
    ) => {
      if (proxy != null) this.#metrics.count(destination, result); // ingress gateways count no egress
      this.#log(entry(problems[code].status, code));
      if (!socket.destroyed) socket.end(rawProblemResponse(code, detail, requestId, headers));
    };
    // Not a forward proxy (an ingress, or forwardProxy disabled): CONNECT is not a request it serves.
    if (proxy == null) {
      refuse('bad_target', 'CONNECT is only accepted by a forward proxy', 'rejected');
      return;
    }
    if (this.#state.draining) {
      refuse('shutting_down', undefined, 'rejected');
      return;
    }
    const headerProblem = checkRawHeaders(req.rawHeaders);
    if (headerProblem) {
      refuse(headerProblem.code, headerProblem.detail, 'rejected');
      return;
    }
    const parsed = parseConnectTarget(req.url ?? '');
    if (!parsed.ok) {
      refuse('bad_target', parsed.detail, 'rejected');
      return;
    }
    const { target } = parsed;
    host = target.authority;
    const allowed = proxy.destinations.match(target.host, target.port);
    if (allowed !== null) destination = allowed;
    const ctx = this.#context(req, plan, proxy, listener, requestId, peer, target, destination);
    if (ctx === null) {
      refuse('client_certificate_invalid', 'the client certificate did not verify', 'rejected');
      return;
    }

    this.#admit(ctx, allowed, proxy).then(
      (admission) => {
        if (socket.destroyed) return;
        if (admission.kind === 'refuse')
          return refuse(
            admission.code,
            admission.detail,
            admission.result,
            withResponseHeaders(ctx, admission.headers),
          );
        if (admission.kind === 'answer') return refuse('bad_request', 'not a CONNECT answer', 'rejected');
        const { address, family } = admission.resolution;
        const upstream = connect({ host: address, port: target.port, family });
        upstream.setTimeout(proxy.connectTimeoutMs);
        let failedOnce = false;
        const failed = (code: ProblemCode) => {
          upstream.destroy();
          if (failedOnce) return; // a timeout and an error of the same attempt answer once
          failedOnce = true;
          refuse(code, undefined, 'failed');
        };
        upstream.once('timeout', () => failed('upstream_unavailable'));
        upstream.once('error', (err) => failed(classifyUpstreamError(err).code));
        socket.once('close', () => upstream.destroy());
        upstream.once('connect', () => {
          upstream.removeAllListeners('timeout');
          upstream.removeAllListeners('error');
          if (socket.destroyed) {
            upstream.destroy();
            return;
          }
          this.#metrics.count(destination, 'forwarded');
          this.#tunnel(socket, upstream, head, proxy.idleTimeoutMs, requestId, () =>
            this.#log(entry(200, null, socket.bytesRead, socket.bytesWritten)),
          );
        });
      },
      (err: unknown) => {
        this.#state.logger.error({ err, requestId }, 'forward proxy failed: tunnel refused');
        refuse('internal_error', undefined, 'failed');
      },
    );
  }

  /** Ends every tunnel and closes the pools to destinations (gateway shutdown, after the drain). */
  close(): void {
    for (const tunnel of this.#tunnels) tunnel.destroy();
    this.#tunnels.clear();
    for (const agent of this.#agents.values()) agent.destroy().catch(() => {});
    this.#agents.clear();
  }

  /**
   * The checks before any connection, in order: the proxy's policies (who may use it), the
   * allow-list (where to), then the destination's address (resolved once, checked, kept).
   */
  async #admit(
    ctx: RequestContext,
    allowed: string | null,
    proxy: CompiledForwardProxy,
  ): Promise<
    | {
        kind: 'refuse';
        code: ProblemCode;
        detail?: string;
        result: EgressResult;
        headers?: Readonly<Record<string, string>>;
      }
    | { kind: 'answer'; status: number; headers: Readonly<Record<string, string>> }
    | { kind: 'connect'; resolution: Extract<Resolution, { ok: true }> }
  > {
    const verdict: PipelineResult = await runPipeline(proxy.rule, ctx);
    if (verdict.kind === 'respond')
      return {
        kind: 'refuse',
        code: verdict.code,
        detail: verdict.detail,
        result: 'rejected',
        headers: verdict.headers,
      };
    if (verdict.kind === 'answer')
      return { kind: 'answer', status: verdict.status, headers: verdict.headers };
    if (allowed === null)
      return {
        kind: 'refuse',
        code: 'egress_denied',
        detail: 'destination is not on the allow-list',
        result: 'denied',
      };
    const resolution = await resolveDestination(
      ctx.host,
      proxy.addresses,
      this.#lookup,
      proxy.resolveTimeoutMs,
    );
    if (resolution.ok) return { kind: 'connect', resolution };
    if (resolution.reason === 'refused')
      return {
        kind: 'refuse',
        code: 'egress_denied',
        detail: `destination resolves to a ${resolution.kind} address`,
        result: 'refused',
      };
    const detail =
      resolution.reason === 'timeout'
        ? 'destination name not resolved in time'
        : 'destination name does not resolve';
    return { kind: 'refuse', code: 'upstream_unavailable', detail, result: 'failed' };
  }

  #forward(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: RequestContext,
    proxy: CompiledForwardProxy,
    target: ProxyTarget,
    resolution: Extract<Resolution, { ok: true }>,
    outcome: Outcome,
    refuse: (code: ProblemCode, detail: string | undefined, result: EgressResult) => void,
  ): void {
    const max = ctx.plan.limits.maxBodyBytes;
    const lengthHeader = req.headers['content-length'];
    let body: Readable | null = null;
    if (lengthHeader !== undefined) {
      const length = Number(lengthHeader);
      if (length > max) {
        refuse('payload_too_large', `limit is ${max} bytes`, 'rejected');
        return;
      }
      if (length > 0) {
        outcome.bytesIn = length;
        body = req;
      }
    } else if (req.headers['transfer-encoding'] !== undefined) {
      body = Readable.from(limitedBody(req, max, outcome), { objectMode: false });
    }
    const { address, family } = resolution;
    const origin = `http://${family === 6 ? `[${address}]` : address}:${target.port}`;
    const abort = new AbortController();
    let responseBody: Readable | null = null;
    res.once('close', () => {
      if (res.writableFinished) return;
      abort.abort();
      if (responseBody && !responseBody.readableEnded) responseBody.destroy();
    });
    const upstreamStarted = performance.now();
    this.#agent(proxy.connectTimeoutMs)
      .request({
        origin,
        path: target.pathAndQuery,
        method: ctx.method,
        headers: forwardRequestHeaders(req.rawHeaders, ctx, target.authority),
        body,
        signal: abort.signal,
        headersTimeout: proxy.responseTimeoutMs,
        bodyTimeout: proxy.idleTimeoutMs,
      })
      .then(
        (response) => {
          outcome.upstreamMs = performance.now() - upstreamStarted;
          this.#metrics.count(outcome.destination, 'forwarded');
          const headers = forwardResponseHeaders(response.headers, ctx.id);
          if (ctx.responseHeaders) for (const [name, value] of ctx.responseHeaders) headers[name] = value;
          if (this.#state.draining) headers.connection = 'close';
          res.writeHead(response.statusCode, headers);
          responseBody = response.body;
          response.body.on('data', (chunk: Buffer) => {
            outcome.bytesOut += chunk.length;
          });
          response.body.once('error', () => res.destroy());
          response.body.pipe(res);
        },
        (err: unknown) => {
          outcome.upstreamMs = performance.now() - upstreamStarted;
          if (res.destroyed) return;
          if (err instanceof BodyTooLarge || (err as { cause?: unknown }).cause instanceof BodyTooLarge) {
            refuse('payload_too_large', `limit is ${max} bytes`, 'rejected');
            return;
          }
          const { failure, code } = classifyUpstreamError(err);
          this.#state.logger.warn(
            { requestId: ctx.id, destination: outcome.destination, failure, err: (err as Error).message },
            'forward proxy call failed',
          );
          refuse(code, undefined, 'failed');
        },
      );
  }

  /** Joins the client and destination sockets byte for byte; either side closing or idling ends both. */
  #tunnel(
    client: Socket,
    upstream: Socket,
    head: Buffer,
    idleMs: number,
    requestId: string,
    done: () => void,
  ): void {
    this.#tunnels.add(client);
    let finished = false;
    const end = () => {
      if (finished) return;
      finished = true;
      this.#tunnels.delete(client);
      client.destroy();
      upstream.destroy();
      done();
    };
    upstream.on('error', end);
    upstream.on('close', end);
    client.on('close', end);
    client.setTimeout(idleMs, end);
    upstream.setTimeout(idleMs, end);
    client.write(`HTTP/1.1 200 Connection Established\r\nx-request-id: ${requestId}\r\n\r\n`);
    if (head.length > 0) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
  }

  #agent(connectTimeoutMs: number): Agent {
    let agent = this.#agents.get(connectTimeoutMs);
    if (!agent) {
      agent = new Agent({
        connect: { timeout: connectTimeoutMs },
        keepAliveTimeout: 4_000,
        keepAliveMaxTimeout: 60_000,
        maxHeaderSize: 65_536,
      });
      this.#agents.set(connectTimeoutMs, agent);
    }
    return agent;
  }

  /** The request as the proxy's policies see it; null when a presented client certificate did not verify. */
  #context(
    req: IncomingMessage,
    plan: Plan,
    proxy: CompiledForwardProxy,
    listener: Listener,
    requestId: string,
    peer: { address: string; trusted: boolean },
    target: ProxyTarget,
    destination: string,
  ): RequestContext | null {
    const tls = listener.protocol === 'https';
    const socket = req.socket as TLSSocket;
    if (tls && !socket.authorized && socket.getPeerCertificate?.()?.raw) return null;
    return {
      id: requestId,
      plan,
      rule: proxy.rule,
      method: req.method ?? 'GET',
      host: target.host,
      path: target.path,
      query: target.query,
      params: { destination },
      headers: req.headers,
      client: {
        address: clientAddress(req.headers, peer.address, peer.trusted, plan.trustedProxies),
        peerAddress: peer.address,
        trustedPeer: peer.trusted,
      },
      listener,
      peerCertificate: tls ? certificateOf(req) : null,
      identity: null,
      upstreamHeaders: null,
      traceparent: undefined,
    };
  }

  #record(
    req: IncomingMessage,
    res: ServerResponse,
    outcome: Outcome,
    requestId: string,
    client: string,
    started: number,
  ): void {
    const status = res.headersSent ? res.statusCode : 0;
    this.#log({
      requestId,
      route: forwardProxyRuleId,
      method: req.method ?? '',
      host: outcome.host,
      path: outcome.path,
      status,
      ms: performance.now() - started,
      upstreamMs: outcome.upstreamMs,
      bytesIn: outcome.bytesIn,
      bytesOut: outcome.bytesOut,
      client,
      error: outcome.error,
      completed: res.writableFinished,
    });
  }

  #log(entry: AccessEntry): void {
    const status = entry.status;
    this.#state.metrics.observeRequest(
      forwardProxyRuleId,
      entry.method,
      status ? statusClass(status) : 'aborted',
      entry.ms / 1000,
    );
    if (this.#state.plan.gateway.accessLog.enabled) this.#writeAccess(entry);
  }
}

function peerOf(req: IncomingMessage, plan: Plan): { address: string; trusted: boolean } {
  const address = unmapIPv4(req.socket.remoteAddress ?? '');
  return { address, trusted: plan.trustedProxies(address) };
}

/** A verdict's headers plus those policies recorded for every answer (rate-limit state…). */
function withResponseHeaders(
  ctx: RequestContext,
  headers: Readonly<Record<string, string>> | undefined,
): Record<string, string> | undefined {
  if (!ctx.responseHeaders) return headers;
  return { ...Object.fromEntries(ctx.responseHeaders), ...headers };
}

/** Counts a chunked body as it streams, failing the call once it passes the limit. */
async function* limitedBody(req: IncomingMessage, max: number, outcome: Outcome) {
  for await (const chunk of req as AsyncIterable<Buffer>) {
    outcome.bytesIn += chunk.length;
    if (outcome.bytesIn > max) throw new BodyTooLarge();
    yield chunk;
  }
}
