import { randomFillSync } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import {
  context,
  type Context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  type Tracer,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { toMillis } from '../config/duration.ts';
import type { TracingSpec } from './tracing-schema.ts';

/** The spans of one request, as the gateway's request path uses them. */
export interface RequestTrace {
  /** 32 hex digits; also in the request's API event. */
  readonly traceId: string;
  /** Runs `fn` with the request span active, so calls it makes (key sets, introspection) become child spans. */
  run<T>(fn: () => T): T;
  /** Starts the span of the call to `upstream` (its id); returns the `traceparent` to send there (that span is its parent). */
  startUpstream(method: string, origin: string): string;
  /** Ends the spans: the upstream one after `upstreamMs` (null: it failed before an answer), the request one now. */
  end(status: number, template: string | null, error: string | null, upstreamMs: number | null): void;
}

export interface RequestTracing {
  /** A request's trace, continuing the caller's `traceparent` when it sent a valid one. */
  begin(method: string, headers: IncomingHttpHeaders): RequestTrace;
  close(): Promise<void>;
}

const headerGetter = {
  get: (carrier: IncomingHttpHeaders, key: string) => carrier[key],
  keys: (carrier: IncomingHttpHeaders) => Object.keys(carrier),
};

const propagator = new W3CTraceContextPropagator();
const tracerName = 'gatehouse';

/**
 * OpenTelemetry tracing for the gateway (Gateway `spec.tracing`): the SDK's TracerProvider with a
 * parent-based ratio sampler and a BatchSpanProcessor exporting OTLP/HTTP JSON. Installed as the
 * global provider with an AsyncLocalStorage context manager, so `withClientSpan` anywhere (key-set
 * fetches, introspection) nests under the request that caused the call. Spans are ended with the
 * times the request path measured already; nothing about tracing waits for I/O.
 */
export function createRequestTracing(spec: TracingSpec, gatewayName: string): RequestTracing {
  const exporter = new OTLPTraceExporter({
    url: spec.otlp.url,
    headers: spec.otlp.headers,
    timeoutMillis: toMillis(spec.otlp.timeout),
  });
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': spec.serviceName ?? `gatehouse-${gatewayName}` }),
    // The root decision (sampleRatio) is taken in begin(), before the SDK is involved: a request
    // not sampled costs no SDK span at all. What reaches the SDK is recorded.
    sampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter,
        maxQueueSize: spec.maxQueueSize,
        maxExportBatchSize: Math.min(spec.maxQueueSize, 1024),
        scheduledDelayMillis: Math.max(10, toMillis(spec.exportInterval)),
        exportTimeoutMillis: toMillis(spec.otlp.timeout),
      }),
    ],
  });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(propagator);
  trace.setGlobalTracerProvider(provider);
  const tracer = provider.getTracer(tracerName);
  const ratio = spec.sampleRatio;
  return {
    begin(method, headers) {
      const incoming = headers.traceparent;
      const parsed = typeof incoming === 'string' ? traceparentPattern.exec(incoming) : null;
      if (parsed !== null) {
        if ((Number.parseInt(parsed[3]!, 16) & 1) === 0) return new UnrecordedTrace(parsed[1]!, null);
      } else if (ratio < 1 && (ratio === 0 || Math.random() >= ratio)) {
        // The trace id and the upstream call's span id from one draw (one hex conversion, not two).
        const ids = randomHex(24);
        return new UnrecordedTrace(ids.slice(0, 32), ids.slice(32));
      }
      const parent = parsed === null ? ROOT_CONTEXT : propagator.extract(ROOT_CONTEXT, headers, headerGetter);
      const span = tracer.startSpan(
        method,
        { kind: SpanKind.SERVER, attributes: { 'http.request.method': method } },
        parent,
      );
      return new SpanPair(tracer, method, span, trace.setSpan(parent, span));
    },
    async close() {
      await provider.shutdown().catch(() => {});
      trace.disable();
      propagation.disable();
      context.disable();
    },
  };
}

const traceparentPattern = /^00-((?!0{32})[0-9a-f]{32})-((?!0{16})[0-9a-f]{16})-([0-9a-f]{2})$/;

/** Random bytes for ids, drawn 4 KiB at a time. */
const idPool = Buffer.allocUnsafe(4096);
let idPoolAt = idPool.length;
function randomHex(bytes: number): string {
  if (idPoolAt + bytes > idPool.length) {
    randomFillSync(idPool);
    idPoolAt = 0;
  }
  idPoolAt += bytes;
  return idPool.toString('hex', idPoolAt - bytes, idPoolAt);
}

/**
 * A request that is not recorded (not sampled, or its caller's trace is not): it still has a trace id
 * (in its event, and continued upstream with the sampled flag off) but costs no SDK span.
 */
class UnrecordedTrace implements RequestTrace {
  readonly traceId: string;
  #spanId: string | null;
  /** `spanId`: the first upstream call's, drawn with the trace id; null: drawn when a call starts. */
  constructor(traceId: string, spanId: string | null) {
    this.traceId = traceId;
    this.#spanId = spanId;
  }
  run<T>(fn: () => T): T {
    return fn();
  }
  startUpstream(): string {
    // Each call (a retry is another) has its own parent id.
    const spanId = this.#spanId ?? randomHex(8);
    this.#spanId = null;
    return `00-${this.traceId}-${spanId}-00`;
  }
  end(): void {}
}

class SpanPair implements RequestTrace {
  readonly #tracer: Tracer;
  readonly #method: string;
  readonly #span: Span;
  readonly #context: Context;
  #upstream: Span | null = null;
  #upstreamStart = 0;

  constructor(tracer: Tracer, method: string, span: Span, ctx: Context) {
    this.#tracer = tracer;
    this.#method = method;
    this.#span = span;
    this.#context = ctx;
  }

  get traceId(): string {
    return this.#span.spanContext().traceId;
  }

  run<T>(fn: () => T): T {
    return context.with(this.#context, fn);
  }

  startUpstream(method: string, upstream: string): string {
    this.#upstreamStart = performance.now();
    const span = this.#tracer.startSpan(
      `${method} upstream`,
      {
        kind: SpanKind.CLIENT,
        attributes: { 'http.request.method': method, 'gatehouse.upstream': upstream },
      },
      this.#context,
    );
    this.#upstream = span;
    const sc = span.spanContext();
    return `00-${sc.traceId}-${sc.spanId}-0${sc.traceFlags & 1}`;
  }

  end(status: number, template: string | null, error: string | null, upstreamMs: number | null): void {
    const upstream = this.#upstream;
    if (upstream !== null) {
      if (upstreamMs === null) upstream.setStatus({ code: SpanStatusCode.ERROR });
      else upstream.setAttribute('http.response.status_code', status);
      const endedAt = upstreamMs === null ? performance.now() : this.#upstreamStart + upstreamMs;
      upstream.end(performance.timeOrigin + endedAt);
    }
    const span = this.#span;
    if (!span.isRecording()) return;
    if (template !== null) {
      span.updateName(`${this.#method} ${template}`);
      span.setAttribute('http.route', template);
    }
    span.setAttribute('http.response.status_code', status);
    if (error !== null) span.setAttribute('gatehouse.error', error);
    if (status >= 500 || status === 0) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  }
}

/**
 * A client span around `fn` (a key-set fetch, an introspection call) when a recorded span is active
 * (a request that is traced); otherwise just `fn`, so background work makes no traces of its own.
 */
export function withClientSpan<T>(
  name: string,
  attributes: Record<string, string>,
  fn: () => Promise<T>,
): Promise<T> {
  const active = trace.getActiveSpan();
  if (active === undefined || !active.isRecording()) return fn();
  return trace
    .getTracer(tracerName)
    .startActiveSpan(name, { kind: SpanKind.CLIENT, attributes }, async (span) => {
      try {
        return await fn();
      } catch (err) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
        throw err;
      } finally {
        span.end();
      }
    });
}
