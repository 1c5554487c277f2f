import type { APIRule } from '../../config/schemas/api-rule.ts';
import type { PolicySpec } from '../../config/schemas/policy.ts';
import type { GatewayIdentity } from '../security/types.ts';
import type { StoredResource } from '../store/types.ts';

/** A resource as it goes into a snapshot: what the gateway's loader accepts (no store metadata). */
export interface SnapshotResource {
  apiVersion: string;
  kind: StoredResource['kind'];
  metadata: { name: string; namespace: string; labels?: Record<string, string> };
  spec: Record<string, unknown>;
}

/**
 * What one registered gateway receives, picked from the resources of its namespace: its Gateway
 * resource, the APIRules selecting it, the Upstreams those rules name, every IdentityProvider and
 * Consumer, and the Policies whose target is in the snapshot. A Policy aimed at another gateway's
 * rules would be a dangling reference for this gateway's compiler, so it is left out.
 *
 * The Gateway resource carries the registration labels merged over its own (the registration wins
 * on a clash): the gateway's compiler then selects exactly the APIRules chosen here.
 */
export function selectSnapshotResources(
  namespaceResources: readonly StoredResource[],
  identity: GatewayIdentity,
): SnapshotResource[] {
  const inNamespace = namespaceResources.filter((r) => r.metadata.namespace === identity.namespace);
  const gatewayResource = inNamespace.find((r) => r.kind === 'Gateway' && r.metadata.name === identity.name);
  const out: SnapshotResource[] = [];
  const labels = { ...(gatewayResource?.metadata.labels ?? {}), ...identity.labels };
  if (gatewayResource) out.push({ ...strip(gatewayResource), metadata: withLabels(gatewayResource, labels) });

  const apiRules = inNamespace.filter(
    (r) => r.kind === 'APIRule' && selects(r.spec as unknown as APIRule['spec'], identity.name, labels),
  );
  const upstreamNames = new Set<string>();
  for (const r of apiRules) {
    const spec = r.spec as unknown as APIRule['spec'];
    upstreamNames.add(spec.upstream);
    for (const rule of spec.rules ?? []) if (rule.upstream !== undefined) upstreamNames.add(rule.upstream);
  }
  const ruleNames = new Set(apiRules.map((r) => r.metadata.name));
  for (const r of inNamespace) {
    if (r.kind === 'Gateway') continue;
    if (r.kind === 'APIRule' && !ruleNames.has(r.metadata.name)) continue;
    if (r.kind === 'Upstream' && !upstreamNames.has(r.metadata.name)) continue;
    if (r.kind === 'Policy' && !policyTargetsSnapshot(r, identity.name, apiRules)) continue;
    out.push(strip(r));
  }
  return out;
}

/** Same rule as the compiler's (src/plan/compile.ts), against the merged labels. */
export function selects(spec: APIRule['spec'], gatewayName: string, labels: Record<string, string>): boolean {
  if (spec.gateway !== undefined) return spec.gateway === gatewayName && spec.gatewaySelector === undefined;
  const selector = spec.gatewaySelector?.matchLabels;
  if (selector === undefined) return false;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function policyTargetsSnapshot(
  policy: StoredResource,
  gatewayName: string,
  apiRules: readonly StoredResource[],
): boolean {
  const target = (policy.spec as unknown as PolicySpec).targetRef;
  if (!target) return false;
  if (target.kind === 'Gateway') return target.name === gatewayName;
  if (target.selector !== undefined) {
    const selector = Object.entries(target.selector);
    return apiRules.some((a) => selector.every(([k, v]) => a.metadata.labels?.[k] === v));
  }
  return apiRules.some((a) => a.metadata.name === target.name);
}

function withLabels(r: StoredResource, labels: Record<string, string>): SnapshotResource['metadata'] {
  const metadata: SnapshotResource['metadata'] = { name: r.metadata.name, namespace: r.metadata.namespace };
  if (Object.keys(labels).length > 0) metadata.labels = labels;
  return metadata;
}

function strip(r: StoredResource): SnapshotResource {
  return {
    apiVersion: r.apiVersion,
    kind: r.kind,
    metadata: withLabels(r, r.metadata.labels ?? {}),
    spec: r.spec,
  };
}
