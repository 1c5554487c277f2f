// One evaluation of a request that is described rather than received, shared by `gatehouse explain`,
// the admin port's POST /explain and the decision endpoint: the same admission checks as the
// request path (canonical.ts, headers.ts, the router), then the rule's pipeline, without forwarding.

import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import { type ProblemCode, problems } from '../errors.ts';
import { unmapIPv4 } from '../plan/trusted-proxies.ts';
import type { CompiledRule, Plan } from '../plan/types.ts';
import { isShadowPolicy, type ShadowDenial, shadowPolicy } from '../plan/shadow.ts';
import type { CompiledPolicy, Stage, Verdict } from '../policies/types.ts';
import { canonicalTarget, parseAuthority } from './canonical.ts';
import type { Identity, RequestContext } from './context.ts';
import { upstreamRequestHeaders } from './headers.ts';
import { type PipelineResult, runPipeline } from './pipeline.ts';
import { type Admission, admitRequest, upstreamPath } from './request-context.ts';

/** A request described rather than received on a socket. */
export interface DescribedRequest {
  readonly method: string;
  /** The request target as a client would send it (origin-form: `/path?query`). */
  readonly target: string;
  /** Header lines as received, `[name, value, …]`, Host included. */
  readonly rawHeaders: readonly string[];
  readonly listener: RequestContext['listener'];
  /** Who sent it: a trusted proxy's X-Forwarded-For / X-Request-Id are kept, like on a listener. */
  readonly peerAddress: string;
}

// Headers Node's parser keeps only the first copy of (http.IncomingMessage#headers); the rest are
// joined with ", " ("; " for cookie), set-cookie becomes an array. Mirrored so a described request
// gets the same `headers` object a received one would.
const firstCopyOnly = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

/** The `headers` object Node would build from these header lines. */
export function headersFromRaw(rawHeaders: readonly string[]): IncomingHttpHeaders {
  const headers: Record<string, string | string[]> = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const value = rawHeaders[i + 1]!;
    const existing = headers[name];
    if (name === 'set-cookie') headers[name] = [...((existing as string[] | undefined) ?? []), value];
    else if (existing === undefined) headers[name] = value;
    else if (firstCopyOnly.has(name)) continue;
    else headers[name] = `${existing}${name === 'cookie' ? '; ' : ', '}${value}`;
  }
  return headers as IncomingHttpHeaders;
}

const methodPattern = /^[A-Z]{1,20}$/;

/** Canonicalises and routes a described request: the checks `admit` makes on a received one. */
export function admitDescribed(plan: Plan, request: DescribedRequest): Admission {
  if (!methodPattern.test(request.method)) {
    return {
      ok: false,
      code: 'bad_request',
      detail: 'method is not an HTTP method name',
      requestId: randomUUID(),
    };
  }
  return admitRequest(plan, {
    ...request,
    headers: headersFromRaw(request.rawHeaders),
    // The client's certificate, if any, ended at whoever described the request.
    peerCertificate: null,
    certificateRejected: false,
  });
}

/** A policy's part in the outcome, in pipeline order. */
export interface PolicyReport {
  readonly stage: Stage;
  readonly policy: string;
  /**
   * continue / skip / respond: what it answered. not-run: an earlier verdict decided.
   * not-evaluated: explain leaves it alone (limits would consume counters). error: it threw.
   */
  readonly verdict: 'continue' | 'skip' | 'respond' | 'not-run' | 'not-evaluated' | 'error';
  readonly status?: number;
  readonly code?: ProblemCode;
  readonly detail?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly note?: string;
}

export type Outcome =
  | {
      readonly decision: 'forward';
      readonly upstream: string;
      /** Where the request would go: the upstream's origin and the path sent. */
      readonly url: string;
      /** Headers the gateway and the rule's policies set upstream (credentials redacted). */
      readonly set: Readonly<Record<string, string>>;
      /** Client headers the policies keep from going upstream (e.g. an API key). */
      readonly removed: readonly string[];
      /** Every header line sent upstream, in order (credentials redacted). */
      readonly headers: ReadonlyArray<readonly [string, string]>;
    }
  | {
      readonly decision: 'deny';
      readonly status: number;
      readonly code: ProblemCode;
      readonly detail?: string;
      readonly headers?: Readonly<Record<string, string>>;
    }
  | {
      /** The gateway answers itself, not an error (a CORS preflight): nothing is forwarded. */
      readonly decision: 'answer';
      readonly status: number;
      readonly headers: Readonly<Record<string, string>>;
    };

/** What the gateway would do with a request, and why. Plain JSON. */
export interface Explanation {
  readonly gateway: string;
  readonly planVersion: string;
  /** True on a running gateway (live key sets); false for `gatehouse explain` (nothing contacted). */
  readonly live: boolean;
  readonly request: {
    readonly method: string;
    readonly target: string;
    readonly host: string | null;
    readonly listener: string;
    readonly protocol: 'http' | 'https';
    readonly peer: string;
    readonly trustedPeer: boolean;
    readonly requestId: string;
  };
  /** The canonical request; null when it was rejected before routing (a 404 keeps it). */
  readonly canonical: {
    readonly method: string;
    readonly host: string;
    readonly path: string;
    readonly query: string;
  } | null;
  /** Why the request was refused before any policy ran (400s, and 404 when no rule matches). */
  readonly rejected: { readonly status: number; readonly code: ProblemCode; readonly detail: string } | null;
  readonly route: {
    readonly id: string;
    readonly template: string;
    readonly params: Readonly<Record<string, string>>;
    readonly upstream: string;
  } | null;
  readonly policies: readonly PolicyReport[];
  readonly identity: ExplainedIdentity | null;
  readonly outcome: Outcome;
}

export interface ExplainedIdentity {
  readonly method: string;
  readonly subject: string | null;
  readonly provider?: string;
  readonly scopes?: readonly string[];
  readonly consumer?: string;
  readonly groups?: readonly string[];
  readonly certificate?: string;
}

/** The pipeline's answer for an admitted request; `error` when a policy threw (a 500 on the request path). */
export type Evaluation =
  | { readonly kind: 'result'; readonly result: PipelineResult }
  | { readonly kind: 'error'; readonly error: unknown }
  | { readonly kind: 'timeout' };

export interface EvaluateOptions {
  /** The pipeline to run instead of the rule's own (explain's copy that changes no state). */
  readonly rule?: CompiledRule;
  readonly onVerdict?: (stage: Stage, policy: CompiledPolicy, verdict: Verdict) => void;
  /** Give up on a policy that does not answer (explain only; the request path relies on the policies' own bounds). */
  readonly timeoutMs?: number;
}

/**
 * The rule as explain runs it, so that explaining changes no state: `limit` policies are left out
 * (they would consume counters) and shadow-mode policies report their would-be denial to
 * `shadowDenials` instead of the gateway's log and metrics. `replaced` maps each original policy
 * to the one run in its place.
 */
function ruleForExplain(rule: CompiledRule): {
  rule: CompiledRule;
  replaced: Map<CompiledPolicy, CompiledPolicy>;
  shadowDenials: Map<CompiledPolicy, ShadowDenial>;
} {
  const replaced = new Map<CompiledPolicy, CompiledPolicy>();
  const shadowDenials = new Map<CompiledPolicy, ShadowDenial>();
  const pipeline = rule.pipeline
    .filter((s) => s.stage !== 'limit')
    .map(({ stage, policies }) => ({
      stage,
      policies: policies.map((policy) => {
        if (!isShadowPolicy(policy)) return policy;
        const where = { policy: policy.shadow.policy, route: rule.id };
        const quiet: CompiledPolicy = shadowPolicy(policy.shadow.inner, where, (d) =>
          shadowDenials.set(quiet, d),
        );
        replaced.set(policy, quiet);
        return quiet;
      }),
    }));
  return { rule: { ...rule, pipeline }, replaced, shadowDenials };
}

/** Runs the rule's pipeline on an admitted request, exactly as the request path does. Never throws. */
export async function evaluate(ctx: RequestContext, options: EvaluateOptions = {}): Promise<Evaluation> {
  const rule = options.rule ?? ctx.rule;
  let pending: PipelineResult | Promise<PipelineResult>;
  try {
    pending = runPipeline(rule, ctx, options.onVerdict);
  } catch (error) {
    return { kind: 'error', error };
  }
  if (!(pending instanceof Promise)) return { kind: 'result', result: pending };
  const settled = pending.then(
    (result): Evaluation => ({ kind: 'result', result }),
    (error: unknown): Evaluation => ({ kind: 'error', error }),
  );
  if (options.timeoutMs === undefined) return settled;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Evaluation>((resolve) => {
    timer = setTimeout(() => resolve({ kind: 'timeout' }), options.timeoutMs);
  });
  try {
    return await Promise.race([settled, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// Header values that are credentials are not echoed back in an explanation.
const credentialHeader = /authorization|cookie|token|secret|password|api-?key/i;

function redact(name: string, value: string): string {
  return credentialHeader.test(name) ? '<redacted>' : value;
}

/** Gateway-owned headers on the upstream request (see headers.ts). */
const gatewayOwned = new Set([
  'host',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
  'x-request-id',
]);

export interface ExplainOptions {
  /** True when the plan's identity providers are live (admin port), false offline (CLI). */
  readonly live: boolean;
  readonly timeoutMs?: number;
}

/** Explains what the gateway would do with a described request. Never forwards; never throws. */
export async function explain(
  plan: Plan,
  request: DescribedRequest,
  options: ExplainOptions,
): Promise<Explanation> {
  const admission = admitDescribed(plan, request);
  const peer = unmapIPv4(request.peerAddress);
  const host = headersFromRaw(request.rawHeaders).host ?? null;
  const base = {
    gateway: plan.gatewayName,
    planVersion: plan.version,
    live: options.live,
    request: {
      method: request.method,
      target: request.target,
      host,
      listener: request.listener.name,
      protocol: request.listener.protocol,
      peer,
      trustedPeer: plan.trustedProxies(peer),
      requestId: admission.ok ? admission.ctx.id : admission.requestId,
    },
  };
  if (!admission.ok) {
    const status = problems[admission.code].status;
    const { code, detail } = admission;
    return {
      ...base,
      // Routing failed on a valid canonical request: show what was routed on.
      canonical: code === 'route_not_found' ? canonicalOf(request.method, request.target, host) : null,
      rejected: { status, code, detail },
      route: null,
      policies: [],
      identity: null,
      outcome: { decision: 'deny', status, code, detail },
    };
  }
  const { ctx, rawHost } = admission;
  const seen = new Map<CompiledPolicy, Verdict>();
  const quiet = ruleForExplain(ctx.rule);
  const evaluation = await evaluate(ctx, {
    rule: quiet.rule,
    timeoutMs: options.timeoutMs,
    onVerdict: (_stage, policy, verdict) => seen.set(policy, verdict),
  });
  const outcome = outcomeOf(evaluation, ctx, rawHost, request.rawHeaders);
  return {
    ...base,
    canonical: { method: ctx.method, host: ctx.host, path: ctx.path, query: ctx.query },
    rejected: null,
    route: {
      id: ctx.rule.id,
      template: ctx.rule.template,
      params: ctx.params,
      upstream: ctx.rule.upstream.id,
    },
    policies: reportPolicies(ctx.rule, quiet, seen, evaluation, options.live),
    identity: ctx.identity ? explainIdentity(ctx.identity) : null,
    outcome,
  };
}

function canonicalOf(method: string, target: string, host: string | null): Explanation['canonical'] {
  const t = canonicalTarget(target);
  const a = parseAuthority(host ?? '');
  return t.ok && a.ok ? { method, host: a.hostname, path: t.path, query: t.query } : null;
}

function outcomeOf(
  evaluation: Evaluation,
  ctx: RequestContext,
  rawHost: string,
  rawHeaders: readonly string[],
): Outcome {
  if (evaluation.kind === 'error') return deny('internal_error', 'a policy threw: the request is denied');
  if (evaluation.kind === 'timeout') return deny('internal_error', 'a policy did not answer in time');
  const { result } = evaluation;
  if (result.kind === 'respond') return deny(result.code, result.detail, result.headers);
  if (result.kind === 'answer') return { decision: 'answer', status: result.status, headers: result.headers };
  const sent = upstreamRequestHeaders(rawHeaders, ctx, rawHost).map((v, i, all) =>
    i % 2 === 0 ? [v, redact(v, all[i + 1]!)] : null,
  );
  const headers = sent.filter((pair): pair is [string, string] => pair !== null);
  const set: Record<string, string> = {};
  const removed: string[] = [];
  for (const [name, value] of headers) if (gatewayOwned.has(name)) set[name] = value;
  for (const [name, value] of ctx.upstreamHeaders ?? []) {
    if (value === null) removed.push(name);
    else set[name] = redact(name, value);
  }
  return {
    decision: 'forward',
    upstream: ctx.rule.upstream.id,
    url: ctx.rule.upstream.origin + upstreamPath(ctx),
    set,
    removed,
    headers,
  };
}

function deny(code: ProblemCode, detail?: string, headers?: Readonly<Record<string, string>>): Outcome {
  return {
    decision: 'deny',
    status: problems[code].status,
    code,
    ...(detail !== undefined ? { detail } : {}),
    ...(headers !== undefined ? { headers } : {}),
  };
}

function reportPolicies(
  rule: CompiledRule,
  quiet: ReturnType<typeof ruleForExplain>,
  seen: ReadonlyMap<CompiledPolicy, Verdict>,
  evaluation: Evaluation,
  live: boolean,
): PolicyReport[] {
  const reports: PolicyReport[] = [];
  const verdictOf = (p: CompiledPolicy) => seen.get(quiet.replaced.get(p) ?? p);
  const authenticated = rule.pipeline
    .find((s) => s.stage === 'authenticate')
    ?.policies.some((p) => verdictOf(p)?.kind === 'continue');
  // The first policy without a verdict is the one that threw or did not answer (limits aside).
  let failing = evaluation.kind !== 'result';
  for (const { stage, policies } of rule.pipeline) {
    for (const policy of policies) {
      const verdict = verdictOf(policy);
      const entry = { stage, policy: policy.name };
      if (stage === 'limit') {
        reports.push({
          ...entry,
          verdict: 'not-evaluated',
          note: 'explain does not consume rate-limit counters',
        });
      } else if (verdict) {
        const report = reportVerdict(entry, verdict, live);
        const replacement = quiet.replaced.get(policy);
        const shadowed = replacement ? quiet.shadowDenials.get(replacement) : undefined;
        reports.push(
          shadowed
            ? {
                ...report,
                note:
                  `shadow mode: would have answered ${problems[shadowed.code].status} ${shadowed.code}` +
                  (shadowed.detail ? `: ${shadowed.detail}` : ''),
              }
            : report,
        );
      } else if (failing) {
        failing = false;
        reports.push({
          ...entry,
          verdict: 'error',
          note: evaluation.kind === 'timeout' ? 'did not answer in time' : describeError(evaluation),
        });
      } else {
        const note =
          stage === 'authenticate' && authenticated
            ? 'an earlier method authenticated the request'
            : 'an earlier verdict decided';
        reports.push({ ...entry, verdict: 'not-run', note });
      }
    }
  }
  return reports;
}

function reportVerdict(
  entry: { stage: Stage; policy: string },
  verdict: Verdict,
  live: boolean,
): PolicyReport {
  if (verdict.kind === 'continue') return { ...entry, verdict: 'continue' };
  if (verdict.kind === 'skip') {
    const note = entry.stage === 'authenticate' ? 'no credential of its kind' : 'not responsible';
    return { ...entry, verdict: 'skip', note };
  }
  if (verdict.kind === 'answer') {
    return {
      ...entry,
      verdict: 'respond',
      status: verdict.status,
      headers: verdict.headers,
      note: 'answered by the gateway',
    };
  }
  const offline = !live && verdict.code === 'identity_provider_unavailable';
  return {
    ...entry,
    verdict: 'respond',
    status: problems[verdict.code].status,
    code: verdict.code,
    ...(verdict.detail !== undefined ? { detail: verdict.detail } : {}),
    ...(verdict.headers !== undefined ? { headers: verdict.headers } : {}),
    ...(offline
      ? { note: 'identity provider not contacted offline: POST /explain on the admin port uses live keys' }
      : {}),
  };
}

function describeError(evaluation: Evaluation): string {
  if (evaluation.kind !== 'error') return '';
  const error = evaluation.error;
  return `threw: ${error instanceof Error ? error.message : String(error)}`;
}

function explainIdentity(identity: Identity): ExplainedIdentity {
  return {
    method: identity.method,
    subject: identity.subject,
    ...(identity.provider !== undefined ? { provider: identity.provider } : {}),
    ...(identity.scopes !== undefined ? { scopes: [...identity.scopes].sort() } : {}),
    ...(identity.consumer !== undefined
      ? { consumer: identity.consumer.name, groups: [...identity.consumer.groups] }
      : {}),
    ...(identity.certificate !== undefined ? { certificate: identity.certificate.subject } : {}),
  };
}

/** What a person or a tool asks about: `gatehouse explain` and POST /explain. */
export interface ExplainInput {
  readonly method: string;
  /** Absolute (`https://api.example.com/orders/1`) or origin-form (`/orders/1`, with a Host header). */
  readonly url: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** Listener it arrives on; default: the first whose protocol is the URL's scheme. */
  readonly listener?: string;
  /** Address it comes from; default: 192.0.2.1 (documentation range), a client that is not a trusted proxy. */
  readonly peer?: string;
}

export const defaultPeer = '192.0.2.1';

const tokenPattern = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const fieldValuePattern = /^[\t\x20-\x7e\x80-\xff]*$/;
const absoluteUrl = /^(https?):\/\/([^/?#]*)(.*)$/i;

/** Turns an explain input into a described request, or says what is wrong with the input. */
export function describeInput(
  plan: Plan,
  input: ExplainInput,
): { ok: true; request: DescribedRequest } | { ok: false; message: string } {
  const fail = (message: string) => ({ ok: false, message }) as const;
  for (const [name, value] of input.headers) {
    if (!tokenPattern.test(name)) return fail(`not a header name: ${JSON.stringify(name)}`);
    if (!fieldValuePattern.test(value)) return fail(`header ${name}: value has control characters`);
  }
  // A fragment never leaves a client.
  const url = input.url.split('#')[0]!;
  const absolute = absoluteUrl.exec(url);
  let target = url;
  let scheme: 'http' | 'https' | null = null;
  const rawHeaders: string[] = [];
  if (absolute) {
    scheme = absolute[1]!.toLowerCase() as 'http' | 'https';
    const rest = absolute[3]!;
    target = rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest;
    // Like curl: a Host header given explicitly wins over the URL's authority.
    if (!input.headers.some(([name]) => name.toLowerCase() === 'host')) rawHeaders.push('Host', absolute[2]!);
  } else if (!url.startsWith('/')) {
    return fail('the URL must be absolute (http://host/path) or start with / (with -H "Host: …")');
  } else if (!input.headers.some(([name]) => name.toLowerCase() === 'host')) {
    return fail('a URL without scheme and host needs a Host header');
  }
  for (const [name, value] of input.headers) rawHeaders.push(name, value);
  const listeners = plan.listeners.map((l) => l.spec);
  const listener =
    input.listener !== undefined
      ? listeners.find((l) => l.name === input.listener)
      : (listeners.find((l) => scheme === null || l.protocol === scheme) ?? undefined);
  if (!listener) {
    const names = listeners.map((l) => `${l.name} (${l.protocol})`).join(', ');
    return fail(
      input.listener !== undefined
        ? `no listener named ${input.listener} (listeners: ${names})`
        : `no ${scheme} listener (listeners: ${names}); choose one with --listener`,
    );
  }
  const peer = input.peer ?? defaultPeer;
  if (!isIP(peer)) return fail(`not an IP address: ${peer}`);
  return {
    ok: true,
    request: {
      method: input.method.toUpperCase(),
      target,
      rawHeaders,
      listener: { name: listener.name, protocol: listener.protocol },
      peerAddress: peer,
    },
  };
}
