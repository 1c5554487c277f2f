import type { SecureContext, SecureContextOptions } from 'node:tls';
import type { GatewaySpec, ListenerSpec } from '../config/schemas/gateway.ts';
import type { TokenIssuer } from '../identity/token-issuer.ts';
import type { ProviderRuntime } from '../identity/types.ts';
import type { CompiledPolicy, Stage } from '../policies/types.ts';
import type { Router } from './router.ts';
import type { AppliedPolicy } from './scoped-policies.ts';

/** An upstream as the forwarder needs it; pools are looked up by `poolKey` and outlive plans. */
export interface CompiledUpstream {
  readonly id: string;
  readonly origin: string;
  readonly basePath: string;
  readonly hostHeader: string;
  readonly preserveHost: boolean;
  readonly poolKey: string;
  readonly connections: number;
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly idleTimeoutMs: number;
}

export interface CompiledRule {
  /** Stable identifier used in logs and metrics: `namespace/apirule#index`. */
  readonly id: string;
  readonly template: string;
  readonly upstream: CompiledUpstream;
  readonly stripPrefix: string | null;
  readonly responseTimeoutMs: number;
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
  readonly listeners: readonly CompiledListener[];
  readonly router: Router<CompiledRule>;
  /** Every rule of the plan, in config order (for the admin listing). */
  readonly rules: readonly CompiledRule[];
  readonly upstreams: ReadonlyMap<string, CompiledUpstream>;
  /** Identity providers the plan's policies use, by `namespace/name` (readiness waits for their keys). */
  readonly providers: ReadonlyMap<string, ProviderRuntime>;
  /** The gateway's internal token issuer, when `spec.tokens` is set or a policy mints tokens. */
  readonly tokens: TokenIssuer | null;
  readonly trustedProxies: (address: string) => boolean;
  readonly limits: {
    readonly maxHeaderBytes: number;
    readonly maxBodyBytes: number;
    readonly requestTimeoutMs: number;
    readonly idleTimeoutMs: number;
    readonly drainTimeoutMs: number;
  };
}
