import { Agent } from 'undici';
import { discoveryDocument, FetchJsonError, getJsonObject } from './fetch-json.ts';
import type { ProviderDeps } from './types.ts';
import {
  type ImportedKeySet,
  importVerificationKeys,
  type JwsAlgorithm,
  KeySetRejected,
  type VerificationKey,
} from './verification-keys.ts';

export interface KeySetConfig {
  /** `namespace/name` of the provider, for logs. */
  readonly id: string;
  /** Expected `issuer` of the discovery document. */
  readonly issuer: string;
  /** Where the key set is; null: read `jwks_uri` from `<issuer>/.well-known/openid-configuration`. */
  readonly jwksUri: string | null;
  readonly algorithms: readonly JwsAlgorithm[];
  readonly refreshIntervalMs: number;
  readonly gracePeriodMs: number;
  readonly timeoutMs: number;
  readonly minRefetchIntervalMs: number;
  readonly maxBytes: number;
  readonly maxKeys: number;
}

export interface KeySetDeps {
  readonly now: () => number;
  readonly log: ProviderDeps['log'];
  /** Called after the usable keys changed (not on the first load). */
  readonly onChange?: () => void;
}

/**
 * - cold: no key set fetched yet;
 * - usable: the last successful fetch is at most `gracePeriod` old;
 * - expired: the provider has not answered for longer than that: tokens cannot be checked.
 */
export type KeySetState = 'cold' | 'usable' | 'expired';

/** Longest wait between retries after failures (never longer than the refresh interval). */
const MAX_RETRY_DELAY_MS = 30_000;

/**
 * The key set of one identity provider, kept in the background: fetched on `start()`, refreshed
 * every `refreshInterval` (retried sooner, with backoff, after a failure), kept through a provider
 * outage for `gracePeriod`. Requests never wait on a fetch once keys are held, except for one
 * caused by an unknown `kid` — at most one per `minRefetchInterval`, shared by every request that
 * needs it. Every fetch is bounded by `timeout` (discovery and key set together) and `maxBytes`.
 * Does no I/O before `start()`. Not jose's createRemoteJWKSet: it fetches on the request path,
 * has no background refresh, no grace period and no size or key-count cap (docs/decisions/0003).
 */
export class KeySet {
  readonly #config: KeySetConfig;
  readonly #deps: KeySetDeps;
  #keys: readonly VerificationKey[] = [];
  #byKid = new Map<string, VerificationKey[]>();
  #fingerprint: string | null = null;
  #version = 0;
  #fetchedAt: number | null = null;
  #lastAttemptAt = Number.NEGATIVE_INFINITY;
  #failures = 0;
  #discoveredJwksUri: string | null = null;
  #inFlight: Promise<boolean> | null = null;
  #abort: AbortController | null = null;
  #timer: NodeJS.Timeout | null = null;
  #agent: Agent | null = null;
  #started = false;
  #closed = false;

  constructor(config: KeySetConfig, deps: KeySetDeps) {
    this.#config = config;
    this.#deps = deps;
  }

  /** Starts background fetching (idempotent). */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#agent = new Agent({ connect: { timeout: this.#config.timeoutMs } });
    void this.refresh();
  }

  state(): KeySetState {
    if (this.#fetchedAt === null) return 'cold';
    return this.#deps.now() - this.#fetchedAt > this.#config.gracePeriodMs ? 'expired' : 'usable';
  }

  /** Bumped whenever the usable keys change. */
  get version(): number {
    return this.#version;
  }

  /** Keys a token signed with `alg` (and naming `kid`, when it does) may have been signed with. */
  keysFor(kid: string | undefined, alg: JwsAlgorithm): readonly VerificationKey[] {
    const pool = kid === undefined ? this.#keys : (this.#byKid.get(kid) ?? []);
    return pool.filter((k) => k.alg === alg);
  }

  knowsKid(kid: string): boolean {
    return this.#byKid.has(kid);
  }

  /**
   * A fetch on behalf of a request (unknown `kid`, no keys yet): the one in flight if any, a new
   * one unless the last attempt is more recent than `minRefetchInterval`, else null (rate-limited).
   * Resolves to whether it succeeded; never rejects.
   */
  requestRefresh(): Promise<boolean> | null {
    if (!this.#started || this.#closed) return null;
    if (this.#inFlight) return this.#inFlight;
    if (this.#deps.now() - this.#lastAttemptAt < this.#config.minRefetchIntervalMs) return null;
    return this.refresh();
  }

  /** Fetches now (or joins the fetch in flight). Resolves to whether it succeeded; never rejects. */
  refresh(): Promise<boolean> {
    if (this.#inFlight) return this.#inFlight;
    if (!this.#started || this.#closed) return Promise.resolve(false);
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#lastAttemptAt = this.#deps.now();
    const abort = new AbortController();
    this.#abort = abort;
    const signal = AbortSignal.any([abort.signal, AbortSignal.timeout(this.#config.timeoutMs)]);
    this.#inFlight = this.#load(signal)
      .then(
        (loaded) => {
          if (this.#closed) return false;
          this.#apply(loaded);
          return true;
        },
        (err: unknown) => {
          if (!this.#closed) this.#noteFailure(err);
          return false;
        },
      )
      .then((ok) => {
        this.#inFlight = null;
        this.#abort = null;
        if (!this.#closed) this.#schedule(ok ? this.#refreshDelay() : this.#retryDelay());
        return ok;
      });
    return this.#inFlight;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#abort?.abort();
    this.#agent?.close().catch(() => {});
  }

  async #load(signal: AbortSignal): Promise<ImportedKeySet> {
    const limits = { signal, maxBytes: this.#config.maxBytes, dispatcher: this.#agent! };
    const uri = this.#config.jwksUri ?? this.#discoveredJwksUri ?? (await this.#discover(limits));
    try {
      const jwks = await getJsonObject(uri, limits);
      return await importVerificationKeys(jwks, this.#config.algorithms, this.#config.maxKeys);
    } catch (err) {
      this.#discoveredJwksUri = null; // discovered again next time: the issuer may have moved it
      throw err;
    }
  }

  async #discover(limits: Parameters<typeof getJsonObject>[1]): Promise<string> {
    let doc: Record<string, unknown>;
    try {
      doc = await discoveryDocument(this.#config.issuer, limits);
    } catch (err) {
      throw new FetchJsonError(`discovery: ${(err as Error).message}`);
    }
    const uri = doc.jwks_uri;
    if (typeof uri !== 'string' || !/^https?:\/\//i.test(uri))
      throw new FetchJsonError('discovery document has no http(s) jwks_uri');
    this.#discoveredJwksUri = uri;
    return uri;
  }

  #apply(loaded: ImportedKeySet): void {
    const recovered = this.#failures > 0;
    this.#failures = 0;
    this.#fetchedAt = this.#deps.now();
    if (loaded.fingerprint === this.#fingerprint) {
      if (recovered) this.#deps.log('info', { provider: this.#config.id }, 'key set fetch recovered');
      return;
    }
    const first = this.#fingerprint === null;
    const byKid = new Map<string, VerificationKey[]>();
    for (const key of loaded.keys) {
      if (key.kid === null) continue;
      const list = byKid.get(key.kid);
      if (list) list.push(key);
      else byKid.set(key.kid, [key]);
    }
    this.#keys = loaded.keys;
    this.#byKid = byKid;
    this.#fingerprint = loaded.fingerprint;
    this.#version++;
    this.#deps.log(
      'info',
      {
        provider: this.#config.id,
        kids: [...new Set(loaded.keys.map((k) => k.kid ?? '(none)'))],
        skipped: loaded.skipped,
      },
      first ? 'key set loaded' : 'key set changed',
    );
    if (!first) this.#deps.onChange?.();
  }

  #noteFailure(err: unknown): void {
    this.#failures++;
    const reason =
      err instanceof FetchJsonError || err instanceof KeySetRejected
        ? err.message
        : `unexpected error: ${(err as Error).message}`;
    const state = this.state();
    const fields = { provider: this.#config.id, reason, failures: this.#failures, state };
    if (state === 'usable') this.#deps.log('warn', fields, 'key set fetch failed: keeping the keys held');
    else if (state === 'cold') this.#deps.log('warn', fields, 'key set fetch failed: no keys yet');
    else
      this.#deps.log('error', fields, 'key set fetch failed past the grace period: tokens cannot be checked');
  }

  #schedule(delayMs: number): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.refresh();
    }, delayMs);
    this.#timer.unref();
  }

  /** The refresh interval ±10%, so replicas started together do not fetch together. */
  #refreshDelay(): number {
    return Math.round(this.#config.refreshIntervalMs * (0.9 + Math.random() * 0.2));
  }

  /** 1s, 2s, 4s… after consecutive failures, up to 30s (or the refresh interval if shorter). */
  #retryDelay(): number {
    const backoff = 1000 * 2 ** Math.min(this.#failures - 1, 10);
    return Math.min(backoff, MAX_RETRY_DELAY_MS, this.#config.refreshIntervalMs);
  }
}
