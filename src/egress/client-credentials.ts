import type { Dispatcher } from 'undici';
import { FetchJsonError, fetchJsonObject } from '../identity/fetch-json.ts';

/** One OAuth 2.0 client (RFC 6749 §4.4) the gateway obtains access tokens as. */
export interface ClientCredentialsSettings {
  readonly tokenUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly authMethod: 'client_secret_basic' | 'client_secret_post';
  /** Space-separated scopes asked for; null: none (the server's default). */
  readonly scope: string | null;
  /** `audience` parameter (Auth0, Okta…); null: not sent. */
  readonly audience: string | null;
  /** `resource` parameter (RFC 8707); null: not sent. */
  readonly resource: string | null;
  readonly timeoutMs: number;
  readonly maxResponseBytes: number;
  /** A new token is fetched this long before the cached one expires (at most halfway through its life). */
  readonly refreshBeforeMs: number;
  /** How long a token is used when the answer has no `expires_in`. */
  readonly defaultLifetimeMs: number;
}

export interface TokenSourceDeps {
  readonly now: () => number;
  readonly dispatcher: Dispatcher;
  readonly log: (level: 'info' | 'warn', fields: Record<string, unknown>, message: string) => void;
}

export type TokenResult =
  | { readonly ok: true; readonly token: string }
  | { readonly ok: false; readonly reason: string };

/** Access tokens of one client: cached, refreshed before they expire, fetched once for all waiters. */
export interface TokenSource {
  /** A token that is valid now, or null; a token near its end starts a refresh in the background. */
  cached(): string | null;
  /** A valid token, fetching one (shared by every caller waiting at the same time) when none is cached. */
  get(): Promise<TokenResult>;
}

/** After a failed fetch, callers without a valid token are answered with that failure for this long. */
const FAILURE_HOLD_MS = 1_000;
/** A token is not sent in the last seconds of its life: it must not expire on the way to the API. */
const EXPIRY_MARGIN_MS = 5_000;
/** Printable ASCII without spaces: what can be put in an Authorization header as it is. */
const tokenChars = /^[\x21-\x7e]+$/;
const maxTokenLength = 16_384;

interface CachedToken {
  readonly token: string;
  /** Epoch ms: start fetching the next token. */
  readonly refreshAt: number;
  /** Epoch ms: stop sending this one. */
  readonly usableUntil: number;
}

/**
 * A token source for one client. The token endpoint is called with a timeout and a response size
 * cap, without following redirects; only a 200 answer with a Bearer `access_token` is accepted.
 * Failures are reported with reasons safe to log (no secret, no token, no body).
 */
export function createTokenSource(settings: ClientCredentialsSettings, deps: TokenSourceDeps): TokenSource {
  let current: CachedToken | null = null;
  let pending: Promise<TokenResult> | null = null;
  let lastFailure: { reason: string; until: number } | null = null;
  let failing = false;

  const fetchToken = async (): Promise<TokenResult> => {
    const started = deps.now();
    let answer: Record<string, unknown>;
    try {
      answer = await fetchJsonObject(settings.tokenUrl, {
        method: 'POST',
        ...tokenRequest(settings),
        maxBytes: settings.maxResponseBytes,
        signal: AbortSignal.timeout(settings.timeoutMs),
        dispatcher: deps.dispatcher,
      });
    } catch (err) {
      const reason = err instanceof FetchJsonError ? err.message : 'request failed';
      return { ok: false, reason: `token endpoint ${reason}` };
    }
    const token = answer.access_token;
    if (typeof token !== 'string' || token.length > maxTokenLength || !tokenChars.test(token))
      return { ok: false, reason: 'token endpoint answered without a usable access_token' };
    if (typeof answer.token_type !== 'string' || answer.token_type.toLowerCase() !== 'bearer')
      return { ok: false, reason: 'token endpoint answered a token_type other than Bearer' };
    const expiresIn = answer.expires_in;
    const lifetimeMs =
      typeof expiresIn === 'number' && Number.isFinite(expiresIn) && expiresIn > 0
        ? expiresIn * 1000
        : settings.defaultLifetimeMs;
    const margin = Math.min(EXPIRY_MARGIN_MS, lifetimeMs / 4);
    current = {
      token,
      refreshAt: started + Math.max(lifetimeMs - settings.refreshBeforeMs, lifetimeMs / 2),
      usableUntil: started + lifetimeMs - margin,
    };
    return { ok: true, token };
  };

  const refresh = (): Promise<TokenResult> => {
    pending ??= fetchToken()
      .catch((): TokenResult => ({ ok: false, reason: 'token request failed' }))
      .then((result) => {
        pending = null;
        if (result.ok) {
          lastFailure = null;
          if (failing) deps.log('info', { tokenUrl: settings.tokenUrl }, 'token endpoint recovered');
          failing = false;
        } else {
          lastFailure = { reason: result.reason, until: deps.now() + FAILURE_HOLD_MS };
          if (!failing)
            deps.log(
              'warn',
              { tokenUrl: settings.tokenUrl, clientId: settings.clientId, reason: result.reason },
              'client credentials token could not be obtained',
            );
          failing = true;
        }
        return result;
      });
    return pending;
  };

  const valid = (): CachedToken | null => {
    const token = current;
    if (token === null) return null;
    const now = deps.now();
    if (now >= token.usableUntil) return null;
    if (now >= token.refreshAt && pending === null && (lastFailure === null || now >= lastFailure.until))
      void refresh();
    return token;
  };

  return {
    cached: () => valid()?.token ?? null,
    get() {
      const token = valid();
      if (token !== null) return Promise.resolve({ ok: true, token: token.token });
      if (pending !== null) return pending;
      if (lastFailure !== null && deps.now() < lastFailure.until)
        return Promise.resolve({ ok: false, reason: lastFailure.reason });
      return refresh();
    },
  };
}

/** The token request: form parameters, and the client's credentials per its authentication method. */
export function tokenRequest(settings: ClientCredentialsSettings): {
  headers: Record<string, string>;
  body: string;
} {
  const form = new URLSearchParams({ grant_type: 'client_credentials' });
  if (settings.scope !== null) form.set('scope', settings.scope);
  if (settings.audience !== null) form.set('audience', settings.audience);
  if (settings.resource !== null) form.set('resource', settings.resource);
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
  };
  if (settings.authMethod === 'client_secret_basic') {
    // RFC 6749 §2.3.1: each part form-urlencoded before they are joined and base64-encoded.
    const user = `${formEncode(settings.clientId)}:${formEncode(settings.clientSecret)}`;
    headers.authorization = `Basic ${Buffer.from(user).toString('base64')}`;
  } else {
    form.set('client_id', settings.clientId);
    form.set('client_secret', settings.clientSecret);
  }
  return { headers, body: form.toString() };
}

function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}
