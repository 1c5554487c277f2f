import { toMillis } from '../config/duration.ts';
import type { GatewaySpec } from '../config/schemas/gateway.ts';
import type { CompiledRule, CompiledUpstream } from '../plan/types.ts';
import { mergeStages } from '../plan/scoped-policies.ts';
import { policyFactories } from '../policies/registry.ts';
import type { CompiledPolicy, PolicyDeps } from '../policies/types.ts';
import { type AddressPolicy, compileAddressPolicy } from './addresses.ts';
import { compileDestinations, type DestinationList } from './destinations.ts';

/** The forward proxy of a plan: who may use it, where to, and its time limits. */
export interface CompiledForwardProxy {
  /**
   * The proxy's policies as a rule (id `forward-proxy`) the pipeline runs like any other. It has no
   * upstream: each request names its destination, and nothing on the proxy's path reads `upstream`.
   */
  readonly rule: CompiledRule;
  readonly destinations: DestinationList;
  readonly addresses: AddressPolicy;
  readonly resolveTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly idleTimeoutMs: number;
}

export const forwardProxyRuleId = 'forward-proxy';
/**
 * The proxy's rule template: one parameter, `destination`, the allow-list entry a request matched
 * (`other` when none), so `rateLimit` with `key: path:destination` counts per destination.
 */
const forwardProxyTemplate = '/{destination}';

// Only the rule's id is read on the forward proxy's path (logs, metrics, policies keyed by route).
const noUpstream = Object.freeze({ id: forwardProxyRuleId }) as unknown as CompiledUpstream;

/**
 * Compiles `spec.forwardProxy` of a Gateway; null when it is absent or disabled. Problems are
 * reported at their field (`report`), and the proxy is then null too.
 */
export function compileForwardProxy(
  spec: GatewaySpec,
  deps: PolicyDeps,
  report: (path: Array<string | number>, message: string) => void,
): CompiledForwardProxy | null {
  const config = spec.forwardProxy;
  if (config === undefined || !config.enabled) return null;
  const at = (...path: Array<string | number>) => ['spec', 'forwardProxy', ...path];
  let ok = true;
  const fail = (path: Array<string | number>, message: string) => {
    ok = false;
    report(path, message);
  };
  if (spec.mode !== 'egress')
    fail(at('enabled'), 'the forward proxy is only served by a Gateway in mode: egress');
  if (config.allow.length === 0)
    fail(at('allow'), 'no destination is allowed: list the hosts callers may reach');
  // The stage fields come from the policy registry, so the static type does not name them.
  if ((config as { authenticate?: unknown }).authenticate === undefined)
    fail(
      at(),
      'authenticate is required: list how callers authenticate, or say `- noAuth: {}` for an open proxy',
    );

  let destinations: DestinationList | null = null;
  try {
    destinations = compileDestinations(config.allow);
  } catch (err) {
    fail(at('allow'), (err as Error).message);
  }
  let addresses: AddressPolicy | null = null;
  try {
    addresses = compileAddressPolicy(config);
  } catch (err) {
    fail(at('allowAddresses'), (err as Error).message);
  }

  const ruleDeps: PolicyDeps = {
    ...deps,
    rule: { id: forwardProxyRuleId, template: forwardProxyTemplate },
    policy: null,
  };
  const pipeline: Array<CompiledRule['pipeline'][number]> = [];
  const layer = {
    policy: null,
    namespace: deps.namespace,
    stages: config as unknown as Record<string, unknown>,
    report: (path: ReadonlyArray<string | number>, message: string) => fail(at(...path), message),
  };
  for (const { stage, entries } of mergeStages([layer])) {
    const policies: CompiledPolicy[] = [];
    entries.forEach(({ key, config: policyConfig, path }, index) => {
      const factory = policyFactories[key]!;
      if (stage === 'authenticate' && factory.mustBeLast && index !== entries.length - 1)
        layer.report(path, `${key} must be the last entry of ${stage}`);
      try {
        policies.push(factory.compile(policyConfig as never, ruleDeps));
      } catch (err) {
        layer.report(path, (err as Error).message);
      }
    });
    if (policies.length > 0) pipeline.push(Object.freeze({ stage, policies: Object.freeze(policies) }));
  }

  if (!ok || destinations === null || addresses === null) return null;
  const timeouts = config.timeouts;
  const responseTimeoutMs = toMillis(timeouts.response);
  const rule: CompiledRule = Object.freeze({
    id: forwardProxyRuleId,
    template: forwardProxyTemplate,
    upstream: noUpstream,
    stripPrefix: null,
    responseTimeoutMs,
    pipeline: Object.freeze(pipeline),
    policies: Object.freeze([]),
  });
  return Object.freeze({
    rule,
    destinations,
    addresses,
    resolveTimeoutMs: toMillis(timeouts.resolve),
    connectTimeoutMs: toMillis(timeouts.connect),
    responseTimeoutMs,
    idleTimeoutMs: toMillis(timeouts.idle),
  });
}
