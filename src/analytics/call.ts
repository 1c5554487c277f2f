import type { RequestContext } from '../gateway/context.ts';
import type { CompiledRule } from '../plan/types.ts';
import { type ApiEvent, num, str } from './event.ts';

/**
 * What the request path hands over when a response finishes: references to what it already holds
 * and a few numbers. Turned into an ApiEvent later, off the response's path (see shipper.ts).
 */
export interface RecordedCall {
  /** Request received, ms since the epoch. */
  readonly time: number;
  readonly requestId: string;
  /** Null when admission refused the request (no route, bad request). */
  readonly ctx: RequestContext | null;
  readonly method: string;
  readonly client: string;
  /** 0 when no response head was sent (client gone, connection reset). */
  readonly status: number;
  readonly latencyMs: number;
  readonly upstreamMs: number | null;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly error: string | null;
  readonly traceId: string | null;
  readonly completed: boolean;
}

/** What the gateway's request path calls: must return at once and never throw. */
export interface ApiEventRecorder {
  record(call: RecordedCall): void;
  /**
   * Whether a response's last bytes wait for its event (a disk spool: the event must be in the
   * spool file before the client has the whole answer, so a killed gateway loses no answered call).
   */
  readonly holdsResponses: boolean;
  /**
   * Records the call and calls `release` (which sends the response's last bytes) once its event is
   * in the spool file. Group commit: the calls of one event-loop turn share one write(2). `release`
   * is called exactly once, also when the event cannot be stored (dropped and counted: nothing waits
   * on a full or failing spool).
   */
  recordThen(call: RecordedCall, release: () => void): void;
}

const authFailures = new Set([
  'unauthenticated',
  'invalid_token',
  'invalid_api_key',
  'client_certificate_invalid',
]);

function authResult(call: RecordedCall): ApiEvent['authResult'] {
  if (call.ctx?.identity) return 'ok';
  if (call.error === null) return 'none';
  if (authFailures.has(call.error)) return 'failed';
  if (call.error === 'identity_provider_unavailable') return 'unavailable';
  return 'none';
}

function rateLimitResult(call: RecordedCall): ApiEvent['rateLimit'] {
  if (call.error === 'rate_limited') return 'limited';
  if (call.error === 'rate_limit_unavailable') return 'unavailable';
  const ctx = call.ctx;
  if (ctx === null || ctx.identity === null) return 'none';
  for (const step of ctx.rule.pipeline) if (step.stage === 'limit') return 'allowed';
  return 'none';
}

/** `namespace/apirule#index` → the API (`namespace/apirule`) and the rule index. */
function splitRuleId(id: string): { api: string; rule: number | null } {
  const hash = id.lastIndexOf('#');
  if (hash < 0) return { api: id, rule: null };
  const rule = Number(id.slice(hash + 1));
  return { api: id.slice(0, hash), rule: Number.isInteger(rule) ? rule : null };
}

export function toEvent(call: RecordedCall, gateway: string, id: string): ApiEvent {
  const ctx = call.ctx;
  const identity = ctx?.identity ?? null;
  const route = ctx ? splitRuleId(ctx.rule.id) : null;
  const latency = Math.max(0, call.latencyMs);
  const upstream = call.upstreamMs === null ? null : Math.max(0, call.upstreamMs);
  return {
    v: 1,
    id,
    time: Math.floor(call.time),
    requestId: call.requestId,
    gateway,
    api: route?.api ?? null,
    route: ctx?.rule.id ?? null,
    rule: route?.rule ?? null,
    consumer: identity?.consumer?.name ?? null,
    subject: identity?.subject ?? null,
    client: call.client,
    method: call.method,
    host: ctx?.host ?? null,
    pathTemplate: ctx?.rule.template ?? null,
    pathParams: ctx ? Object.keys(ctx.params) : [],
    status: call.status,
    latencyMs: latency,
    upstreamMs: upstream,
    gatewayMs: upstream === null ? latency : Math.max(0, latency - upstream),
    bytesIn: call.bytesIn,
    bytesOut: call.bytesOut,
    authMethod: identity?.method ?? null,
    authResult: authResult(call),
    rateLimit: rateLimitResult(call),
    error: call.error,
    traceId: call.traceId,
    completed: call.completed,
  };
}

/**
 * One call as event JSON, the same document as `eventJson(toEvent(call, gateway, id))` without the
 * intermediate object: it runs for every request, on the event loop the requests share. What only
 * depends on the rule (gateway, API, route, template, parameter names) is formatted once per
 * compiled rule and reused.
 */
export function createCallSerialiser(gateway: string): (call: RecordedCall, id: string) => string {
  const gatewayJson = str(gateway);
  const unrouted = `"gateway":${gatewayJson},"api":null,"route":null,"rule":null`;
  const fragments = new WeakMap<CompiledRule, { head: string; path: string; limited: boolean }>();
  // Parameter names come from the route template, so every request of a rule has the same ones.
  const ruleFragments = (rule: CompiledRule, params: Readonly<Record<string, string>>) => {
    let f = fragments.get(rule);
    if (f === undefined) {
      const { api, rule: index } = splitRuleId(rule.id);
      const names = Object.keys(params).map(str).join(',');
      f = {
        head: `"gateway":${gatewayJson},"api":${str(api)},"route":${str(rule.id)},"rule":${index === null ? 'null' : index}`,
        path: `"pathTemplate":${str(rule.template)},"pathParams":[${names}]`,
        limited: rule.pipeline.some((step) => step.stage === 'limit'),
      };
      fragments.set(rule, f);
    }
    return f;
  };
  return (call, id) => {
    const ctx = call.ctx;
    const identity = ctx === null ? null : ctx.identity;
    let head = unrouted;
    let path = '"pathTemplate":null,"pathParams":[]';
    let limited = false;
    if (ctx !== null) {
      const f = ruleFragments(ctx.rule, ctx.params);
      head = f.head;
      path = f.path;
      limited = f.limited;
    }
    const error = call.error;
    const rateLimit =
      error === 'rate_limited'
        ? 'limited'
        : error === 'rate_limit_unavailable'
          ? 'unavailable'
          : limited && identity !== null
            ? 'allowed'
            : 'none';
    const latency = Math.max(0, call.latencyMs);
    const upstream = call.upstreamMs === null ? null : Math.max(0, call.upstreamMs);
    const gatewayMs = upstream === null ? latency : latency > upstream ? latency - upstream : 0;
    // Unescaped where the gateway guarantees the characters: methods (HTTP tokens), error codes,
    // authentication method names, hex trace ids. Anything else is escaped when it needs it.
    const method = identity === null ? 'null' : `"${identity.method}"`;
    return (
      `{"v":1,"id":"${id}","time":${Math.floor(call.time)},"requestId":${str(call.requestId)},${head},` +
      `"consumer":${str(identity?.consumer?.name)},"subject":${str(identity?.subject)},"client":${str(call.client)},` +
      `"method":"${call.method}","host":${ctx === null ? 'null' : str(ctx.host)},${path},"status":${call.status},` +
      `"latencyMs":${num(latency)},"upstreamMs":${num(upstream)},"gatewayMs":${num(gatewayMs)},` +
      `"bytesIn":${call.bytesIn},"bytesOut":${call.bytesOut},"authMethod":${method},` +
      `"authResult":"${authResult(call)}","rateLimit":"${rateLimit}","error":${error === null ? 'null' : `"${error}"`},` +
      `"traceId":${call.traceId === null ? 'null' : `"${call.traceId}"`},"completed":${call.completed}}`
    );
  };
}
