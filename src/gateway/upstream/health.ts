import { Client } from 'undici';
import type { CompiledTarget, CompiledUpstream } from '../../plan/types.ts';
import type { UpstreamLog } from './target.ts';

type Config = NonNullable<CompiledUpstream['healthCheck']>;

/** Most bytes of a check's response body read (and thrown away) before the connection is dropped. */
const maxBodyBytes = 64 * 1024;

/**
 * Active health checks of one target: a GET every `interval` (counted from the end of the previous
 * check) on a connection of its own, so checks neither wait behind traffic nor take its connections.
 * A target starts healthy; not yet checked, it is out at its first failure, then thresholds apply.
 */
export class HealthChecker {
  readonly #config: Config;
  readonly #target: CompiledTarget;
  readonly #upstreamId: string;
  readonly #client: Client;
  readonly #setHealthy: (healthy: boolean) => void;
  readonly #isHealthy: () => boolean;
  readonly #log: UpstreamLog;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  #checked = false;
  #successes = 0;
  #failures = 0;

  constructor(options: {
    upstream: CompiledUpstream;
    target: CompiledTarget;
    isHealthy: () => boolean;
    setHealthy: (healthy: boolean) => void;
    log: UpstreamLog;
  }) {
    const { upstream, target } = options;
    this.#config = upstream.healthCheck!;
    this.#target = target;
    this.#upstreamId = upstream.id;
    this.#isHealthy = options.isHealthy;
    this.#setHealthy = options.setHealthy;
    this.#log = options.log;
    const timeout = this.#config.timeoutMs;
    this.#client = new Client(target.origin, {
      connectTimeout: Math.min(timeout, upstream.connectTimeoutMs),
      headersTimeout: timeout,
      bodyTimeout: timeout,
      keepAliveTimeout: 4_000,
      maxHeaderSize: 65_536,
      ...(target.origin.startsWith('https:') ? { allowH2: false, connect: { ...upstream.tls } } : {}),
    });
  }

  start(): void {
    this.#schedule(0);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#client.destroy().catch(() => {});
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#check();
    }, ms);
    this.#timer.unref();
  }

  async #check(): Promise<void> {
    const config = this.#config;
    let ok = false;
    let detail: string;
    try {
      const response = await this.#client.request({
        method: 'GET',
        path: config.path,
        headers: { host: this.#target.hostHeader, 'user-agent': 'gatehouse-health-check' },
        headersTimeout: config.timeoutMs,
        bodyTimeout: config.timeoutMs,
        signal: AbortSignal.timeout(config.timeoutMs),
        // undici reads it (SNI and the name checked); its types do not list it.
        ...({ servername: this.#target.servername } as object),
      });
      ok = config.expectedStatuses.has(response.statusCode);
      detail = `status ${response.statusCode}`;
      await response.body.dump({ limit: maxBodyBytes }).catch(() => {});
    } catch (err) {
      detail = (err as { code?: string }).code ?? (err as Error).message;
    }
    if (this.#closed) return;
    this.#record(ok, detail);
    this.#schedule(config.intervalMs);
  }

  #record(ok: boolean, detail: string): void {
    const config = this.#config;
    const first = !this.#checked;
    this.#checked = true;
    const fields = { upstream: this.#upstreamId, target: this.#target.url, check: detail };
    if (ok) {
      this.#failures = 0;
      this.#successes++;
      if (!this.#isHealthy() && this.#successes >= config.healthyThreshold) {
        this.#setHealthy(true);
        this.#log('info', fields, 'upstream target healthy');
      }
      return;
    }
    this.#successes = 0;
    this.#failures++;
    if (this.#isHealthy() && (first || this.#failures >= config.unhealthyThreshold)) {
      this.#setHealthy(false);
      this.#log('warn', fields, 'upstream target unhealthy');
    }
  }
}
