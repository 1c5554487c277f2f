import type { TokensSpec } from '../config/schemas/gateway.ts';
import { toMillis } from '../config/duration.ts';
import { type KeyRingLog, type KeySource, SigningKeyRing } from './signing-keys.ts';
import { InternalTokenIssuer, type TokenIssuer } from './token-issuer.ts';

/** What services of the gateway process token issuers get. */
export interface TokenIssuerDeps {
  readonly now: () => number;
  /** Write generated keys and rotate on timers. False for offline compiles: validate, explain. */
  readonly start: boolean;
  readonly log: KeyRingLog;
}

/** Everything that makes one issuer: a reload with the same config keeps the same issuer. */
export interface IssuerConfig {
  readonly gatewayName: string;
  readonly spec: TokensSpec;
  /** Resolves paths of the spec (relative to the Gateway's config file). */
  readonly resolvePath: (path: string) => string;
}

/**
 * Live token issuers, keyed by their config. Like identity providers they outlive plans: a reload
 * that leaves `spec.tokens` unchanged keeps the signing keys (even in-memory ones), the rotation
 * schedule and the minted-token cache; a changed one is closed once no plan uses it.
 */
export class TokenIssuerRegistry {
  readonly #deps: TokenIssuerDeps;
  readonly #live = new Map<string, TokenIssuer>();

  constructor(deps: TokenIssuerDeps) {
    this.#deps = deps;
  }

  /** The issuer for this config; created (keys loaded or generated) on first use. Throws SigningKeyError. */
  resolve(config: IssuerConfig): TokenIssuer {
    const { spec } = config;
    const source: KeySource =
      spec.keys === undefined
        ? { kind: 'memory' }
        : 'dir' in spec.keys
          ? { kind: 'dir', dir: config.resolvePath(spec.keys.dir) }
          : {
              kind: 'files',
              files: spec.keys.files.map((f) => ({ path: config.resolvePath(f.private), kid: f.kid })),
            };
    const key = JSON.stringify([config.gatewayName, spec, source]);
    let issuer = this.#live.get(key);
    if (!issuer) {
      const keys = new SigningKeyRing({
        algorithm: spec.algorithm,
        source,
        rotationIntervalMs: toMillis(spec.rotation.interval),
        overlapMs: toMillis(spec.rotation.overlap),
        now: this.#deps.now,
        start: this.#deps.start,
        log: this.#deps.log,
      });
      issuer = new InternalTokenIssuer({
        issuer: spec.issuer ?? `gatehouse://${config.gatewayName}`,
        publishOn: spec.publishOn ?? null,
        keys,
        cacheSize: spec.cacheSize,
        now: this.#deps.now,
      });
      this.#live.set(key, issuer);
    }
    return issuer;
  }

  /** Closes issuers other than `keep` (the one the current plan uses). */
  retainOnly(keep: TokenIssuer | null): void {
    for (const [key, issuer] of this.#live) {
      if (issuer === keep) continue;
      this.#live.delete(key);
      issuer.close();
    }
  }

  closeAll(): void {
    this.retainOnly(null);
  }
}
