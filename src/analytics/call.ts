import type { RequestContext } from '../gateway/context.ts';
import type { CompiledRule } from '../plan/types.ts';
import { type ApiEvent, needsEscape, str } from './event.ts';
import { createEventIdWriter, EVENT_ID_BYTES, type EventIdWriter } from './event-id.ts';

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
   * Records the call and calls `held.releaseEnd()` (which sends the response's last bytes) once its
   * event is in the spool file. Group commit: the calls of one event-loop turn share one write(2).
   * `releaseEnd` is called exactly once, also when the event cannot be stored (dropped and counted:
   * nothing waits on a full or failing spool).
   */
  recordThen(call: RecordedCall, held: HeldEnd): void;
}

/** A response whose last bytes wait (GatewayResponse): an object, so that no closure is made per call. */
export interface HeldEnd {
  releaseEnd(): void;
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

/** `limited`: the rule has a limit stage (the writer knows it per rule; toEvent looks). */
function rateLimitResult(call: RecordedCall, limited: boolean): ApiEvent['rateLimit'] {
  if (call.error === 'rate_limited') return 'limited';
  if (call.error === 'rate_limit_unavailable') return 'unavailable';
  if (call.ctx === null || call.ctx.identity === null) return 'none';
  return limited ? 'allowed' : 'none';
}

const hasLimit = (rule: CompiledRule) => rule.pipeline.some((step) => step.stage === 'limit');

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
    rateLimit: rateLimitResult(call, ctx !== null && hasLimit(ctx.rule)),
    error: call.error,
    traceId: call.traceId,
    completed: call.completed,
  };
}

/** Latin-1 bytes of a fragment that is pure ASCII. */
const ascii = (text: string) => Buffer.from(text, 'latin1');

const AUTH_RESULTS = ['ok', 'failed', 'unavailable', 'none'] as const;
const RATE_LIMITS = ['none', 'allowed', 'limited', 'unavailable'] as const;
type ResultFragments = Record<ApiEvent['authResult'], Record<ApiEvent['rateLimit'], Buffer>>;
const byResults = (fragment: (auth: string, limit: string) => string) =>
  Object.fromEntries(
    AUTH_RESULTS.map((a) => [a, Object.fromEntries(RATE_LIMITS.map((r) => [r, ascii(fragment(a, r))]))]),
  ) as ResultFragments;
/** `,"authResult":…,"rateLimit":…,"error":` for every pair of results: one copy, not four writes. */
const resultFragments = byResults((a, r) => `,"authResult":"${a}","rateLimit":"${r}","error":`);
/** The same from `,"authMethod":` to `,"traceId":` for the common call: no identity, no error. */
const quietResultFragments = byResults(
  (a, r) => `,"authMethod":null,"authResult":"${a}","rateLimit":"${r}","error":null,"traceId":`,
);
/** `,"method":"…","host":` for the methods seen (HTTP tokens: no escaping), a bounded few. */
const methodFragments = new Map<string, Buffer>();
const METHOD_FRAGMENTS = 32;
function methodFragment(method: string): Buffer | undefined {
  let f = methodFragments.get(method);
  if (f === undefined && methodFragments.size < METHOD_FRAGMENTS && /^[A-Z]{1,16}$/.test(method)) {
    f = ascii(`,"method":"${method}","host":`);
    methodFragments.set(method, f);
  }
  return f;
}
const F = {
  open: ascii('{"v":1,"id":"'),
  time: ascii('","time":'),
  requestId: ascii(',"requestId":'),
  subject: ascii(',"subject":'),
  client: ascii(',"client":'),
  method: ascii(',"method":"'),
  host: ascii('","host":'),
  latency: ascii(',"latencyMs":'),
  upstream: ascii(',"upstreamMs":'),
  gatewayMs: ascii(',"gatewayMs":'),
  bytesIn: ascii(',"bytesIn":'),
  bytesOut: ascii(',"bytesOut":'),
  authMethod: ascii(',"authMethod":'),
  traceId: ascii(',"traceId":'),
  completed: ascii(',"completed":true}'),
  incomplete: ascii(',"completed":false}'),
  null: ascii('null'),
};
/** Bytes of everything an event holds besides its strings and its rule's fragments, with room to spare. */
const FIXED_BYTES = 640;

/** Writes `text` as a JSON string literal (or null) at `at`; returns the end. Pure ASCII (see `str`). */
function putString(buf: Buffer, at: number, text: string | null | undefined): number {
  if (text === null || text === undefined) return at + buf.write('null', at, 'latin1');
  if (needsEscape.test(text)) return at + buf.write(str(text), at, 'latin1');
  buf[at++] = 0x22;
  at += buf.write(text, at, 'latin1');
  buf[at++] = 0x22;
  return at;
}

/** The JSON of a non-negative integer (below 2^53), digit by digit: no string is made. */
function putInt(buf: Buffer, at: number, n: number): number {
  if (n < 10) {
    buf[at] = 0x30 + n;
    return at + 1;
  }
  let digits = 1;
  for (let p = 10; p <= n; p *= 10) digits++;
  let end = at + digits;
  const next = end;
  while (end > at) {
    const q = Math.floor(n / 10);
    buf[--end] = 0x30 + (n - q * 10);
    n = q;
  }
  return next;
}

/** `num(value)` written in place: milliseconds to the microsecond, trailing zeros dropped. */
function putMs(buf: Buffer, at: number, value: number | null): number {
  if (value === null) return at + buf.write('null', at, 'latin1');
  const us = Math.round(value * 1000);
  const whole = Math.floor(us / 1000);
  let frac = us - whole * 1000;
  at = putInt(buf, at, whole);
  if (frac === 0) return at;
  buf[at++] = 0x2e; // '.'
  let width = 3;
  while (frac % 10 === 0) {
    frac /= 10;
    width--;
  }
  for (let i = width - 1; i >= 0; i--) {
    buf[at + i] = 0x30 + (frac % 10);
    frac = Math.floor(frac / 10);
  }
  return at + width;
}

function put(buf: Buffer, at: number, bytes: Buffer): number {
  buf.set(bytes, at);
  return at + bytes.length;
}

/**
 * Writes one call as event JSON into a buffer: the same document as `eventJson(toEvent(call, gateway,
 * id))`, without the intermediate object or any string. It runs for every request on the event loop
 * the requests share; a built string (~40 pieces, then flattened to be copied) allocated ~2.6 KB per
 * call that the young generation then had to collect. What only depends on the rule (gateway, API,
 * route, template, parameter names) is encoded once per compiled rule and copied.
 */
export interface CallWriter {
  /**
   * Writes the event, with the next event id, into `into.buf` at `at` — first replacing the buffer
   * with a bigger one (the bytes before `at` copied) when the event might not fit — and returns where
   * it ends.
   */
  write(call: RecordedCall, into: { buf: Buffer }, at: number): number;
}

interface RuleFragments {
  /** `,"gateway":…,"api":…,"route":…,"rule":…,"consumer":` */
  readonly head: Buffer;
  /** The head, then `null,"subject":null,"client":`: a call without an identity. */
  readonly anonymousHead: Buffer;
  /** `,"pathTemplate":…,"pathParams":[…],"status":` */
  readonly path: Buffer;
  readonly limited: boolean;
}

export function createCallWriter(
  gateway: string,
  writeId: EventIdWriter = createEventIdWriter(),
): CallWriter {
  const gatewayJson = str(gateway);
  const anonymous = (head: string) => ascii(`${head}null,"subject":null,"client":`);
  const unroutedHead = `,"gateway":${gatewayJson},"api":null,"route":null,"rule":null,"consumer":`;
  const unrouted: RuleFragments = {
    head: ascii(unroutedHead),
    anonymousHead: anonymous(unroutedHead),
    path: ascii(',"pathTemplate":null,"pathParams":[],"status":'),
    limited: false,
  };
  const fragments = new WeakMap<CompiledRule, RuleFragments>();
  // Parameter names come from the route template, so every request of a rule has the same ones.
  const ruleFragments = (ctx: RequestContext): RuleFragments => {
    const rule = ctx.rule;
    let f = fragments.get(rule);
    if (f === undefined) {
      const { api, rule: index } = splitRuleId(rule.id);
      const names = Object.keys(ctx.params).map(str).join(',');
      const head =
        `,"gateway":${gatewayJson},"api":${str(api)},"route":${str(rule.id)},` +
        `"rule":${index === null ? 'null' : index},"consumer":`;
      f = {
        head: ascii(head),
        anonymousHead: anonymous(head),
        path: ascii(`,"pathTemplate":${str(rule.template)},"pathParams":[${names}],"status":`),
        limited: hasLimit(rule),
      };
      fragments.set(rule, f);
    }
    return f;
  };
  // The most bytes the call's event may take: escaped as \uXXXX a character takes 6.
  const strBytes = (text: string | null | undefined) => (text ? text.length * 6 + 2 : 4);
  const bound = (call: RecordedCall, f: RuleFragments) => {
    const ctx = call.ctx;
    const identity = ctx === null ? null : ctx.identity;
    return (
      FIXED_BYTES +
      f.head.length +
      f.path.length +
      EVENT_ID_BYTES +
      call.method.length +
      strBytes(call.requestId) +
      strBytes(call.client) +
      strBytes(ctx?.host) +
      strBytes(identity?.consumer?.name) +
      strBytes(identity?.subject) +
      strBytes(identity?.method) +
      strBytes(call.error) +
      strBytes(call.traceId)
    );
  };
  return {
    write(call, into, at) {
      const ctx = call.ctx;
      const identity = ctx === null ? null : ctx.identity;
      const f = ctx === null ? unrouted : ruleFragments(ctx);
      const need = at + bound(call, f);
      if (need > into.buf.length) {
        const grown = Buffer.allocUnsafe(Math.max(need, into.buf.length * 2));
        into.buf.copy(grown, 0, 0, at);
        into.buf = grown;
      }
      const buf = into.buf;
      const error = call.error;
      const latency = Math.max(0, call.latencyMs);
      const upstream = call.upstreamMs === null ? null : Math.max(0, call.upstreamMs);
      const gatewayMs = upstream === null ? latency : latency > upstream ? latency - upstream : 0;
      at = put(buf, at, F.open);
      at = writeId(buf, at, call.time);
      at = put(buf, at, F.time);
      at = putInt(buf, at, Math.floor(call.time));
      at = put(buf, at, F.requestId);
      at = putString(buf, at, call.requestId);
      if (identity === null) at = put(buf, at, f.anonymousHead);
      else {
        at = put(buf, at, f.head);
        at = putString(buf, at, identity.consumer?.name);
        at = put(buf, at, F.subject);
        at = putString(buf, at, identity.subject);
        at = put(buf, at, F.client);
      }
      at = putString(buf, at, call.client);
      const method = methodFragment(call.method);
      if (method !== undefined) at = put(buf, at, method);
      else {
        // Unescaped: the method (an HTTP token; the id is hex); every other string goes through putString.
        at = put(buf, at, F.method);
        at += buf.write(call.method, at, 'latin1');
        at = put(buf, at, F.host);
      }
      at = putString(buf, at, ctx === null ? null : ctx.host);
      at = put(buf, at, f.path);
      at = putInt(buf, at, call.status);
      at = put(buf, at, F.latency);
      at = putMs(buf, at, latency);
      at = put(buf, at, F.upstream);
      at = putMs(buf, at, upstream);
      at = put(buf, at, F.gatewayMs);
      at = putMs(buf, at, gatewayMs);
      at = put(buf, at, F.bytesIn);
      at = putInt(buf, at, call.bytesIn);
      at = put(buf, at, F.bytesOut);
      at = putInt(buf, at, call.bytesOut);
      const auth = authResult(call);
      const limit = rateLimitResult(call, f.limited);
      if (identity === null && error === null) at = put(buf, at, quietResultFragments[auth][limit]);
      else {
        at = put(buf, at, F.authMethod);
        at = identity === null ? put(buf, at, F.null) : putString(buf, at, identity.method);
        at = put(buf, at, resultFragments[auth][limit]);
        at = error === null ? put(buf, at, F.null) : putString(buf, at, error);
        at = put(buf, at, F.traceId);
      }
      at = call.traceId === null ? put(buf, at, F.null) : putString(buf, at, call.traceId);
      return put(buf, at, call.completed ? F.completed : F.incomplete);
    },
  };
}
