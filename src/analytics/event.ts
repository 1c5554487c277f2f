import Type, { type Static } from 'typebox';
import { Compile } from 'typebox/compile';

/**
 * The API event record, schema version 1 (docs/analytics.md): one per call the gateway answered or
 * refused, flat so it maps to one table row. Additive changes keep version 1; anything else bumps it.
 */
export const EVENT_SCHEMA_VERSION = 1;

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);
const ShortString = Type.String({ maxLength: 512 });

export const ApiEventV1 = Type.Object(
  {
    v: Type.Literal(1),
    id: Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' }),
    time: Type.Integer({ minimum: 0, description: 'Request received, ms since the epoch.' }),
    requestId: ShortString,
    gateway: ShortString,
    api: Nullable(ShortString),
    route: Nullable(ShortString),
    rule: Nullable(Type.Integer({ minimum: 0 })),
    consumer: Nullable(ShortString),
    subject: Nullable(ShortString),
    client: ShortString,
    method: Type.String({ maxLength: 32 }),
    host: Nullable(ShortString),
    pathTemplate: Nullable(Type.String({ maxLength: 2048 })),
    pathParams: Type.Array(ShortString, { maxItems: 64 }),
    status: Type.Integer({ minimum: 0, maximum: 999 }),
    latencyMs: Type.Number({ minimum: 0 }),
    upstreamMs: Nullable(Type.Number({ minimum: 0 })),
    gatewayMs: Type.Number({ minimum: 0 }),
    bytesIn: Type.Integer({ minimum: 0 }),
    bytesOut: Type.Integer({ minimum: 0 }),
    authMethod: Nullable(Type.String({ maxLength: 64 })),
    authResult: Type.Union([
      Type.Literal('ok'),
      Type.Literal('failed'),
      Type.Literal('unavailable'),
      Type.Literal('none'),
    ]),
    rateLimit: Type.Union([
      Type.Literal('none'),
      Type.Literal('allowed'),
      Type.Literal('limited'),
      Type.Literal('unavailable'),
    ]),
    error: Nullable(Type.String({ maxLength: 128 })),
    traceId: Nullable(Type.String({ pattern: '^[0-9a-f]{32}$' })),
    completed: Type.Boolean(),
  },
  { additionalProperties: true },
);
export type ApiEvent = Static<typeof ApiEventV1>;

const compiled = Compile(ApiEventV1);

/** Null when the value is a valid v1 event, else the first problem found (for the ingestion answer). */
export function eventProblem(value: unknown): string | null {
  if (compiled.Check(value)) return null;
  const first = compiled.Errors(value)[0];
  return first ? `${first.instancePath || '/'} ${first.message}` : 'not a valid event';
}

export const needsEscape = /["\\\u0000-\u001f\u007f-\uffff]/;

const nonAscii = /[\u007f-\uffff]/g;
const unicodeEscape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * A JSON string literal (or null), escaping only when the value needs it. The result is pure ASCII
 * (non-ASCII characters become \uXXXX), so event JSON converts to bytes as Latin-1: a plain copy.
 */
export function str(value: string | null | undefined): string {
  if (value === null || value === undefined) return 'null';
  return needsEscape.test(value) ? JSON.stringify(value).replace(nonAscii, unicodeEscape) : `"${value}"`;
}

/**
 * Milliseconds rounded to the microsecond (or null), formatted from integers: turning a double into
 * its shortest decimal string costs several times more, and this runs three times per event.
 */
export function num(value: number | null): string {
  if (value === null) return 'null';
  const us = Math.round(value * 1000);
  const whole = Math.floor(us / 1000);
  const frac = us - whole * 1000;
  if (frac === 0) return `${whole}`;
  const digits = frac < 10 ? `00${frac}` : frac < 100 ? `0${frac}` : `${frac}`;
  return `${whole}.${digits.endsWith('00') ? digits[0] : digits.endsWith('0') ? digits.slice(0, 2) : digits}`;
}

/**
 * One event as JSON, formatted by hand: it runs once per request (off the response's path, once
 * per event-loop turn for the turn's events), and a generic serialiser would cost several times as much.
 */
export function eventJson(e: ApiEvent): string {
  let params = '[';
  for (let i = 0; i < e.pathParams.length; i++) params += (i ? ',' : '') + str(e.pathParams[i]!);
  params += ']';
  return (
    `{"v":1,"id":"${e.id}","time":${e.time},"requestId":${str(e.requestId)},"gateway":${str(e.gateway)},` +
    `"api":${str(e.api)},"route":${str(e.route)},"rule":${e.rule === null ? 'null' : e.rule},` +
    `"consumer":${str(e.consumer)},"subject":${str(e.subject)},"client":${str(e.client)},` +
    `"method":${str(e.method)},"host":${str(e.host)},"pathTemplate":${str(e.pathTemplate)},` +
    `"pathParams":${params},"status":${e.status},"latencyMs":${num(e.latencyMs)},` +
    `"upstreamMs":${num(e.upstreamMs)},"gatewayMs":${num(e.gatewayMs)},"bytesIn":${e.bytesIn},` +
    `"bytesOut":${e.bytesOut},"authMethod":${str(e.authMethod)},"authResult":"${e.authResult}",` +
    `"rateLimit":"${e.rateLimit}","error":${str(e.error)},"traceId":${str(e.traceId)},` +
    `"completed":${e.completed}}`
  );
}
