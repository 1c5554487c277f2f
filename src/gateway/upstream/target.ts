import { Pool } from 'undici';
import type { CompiledTarget, CompiledUpstream } from '../../plan/types.ts';
import { CircuitBreaker } from './circuit-breaker.ts';
import { HealthChecker } from './health.ts';
import type { OutlierState } from './outlier.ts';

export type UpstreamLog = (
  level: 'info' | 'warn' | 'error',
  fields: Record<string, unknown>,
  message: string,
) => void;

/**
 * One target's live state: its connection pool, active health, passive ejection, circuit breaker and
 * the requests in flight. It outlives plans while the settings it was made from stay the same (see
 * CompiledTarget.key), so a reload keeps warm connections and what was learnt about the target.
 */
export class TargetRuntime implements OutlierState {
  readonly key: string;
  readonly url: string;
  readonly hostHeader: string;
  readonly servername: string | undefined;
  readonly pool: Pool;
  readonly circuit: CircuitBreaker | null;
  /** Calls started and not yet released (least-request reads it). */
  inFlight = 0;
  healthy = true;
  consecutiveFailures = 0;
  ejectedUntil = 0;
  ejections = 0;
  readonly #checker: HealthChecker | null;

  constructor(
    upstream: CompiledUpstream,
    target: CompiledTarget,
    options: { start: boolean; log: UpstreamLog },
  ) {
    this.key = target.key;
    this.url = target.url;
    this.hostHeader = target.hostHeader;
    this.servername = target.servername;
    const https = target.origin.startsWith('https:');
    this.pool = new Pool(target.origin, {
      connections: upstream.connections,
      connectTimeout: upstream.connectTimeoutMs,
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 60_000,
      // Response limits are enforced per request (headersTimeout/bodyTimeout), not here.
      headersTimeout: upstream.responseTimeoutMs,
      bodyTimeout: upstream.idleTimeoutMs,
      maxHeaderSize: 65_536,
      // HTTP/1.1 to every target: undici would otherwise offer h2 over TLS (docs/decisions/0006).
      ...(https ? { allowH2: false, connect: { ...upstream.tls } } : {}),
    });
    this.circuit = upstream.circuitBreaker ? new CircuitBreaker(upstream.circuitBreaker) : null;
    this.#checker =
      upstream.healthCheck && options.start
        ? new HealthChecker({
            upstream,
            target,
            isHealthy: () => this.healthy,
            setHealthy: (healthy) => {
              this.healthy = healthy;
            },
            log: options.log,
          })
        : null;
    this.#checker?.start();
  }

  /** Whether a request may go to this target now. */
  available(now: number): boolean {
    return this.healthy && this.ejectedUntil <= now && (this.circuit === null || this.circuit.admits(now));
  }

  /** Graceful: requests in flight finish first. */
  async close(): Promise<void> {
    await Promise.all([this.#checker?.close(), this.pool.close().catch(() => {})]);
  }

  async destroy(): Promise<void> {
    await Promise.all([this.#checker?.close(), this.pool.destroy().catch(() => {})]);
  }
}
