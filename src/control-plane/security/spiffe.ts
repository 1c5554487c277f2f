import type { GatewayIdentity } from './types.ts';

/** The URI SAN of a gateway's client certificate: who it is, read back by the control plane. */
export function gatewaySpiffeId(identity: Pick<GatewayIdentity, 'id' | 'name' | 'namespace'>): string {
  return `spiffe://gatehouse/ns/${identity.namespace}/gateway/${identity.name}/${identity.id}`;
}

const pattern = /^spiffe:\/\/gatehouse\/ns\/([^/]+)\/gateway\/([^/]+)\/([^/]+)$/;

export function parseGatewaySpiffeId(uri: string): { namespace: string; name: string; id: string } | null {
  const m = pattern.exec(uri);
  return m ? { namespace: m[1]!, name: m[2]!, id: m[3]! } : null;
}
