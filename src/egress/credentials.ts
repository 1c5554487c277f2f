import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { Agent } from 'undici';
import {
  type ClientCredentialsSettings,
  createTokenSource,
  type TokenResult,
  type TokenSource,
} from './client-credentials.ts';

/** A secret written in config as a reference: `{ env: NAME }`. */
export interface SecretRef {
  readonly env: string;
}

/**
 * What credential-injecting policies get (PolicyDeps.credentials): secrets from the environment and
 * client-credentials token sources. Token sources outlive plans, so a reload keeps cached tokens.
 */
export interface OutboundCredentials {
  /** False for offline compiles (validate, explain): no secret is read, no token endpoint called. */
  readonly live: boolean;
  /** The secret's value; undefined when its variable is unset or empty (or offline). */
  secret(ref: SecretRef): string | undefined;
  /** The token source of this client, shared by every rule and plan that names the same settings. */
  tokenSource(settings: ClientCredentialsSettings): TokenSource;
}

export interface CredentialStoreDeps {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly now: () => number;
  readonly log: (level: 'info' | 'warn', fields: Record<string, unknown>, message: string) => void;
}

/** Most distinct clients kept; one that is no longer configured ages out. */
const maxSources = 1_000;

/** The live store of a gateway process: reads the environment it was given, calls token endpoints. */
export class CredentialStore implements OutboundCredentials {
  readonly live = true;
  readonly #deps: CredentialStoreDeps;
  readonly #sources = new LRUCache<string, TokenSource>({ max: maxSources });
  // One pool for every token endpoint: each call carries its own deadline (AbortSignal).
  readonly #dispatcher = new Agent({ keepAliveTimeout: 10_000, connect: { timeout: 10_000 } });

  constructor(deps: CredentialStoreDeps) {
    this.#deps = deps;
  }

  secret(ref: SecretRef): string | undefined {
    const value = this.#deps.env[ref.env];
    return value === undefined || value === '' ? undefined : value;
  }

  tokenSource(settings: ClientCredentialsSettings): TokenSource {
    // Keyed by a hash of everything that makes the client, secret included (a rotated secret is a new client).
    const key = createHash('sha256').update(JSON.stringify(settings)).digest('base64url');
    let source = this.#sources.get(key);
    if (!source) {
      source = createTokenSource(settings, {
        now: this.#deps.now,
        dispatcher: this.#dispatcher,
        log: this.#deps.log,
      });
      this.#sources.set(key, source);
    }
    return source;
  }

  close(): void {
    this.#sources.clear();
    this.#dispatcher.close().catch(() => {});
  }
}

const offlineFailure: TokenResult = Object.freeze({
  ok: false,
  reason: 'token endpoint not contacted offline',
});

/** For offline compiles: no secrets, and token sources that never call out. */
export const offlineCredentials: OutboundCredentials = Object.freeze({
  live: false,
  secret: () => undefined,
  tokenSource: () => ({ cached: () => null, get: () => Promise.resolve(offlineFailure) }),
});
