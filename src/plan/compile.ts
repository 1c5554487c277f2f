import { createHash } from 'node:crypto';
import { dirname, isAbsolute, resolve } from 'node:path';
import { toMillis } from '../config/duration.ts';
import { type ConfigError, formatFieldPath } from '../config/errors.ts';
import type { LoadedResource } from '../config/load.ts';
import type { APIRule } from '../config/schemas/api-rule.ts';
import type { GatewaySpec } from '../config/schemas/gateway.ts';
import type { IdentityProviderSpec } from '../config/schemas/identity-provider.ts';
import { compileForwardProxy } from '../egress/compile.ts';
import { offlineCredentials, type OutboundCredentials } from '../egress/credentials.ts';
import { compileConsumers, emptyConsumerIndex } from '../identity/consumers.ts';
import { ProviderRegistry } from '../identity/providers.ts';
import type { TokenIssuerRegistry } from '../identity/token-issuers.ts';
import type { ProviderRuntime } from '../identity/types.ts';
import type { UpstreamSpec } from '../config/schemas/upstream.ts';
import { policyFactories } from '../policies/registry.ts';
import { compileRateLimits } from '../ratelimit/gateway-section.ts';
import { RateLimiterRegistry } from '../ratelimit/registry.ts';
import type { CompiledPolicy, PolicyDeps } from '../policies/types.ts';
import { RouteConflictError, Router } from './router.ts';
import {
  appliedPolicies,
  indexPolicies,
  keepEstablishedCaller,
  type MergedStage,
  mergeStages,
} from './scoped-policies.ts';
import { dropShadowDenials, type ShadowDenialRecorder, shadowPolicy } from './shadow.ts';
import { compileListenerTls, type TlsProblem } from './tls.ts';
import { compileTokens } from './tokens.ts';
import { compileTrustedProxies } from './trusted-proxies.ts';
import type { CompiledListener, CompiledRule, CompiledUpstream, Plan } from './types.ts';
import { compileUpstream } from './upstreams.ts';

export type CompileResult = { ok: true; plan: Plan } | { ok: false; errors: ConfigError[] };

export interface CompileOptions {
  /** Which Gateway's plan; may be omitted when the resources hold exactly one. */
  gatewayName?: string;
  /** Live identity providers; by default an offline registry that starts no background work. */
  providers?: ProviderRegistry;
  /** Live token issuers (`spec.tokens`); by default an offline registry that writes no keys. */
  tokens?: TokenIssuerRegistry;
  now?: () => number;
  /** Where denials of shadow-mode Policies go (the gateway logs and counts them); dropped by default. */
  recordShadowDenial?: ShadowDenialRecorder;
  /** Secrets and token sources of credential-injecting policies; by default offline (none read, none called). */
  credentials?: OutboundCredentials;
  /** Rate-limit backends (`spec.rateLimits`); by default an offline registry that connects nowhere. */
  rateLimiters?: RateLimiterRegistry;
  /**
   * False: read no file the config names (TLS certificates and keys, signing keys) — the control
   * plane validates configs whose files live on the gateway hosts. Everything else is checked.
   */
  readFiles?: boolean;
}

function offlineProviders(): ProviderRegistry {
  return new ProviderRegistry({ now: Date.now, start: false, env: {}, log: () => {} });
}

/**
 * Compiles loaded resources into the immutable plan of one gateway. Pure apart from reading the
 * TLS files it names; every problem found is reported, not just the first.
 * `gatewayName` may be omitted when the resources hold exactly one Gateway.
 */
export function compilePlan(
  allResources: readonly LoadedResource[],
  options: CompileOptions = {},
): CompileResult {
  // ControlPlane resources configure the control plane process; a gateway has no use for them.
  const resources = allResources.filter((r) => r.kind !== 'ControlPlane');
  const readFiles = options.readFiles !== false;
  const errors: ConfigError[] = [];
  const fail = (r: LoadedResource, path: Array<string | number>, message: string) =>
    errors.push({ file: r.source.file, ...r.source.locate(path), path: formatFieldPath(path), message });

  checkUniqueNames(resources, fail);
  const gateways = resources.filter((r) => r.kind === 'Gateway');
  const gateway = options.gatewayName
    ? gateways.find((g) => g.metadata.name === options.gatewayName)
    : gateways.length === 1
      ? gateways[0]
      : undefined;
  if (!gateway) {
    const names = gateways.map((g) => g.metadata.name).join(', ') || 'none';
    const message = options.gatewayName
      ? `no Gateway named ${options.gatewayName} (found: ${names})`
      : gateways.length === 0
        ? 'the configuration holds no Gateway resource'
        : `several Gateways (${names}): choose one with --gateway`;
    errors.push({ file: resources[0]?.source.file ?? '(config)', line: 1, column: 1, path: '', message });
    return { ok: false, errors };
  }
  const spec = gateway.spec as unknown as GatewaySpec;
  const resolvePath = relativeTo(gateway.source.file);

  const listeners: CompiledListener[] = [];
  const listenerNames = new Set<string>();
  const ports = new Set<string>();
  spec.listeners.forEach((listener, index) => {
    const path = ['spec', 'listeners', index];
    if (listenerNames.has(listener.name))
      fail(gateway, [...path, 'name'], `duplicate listener name ${listener.name}`);
    listenerNames.add(listener.name);
    const bind = `${listener.address}:${listener.port}`;
    if (ports.has(bind) || (spec.admin && spec.admin.port === listener.port))
      fail(gateway, [...path, 'port'], `port ${listener.port} is used twice`);
    ports.add(bind);
    const problems: TlsProblem[] = [];
    const tls = compileListenerTls(listener, path, resolvePath, problems, readFiles);
    for (const p of problems) fail(gateway, p.path, p.message);
    listeners.push({ spec: listener, tls });
  });

  const trusted = compileTrustedProxies(spec.trustedProxies);
  for (const bad of trusted.invalid)
    fail(gateway, ['spec', 'trustedProxies', bad.index], `not a CIDR: ${bad.value}`);
  if (spec.decision && !listenerNames.has(spec.decision.listener))
    fail(gateway, ['spec', 'decision', 'listener'], `no listener named ${spec.decision.listener}`);
  if (spec.decision && spec.trustedProxies.length === 0)
    fail(
      gateway,
      ['spec', 'decision'],
      'the decision endpoint answers trusted proxies only: list them in trustedProxies',
    );

  const tokens = compileTokens(
    readFiles || spec.tokens?.keys === undefined
      ? spec
      : { ...spec, tokens: { ...spec.tokens, keys: undefined } },
    gateway.metadata.name,
    options.tokens,
    resolvePath,
    listenerNames,
    (p, m) => fail(gateway, p, m),
  );
  const rateLimits = compileRateLimits(
    spec.rateLimits,
    options.rateLimiters ?? new RateLimiterRegistry({ start: false, env: {}, now: Date.now, log: () => {} }),
    (p, m) => fail(gateway, p, m),
  );

  const upstreams = new Map<string, CompiledUpstream>();
  for (const r of resources) {
    if (r.kind !== 'Upstream') continue;
    const upstreamSpec = r.spec as unknown as UpstreamSpec;
    upstreams.set(
      key(r),
      compileUpstream(key(r), upstreamSpec, relativeTo(r.source.file), (p, m) => fail(r, p, m), readFiles),
    );
  }

  const router = new Router<CompiledRule>();
  const providerRegistry = options.providers ?? offlineProviders();
  const providerResources = new Map(
    resources.filter((r) => r.kind === 'IdentityProvider').map((r) => [key(r), r]),
  );
  const usedProviders = new Map<string, ProviderRuntime>();
  const consumers = compileConsumers(resources, fail);
  const depsFor = (namespace: string): PolicyDeps => ({
    now: options.now ?? Date.now,
    namespace,
    consumers: () => consumers.get(namespace) ?? emptyConsumerIndex,
    tokenIssuer: tokens.issuer,
    credentials: () => options.credentials ?? offlineCredentials,
    rateLimiter: rateLimits.limiter,
    provider(name) {
      const id = `${namespace}/${name}`;
      const resource = providerResources.get(id);
      if (!resource) return undefined;
      const runtime = providerRegistry.resolve(id, resource.spec as unknown as IdentityProviderSpec);
      usedProviders.set(id, runtime);
      return runtime;
    },
  });
  const policyIndex = indexPolicies(resources, gateway, fail);
  const rules: CompiledRule[] = [];
  const gatewayNames = new Set(gateways.map((g) => g.metadata.name));
  for (const r of resources) {
    if (r.kind !== 'APIRule') continue;
    const rule = r as unknown as APIRule & { source: LoadedResource['source'] };
    const selector = rule.spec.gatewaySelector?.matchLabels;
    if ((rule.spec.gateway === undefined) === (selector === undefined))
      fail(r, ['spec'], 'give exactly one of gateway and gatewaySelector');
    else if (rule.spec.gateway !== undefined && !gatewayNames.has(rule.spec.gateway))
      fail(r, ['spec', 'gateway'], `no Gateway named ${rule.spec.gateway}`);
    const defaultUpstream = upstreams.get(`${r.metadata.namespace}/${rule.spec.upstream}`);
    if (!defaultUpstream)
      fail(
        r,
        ['spec', 'upstream'],
        `no Upstream named ${rule.spec.upstream} in namespace ${r.metadata.namespace}`,
      );
    rule.spec.rules.forEach((ruleSpec, index) => {
      if (ruleSpec.upstream !== undefined && !upstreams.has(`${r.metadata.namespace}/${ruleSpec.upstream}`)) {
        fail(
          r,
          ['spec', 'rules', index, 'upstream'],
          `no Upstream named ${ruleSpec.upstream} in namespace ${r.metadata.namespace}`,
        );
      }
    });
    if (!servesRule(gateway, r.metadata.namespace, rule.spec)) continue;
    rule.spec.rules.forEach((ruleSpec, index) => {
      const path = ['spec', 'rules', index];
      let upstream = defaultUpstream;
      if (ruleSpec.upstream !== undefined) {
        upstream = upstreams.get(`${r.metadata.namespace}/${ruleSpec.upstream}`);
        if (!upstream)
          fail(
            r,
            [...path, 'upstream'],
            `no Upstream named ${ruleSpec.upstream} in namespace ${r.metadata.namespace}`,
          );
      }
      if (!upstream) return;
      const id = `${key(r)}#${index}`;
      const layers = policyIndex.layersFor(r, index);
      const pipeline = compilePipeline(
        mergeStages(layers),
        depsFor,
        (policy, name) =>
          shadowPolicy(policy, { policy: name, route: id }, options.recordShadowDenial ?? dropShadowDenials),
        { id, template: ruleSpec.path },
      );
      const compiled: CompiledRule = Object.freeze({
        id,
        template: ruleSpec.path,
        upstream,
        stripPrefix: ruleSpec.stripPrefix ?? null,
        responseTimeoutMs: ruleSpec.timeout ? toMillis(ruleSpec.timeout) : upstream.responseTimeoutMs,
        maxBodyBytes: ruleSpec.maxBodyBytes,
        corsPreflights: pipeline.some((s) => s.policies.some((p) => p.answersPreflights === true)),
        pipeline,
        policies: appliedPolicies(layers),
      });
      try {
        router.add(rule.spec.hosts, ruleSpec.methods, ruleSpec.path, compiled);
        rules.push(compiled);
      } catch (err) {
        if (err instanceof RouteConflictError) fail(r, [...path, 'path'], err.message);
        else fail(r, [...path, 'path'], (err as Error).message);
      }
    });
  }

  const forwardProxy = compileForwardProxy(spec, depsFor(gateway.metadata.namespace), (p, m) =>
    fail(gateway, p, m),
  );

  if (errors.length > 0) return { ok: false, errors };
  const plan: Plan = Object.freeze({
    version: planVersion(resources),
    createdAt: new Date().toISOString(),
    gatewayName: gateway.metadata.name,
    gateway: spec,
    resolveGatewayPath: resolvePath,
    listeners,
    router,
    rules: Object.freeze(rules),
    upstreams,
    providers: usedProviders,
    tokens: tokens.used(),
    rateLimiter: rateLimits.used(),
    forwardProxy,
    trustedProxies: trusted.test,
    limits: {
      maxHeaderBytes: spec.limits.maxHeaderBytes,
      maxBodyBytes: spec.limits.maxBodyBytes,
      requestTimeoutMs: toMillis(spec.limits.requestTimeout),
      idleTimeoutMs: toMillis(spec.limits.idleTimeout),
      drainTimeoutMs: toMillis(spec.shutdown.drainTimeout),
    },
  });
  return { ok: true, plan };
}

/** By name, or by a label selector matching the Gateway's labels within the APIRule's namespace. */
function servesRule(gateway: LoadedResource, namespace: string, spec: APIRule['spec']): boolean {
  if (spec.gateway !== undefined) return spec.gateway === gateway.metadata.name;
  const selector = spec.gatewaySelector?.matchLabels;
  if (selector === undefined || namespace !== gateway.metadata.namespace) return false;
  const labels = gateway.metadata.labels ?? {};
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function key(r: LoadedResource): string {
  return `${r.metadata.namespace}/${r.metadata.name}`;
}

function relativeTo(file: string): (p: string) => string {
  const base = dirname(resolve(file));
  return (p) => (isAbsolute(p) ? p : resolve(base, p));
}

function checkUniqueNames(
  resources: readonly LoadedResource[],
  fail: (r: LoadedResource, path: Array<string | number>, message: string) => void,
) {
  const seen = new Map<string, LoadedResource>();
  for (const r of resources) {
    const id = `${r.kind}/${key(r)}`;
    const first = seen.get(id);
    if (first)
      fail(
        r,
        ['metadata', 'name'],
        `${r.kind} ${key(r)} is already defined in ${first.source.file}:${first.source.locate([]).line}`,
      );
    else seen.set(id, r);
  }
}

/**
 * Compiles the merged stages of one rule (scoped-policies.ts): each config with the dependencies of
 * the namespace it was written in, errors reported where it was written, shadow-mode Policies wrapped.
 */
function compilePipeline(
  merged: readonly MergedStage[],
  depsFor: (namespace: string) => PolicyDeps,
  shadow: (policy: CompiledPolicy, policyName: string) => CompiledPolicy,
  rule: NonNullable<PolicyDeps['rule']>,
): CompiledRule['pipeline'] {
  const pipeline: Array<CompiledRule['pipeline'][number]> = [];
  for (const { stage, entries, keepsCaller } of merged) {
    const policies: CompiledPolicy[] = [];
    entries.forEach(({ key: name, config, layer, path }, index) => {
      if (stage === 'authenticate' && policyFactories[name]!.mustBeLast && index !== entries.length - 1)
        layer.report(path, `${name} must be the last entry of ${stage}`);
      try {
        const deps: PolicyDeps = { ...depsFor(layer.namespace), rule, policy: layer.policy };
        let policy = policyFactories[name]!.compile(config as never, deps);
        if (keepsCaller) policy = keepEstablishedCaller(policy);
        if (layer.policy?.mode === 'shadow') policy = shadow(policy, layer.policy.name);
        policies.push(policy);
      } catch (err) {
        layer.report(path, (err as Error).message);
      }
    });
    if (policies.length > 0) pipeline.push(Object.freeze({ stage, policies: Object.freeze(policies) }));
  }
  return Object.freeze(pipeline);
}

/** Same resources → same version, whatever their order or the files they came from. */
function planVersion(resources: readonly LoadedResource[]): string {
  const canonical = resources
    .map(({ source: _source, ...rest }) => JSON.stringify(sortKeys(rest)))
    .sort()
    .join('\n');
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}
