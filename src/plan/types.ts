import type { SecureContext, SecureContextOptions } from 'node:tls';
import type { GatewaySpec, ListenerSpec } from '../config/schemas/gateway.ts';
import type { CompiledForwardProxy } from '../egress/compile.ts';
import type { TokenIssuer } from '../identity/token-issuer.ts';
import type { ProviderRuntime } from '../identity/types.ts';
import type { CompiledPolicy, Stage } from '../policies/types.ts';
import type { RateLimitBackend } from '../ratelimit/types.ts';
import type { Router } from './router.ts';
import type { AppliedPolicy } from './scoped-policies.ts';

/** One target of an upstream. Its live state (pool, health, ejection, circuit) is kept by `key` across reloads. */
export interface CompiledTarget {
  /** As configured; the `target` label of the upstream metrics. */
  readonly url: string;
  readonly origin: string;
  /** Host header sent to this target (unless the upstream preserves the client's). */
  readonly hostHeader: string;
  /** SNI and the name its certificate is checked against (https); undefined: undici's default. */
  readonly servername: string | undefined;
  readonly weight: number;
  readonly key: string;
}

export type HashOn =
  | { readonly kind: 'header'; readonly name: string }
  | { readonly kind: 'cookie'; readonly name: string }
  | { readonly kind: 'client' }
  | { readonly kind: 'subject' };

export type RetryReason = 'connect-failure' | 'reset' | 'timeout' | '502' | '503' | '504';

/** An upstream as the forwarder needs it; live state is looked up by `runtimeKey` and outlives plans. */
export interface CompiledUpstream {
  readonly id: string;
  /** The first target's origin and host (what explain shows; what headers.ts sends by default). */
  readonly origin: string;
  readonly basePath: string;
  readonly hostHeader: string;
  readonly preserveHost: boolean;
  readonly connections: number;
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly targets: readonly CompiledTarget[];
  readonly loadBalancer: {
    readonly algorithm: 'round-robin' | 'least-request' | 'consistent-hash';
    readonly hashOn: HashOn | null;
  };
  readonly healthCheck: null | {
    readonly path: string;
    readonly intervalMs: number;
    readonly timeoutMs: number;
    readonly healthyThreshold: number;
    readonly unhealthyThreshold: number;
    readonly expectedStatuses: ReadonlySet<number>;
  };
  readonly outlierDetection: null | {
    readonly consecutiveFailures: number;
    readonly baseEjectionMs: number;
    readonly maxEjectionMs: number;
    readonly maxEjectionPercent: number;
  };
  readonly circuitBreaker: null | {
    readonly failureRatio: number;
    readonly minRequests: number;
    readonly windowMs: number;
    readonly openForMs: number;
    readonly halfOpenRequests: number;
  };
  readonly retries: null | {
    readonly attempts: number;
    readonly on: ReadonlySet<RetryReason>;
    readonly perTryTimeoutMs: number | null;
    readonly retryNonIdempotent: boolean;
    readonly budget: { readonly ratio: number; readonly minPerSecond: number };
  };
  /** undici `connect` options for https targets (CA, client certificate, verification, minimum version). */
  readonly tls: null | UpstreamTlsOptions;
  /** Live upstream state (balancer position, retry budget) is kept under this key across reloads. */
  readonly runtimeKey: string;
}

export interface UpstreamTlsOptions {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly rejectUnauthorized: boolean;
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
}

export interface CompiledRule {
  /** Stable identifier used in logs and metrics: `namespace/apirule#index`. */
  readonly id: string;
  readonly template: string;
  readonly upstream: CompiledUpstream;
  readonly stripPrefix: string | null;
  readonly responseTimeoutMs: number;
  /** Largest request body accepted on this rule (its `maxBodyBytes`); absent: the Gateway's limit. */
  readonly maxBodyBytes?: number;
  /**
   * A `request.cors` policy applies: a CORS preflight asking for one of the rule's methods is routed
   * to the rule even when its methods leave out OPTIONS, and answered by the policy; the upstream's
   * own `Access-Control-*` response headers are dropped (the gateway alone speaks CORS).
   */
  readonly corsPreflights?: boolean;
  /**
   * Policies per stage, in order; a stage with none is absent (skipped, not looped over).
   * `authenticate` appears once per chain: a Policy's chain is a requirement on top of the rule's.
   */
  readonly pipeline: ReadonlyArray<{ readonly stage: Stage; readonly policies: readonly CompiledPolicy[] }>;
  /** The Policy resources that apply to this rule, least specific first (docs/policies.md). */
  readonly policies: readonly AppliedPolicy[];
}

export interface CompiledListener {
  readonly spec: ListenerSpec;
  /** For https listeners: the default context and the contexts by exact and wildcard SNI name. */
  readonly tls: null | {
    readonly defaultContext: SecureContext;
    /** What the default context was made from: the server is created with it (clients without SNI). */
    readonly defaultOptions: SecureContextOptions;
    readonly byName: ReadonlyMap<string, SecureContext>;
    readonly byWildcard: ReadonlyMap<string, SecureContext>;
  };
}

export interface Plan {
  /** Content hash of the resources that made the plan. */
  readonly version: string;
  readonly createdAt: string;
  readonly gatewayName: string;
  readonly gateway: GatewaySpec;
  /** Resolves a path of the Gateway resource: relative paths are relative to the file that holds it. */
  readonly resolveGatewayPath: (path: string) => string;
  readonly listeners: readonly CompiledListener[];
  readonly router: Router<CompiledRule>;
  /** Every rule of the plan, in config order (for the admin listing). */
  readonly rules: readonly CompiledRule[];
  readonly upstreams: ReadonlyMap<string, CompiledUpstream>;
  /** Identity providers the plan's policies use, by `namespace/name` (readiness waits for their keys). */
  readonly providers: ReadonlyMap<string, ProviderRuntime>;
  /** The gateway's internal token issuer, when `spec.tokens` is set or a policy mints tokens. */
  readonly tokens: TokenIssuer | null;
  /** The rate-limit backend, when a rule or Policy limits (its Redis connection outlives plans). */
  readonly rateLimiter: RateLimitBackend | null;
  /** The forward proxy (Gateway `spec.forwardProxy`, egress mode); null when not enabled. */
  readonly forwardProxy: CompiledForwardProxy | null;
  readonly trustedProxies: (address: string) => boolean;
  readonly limits: {
    readonly maxHeaderBytes: number;
    readonly maxBodyBytes: number;
    readonly requestTimeoutMs: number;
    readonly idleTimeoutMs: number;
    readonly drainTimeoutMs: number;
  };
}
