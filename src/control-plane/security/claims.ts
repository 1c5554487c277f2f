import type { GatewayIdentity } from './types.ts';

/**
 * The claims of a subsystem JWT the control plane issues to a gateway: `sub` is the gateway id,
 * `gateway` carries the rest of its identity, so a receiver (analytics) needs no lookup.
 */
export interface GatewayTokenClaims {
  gateway: { name: string; namespace: string; labels: Record<string, string> };
}

/** The identity in a verified payload, or null when the gateway claims are missing or malformed. */
export function identityFromClaims(payload: Record<string, unknown>): GatewayIdentity | null {
  const { sub, gateway } = payload;
  if (typeof sub !== 'string' || sub.length === 0) return null;
  if (typeof gateway !== 'object' || gateway === null) return null;
  const { name, namespace, labels } = gateway as Record<string, unknown>;
  if (typeof name !== 'string' || typeof namespace !== 'string') return null;
  const copied: Record<string, string> = {};
  if (labels !== undefined) {
    if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) return null;
    for (const [k, v] of Object.entries(labels)) {
      if (typeof v !== 'string') return null;
      copied[k] = v;
    }
  }
  return { id: sub, name, namespace, labels: copied };
}
