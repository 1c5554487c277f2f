import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { Agent } from 'undici';
import { discoveryDocument, FetchJsonError, fetchJsonObject } from './fetch-json.ts';
import { toMillis } from '../config/duration.ts';
import type { IdentityProviderSpec } from '../config/schemas/identity-provider.ts';
import type { Claims, CredentialCheck, Introspector, ProviderDeps } from './types.ts';

/** Longest time an `active: false` (or otherwise refused) answer is reused. */
const REFUSED_TTL_MS = 10_000;

interface CachedAnswer {
  readonly check: CredentialCheck;
  /** Epoch ms after which the answer must be asked again. */
  readonly until: number;
}

/** Why the endpoint could not give an answer; becomes `unavailable` (503), never a 500. */
class Unavailable extends Error {}

/**
 * RFC 7662 client of one identity provider. Answers are cached under a SHA-256 of the token
 * (never the token) for at most `cacheTtl` and never past the token's `exp`; refusals for at most
 * 10s so a flood of bad tokens does not reach the provider. Concurrent lookups of one token share
 * one call. A cache hit answers synchronously. Anything short of a well-formed 200 answer within
 * the timeout and size cap is `unavailable`: the caller fails closed.
 *
 * Throws TypeError at creation when the client secret's environment variable is not set (only when
 * `deps.start`: an offline validate has no secrets).
 */
export function createIntrospector(id: string, spec: IdentityProviderSpec, deps: ProviderDeps): Introspector {
  const config = spec.introspection;
  if (!config) throw new TypeError(`IdentityProvider ${id} has no introspection settings`);
  const secretName = config.clientSecret.env;
  const secret = deps.env[secretName] ?? '';
  if (secret === '' && deps.start)
    throw new TypeError(
      `environment variable ${secretName} (introspection client secret of IdentityProvider ${id}) is not set`,
    );
  if (config.endpoint === undefined) checkDiscoverable(id, spec.issuer);
  const limits = { timeoutMs: toMillis(config.timeout), maxBytes: config.maxResponseBytes };
  const cacheTtlMs = toMillis(config.cacheTtl);
  const refusedTtlMs = Math.min(cacheTtlMs, REFUSED_TTL_MS);
  const skewMs = toMillis(spec.clockSkew);
  const basicAuth =
    config.authMethod === 'client_secret_basic'
      ? `Basic ${Buffer.from(`${formEncode(config.clientId)}:${formEncode(secret)}`).toString('base64')}`
      : null;

  const answers = new LRUCache<string, CachedAnswer>({ max: config.cacheMaxEntries });
  const inFlight = new Map<string, Promise<CredentialCheck>>();
  const agent = new Agent({ connect: { timeout: limits.timeoutMs }, keepAliveTimeout: 10_000 });
  let endpoint: Promise<string> | null =
    config.endpoint === undefined ? null : Promise.resolve(config.endpoint);
  let closed = false;
  let failing = false;

  const noteOutcome = (check: CredentialCheck) => {
    if (check.ok || check.kind === 'invalid') {
      if (failing) deps.log('info', { provider: id }, 'token introspection recovered');
      failing = false;
    } else if (!failing && !closed) {
      failing = true;
      deps.log('warn', { provider: id, reason: check.reason }, 'token introspection failed: failing closed');
    }
  };

  const resolveEndpoint = (): Promise<string> => {
    endpoint ??= discover(spec.issuer, agent, limits).catch((err: unknown) => {
      endpoint = null; // not remembered: the next lookup tries again
      throw err;
    });
    return endpoint;
  };

  const lookup = async (token: string): Promise<CredentialCheck> => {
    const form = new URLSearchParams({ token, token_type_hint: 'access_token' });
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    };
    if (basicAuth) headers.authorization = basicAuth;
    else {
      form.set('client_id', config.clientId);
      form.set('client_secret', secret);
    }
    const answer = await callJson(
      await resolveEndpoint(),
      { method: 'POST', headers, body: form.toString() },
      agent,
      limits,
    );
    return judge(answer, spec, deps.now(), skewMs);
  };

  const start = (key: string, token: string): Promise<CredentialCheck> => {
    const pending = lookup(token)
      .catch((err: unknown): CredentialCheck => {
        // Only our own messages are passed on: anything else might quote a request detail.
        const reason = err instanceof Unavailable ? err.message : `introspection failed (${errorName(err)})`;
        return { ok: false, kind: 'unavailable', reason };
      })
      .then((check) => {
        inFlight.delete(key);
        noteOutcome(check);
        if (!closed) remember(key, check);
        return check;
      });
    inFlight.set(key, pending);
    return pending;
  };

  const remember = (key: string, check: CredentialCheck) => {
    const now = deps.now();
    let ttl: number;
    if (check.ok) ttl = Math.min(cacheTtlMs, check.expiresAt === null ? cacheTtlMs : check.expiresAt - now);
    else if (check.kind === 'invalid') ttl = refusedTtlMs;
    else return; // an outage is not remembered: the next request asks again
    if (ttl > 0) answers.set(key, { check, until: now + ttl });
  };

  return {
    introspect(token) {
      if (closed) return { ok: false, kind: 'unavailable', reason: 'identity provider closed' };
      // Offline (validate, explain): no I/O, and no token leaves the machine.
      if (!deps.start)
        return { ok: false, kind: 'unavailable', reason: 'identity provider not contacted offline' };
      const key = createHash('sha256').update(token).digest('base64url');
      const cached = answers.get(key);
      if (cached) {
        if (cached.until > deps.now()) return cached.check;
        answers.delete(key);
      }
      return inFlight.get(key) ?? start(key, token);
    },
    close() {
      closed = true;
      answers.clear();
      // Graceful: calls already made (for requests of the previous plan) may still finish.
      agent.close().catch(() => {});
    },
  };
}

function checkDiscoverable(id: string, issuer: string): void {
  if (!/^https?:\/\//.test(issuer))
    throw new TypeError(
      `IdentityProvider ${id}: introspection.endpoint is not set and issuer ${issuer} is not an http(s) URL to discover it from`,
    );
}

async function discover(
  issuer: string,
  agent: Agent,
  limits: { timeoutMs: number; maxBytes: number },
): Promise<string> {
  let doc: Record<string, unknown>;
  try {
    doc = await discoveryDocument(issuer, {
      signal: AbortSignal.timeout(limits.timeoutMs),
      maxBytes: limits.maxBytes,
      dispatcher: agent,
    });
  } catch (err) {
    if (err instanceof FetchJsonError) throw new Unavailable(`discovery: ${err.message}`);
    throw err;
  }
  const endpoint = doc.introspection_endpoint;
  if (typeof endpoint !== 'string' || !/^https?:\/\//.test(endpoint))
    throw new Unavailable('discovery document has no http(s) introspection_endpoint');
  return endpoint;
}

/** One bounded call (see fetchJsonObject); every failure becomes Unavailable with a loggable reason. */
async function callJson(
  url: string,
  init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string },
  agent: Agent,
  limits: { timeoutMs: number; maxBytes: number },
): Promise<Record<string, unknown>> {
  try {
    return await fetchJsonObject(url, {
      ...init,
      spanName: init.method === 'POST' ? 'introspection' : 'discovery',
      signal: AbortSignal.timeout(limits.timeoutMs),
      maxBytes: limits.maxBytes,
      dispatcher: agent,
    });
  } catch (err) {
    if (err instanceof FetchJsonError) throw new Unavailable(err.message);
    throw err;
  }
}

/** RFC 7662 §2.2 answer → verdict. The provider's word on `active` is checked against our own settings. */
function judge(
  answer: Record<string, unknown>,
  spec: IdentityProviderSpec,
  now: number,
  skewMs: number,
): CredentialCheck {
  if (answer.active === false) return refused('token is not active');
  if (answer.active !== true) throw new Unavailable('response has no boolean "active"');
  const { exp, nbf, iss, aud, token_type: tokenType } = answer;
  if (exp !== undefined && typeof exp !== 'number') return refused('exp is not a number');
  if (nbf !== undefined && typeof nbf !== 'number') return refused('nbf is not a number');
  if (exp !== undefined && exp * 1000 + skewMs <= now) return refused('token has expired');
  if (nbf !== undefined && nbf * 1000 - skewMs > now) return refused('token is not yet valid');
  if (iss !== undefined && iss !== spec.issuer) return refused('issuer not accepted');
  if (aud !== undefined && spec.audiences.length > 0) {
    const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
    if (!audiences.some((a) => typeof a === 'string' && spec.audiences.includes(a)))
      return refused('audience not accepted');
  }
  if (tokenType !== undefined) {
    const type = typeof tokenType === 'string' ? tokenType.toLowerCase() : '';
    if (type !== 'bearer' && type !== 'access_token') return refused('token type not accepted');
  }
  // A sender-constrained token (RFC 8705, RFC 9449) presented as a plain bearer token: the
  // proof of possession is not checked here, so it is refused rather than accepted as bearer.
  if (answer.cnf !== undefined) return refused('sender-constrained tokens are not accepted');
  // Shared by every request the answer is cached for: nothing may change it.
  const claims: Claims = deepFreeze(answer);
  return { ok: true, claims, expiresAt: typeof exp === 'number' ? exp * 1000 : null };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

function refused(reason: string): CredentialCheck {
  return { ok: false, kind: 'invalid', reason };
}

/** application/x-www-form-urlencoded, as RFC 6749 §2.3.1 asks for the Basic credentials. */
function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}

function errorName(err: unknown): string {
  return err instanceof Error ? err.name : 'error';
}
