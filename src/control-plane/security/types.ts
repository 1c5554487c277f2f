import type { IncomingMessage } from 'node:http';

/**
 * How the subsystems prove who they are to each other. Two modes, chosen per control plane:
 * - `mtls`: the control plane's CA issues each gateway a client certificate at registration and
 *   renews it before expiry; both sides verify the other's chain.
 * - `jwt`: for links through TLS-terminating load balancers, every call carries a short-lived JWT
 *   issued by the control plane; receivers verify it against the control plane's JWKS URL.
 */
export type SubsystemSecurityMode = 'mtls' | 'jwt';

/** A registered gateway, as the control plane knows it. */
export interface GatewayIdentity {
  /** Stable id given at registration. */
  id: string;
  /** The Gateway resource it serves. */
  name: string;
  namespace: string;
  labels: Record<string, string>;
}

/** Control-plane side: who is calling (a gateway's certificate or bearer JWT), or null (→ 401). */
export interface GatewayAuthenticator {
  authenticate(req: IncomingMessage): Promise<GatewayIdentity | null>;
}

/** Gateway side: what a gateway presents on every call to the control plane or analytics ingestion. */
export interface SubsystemCredentials {
  readonly identity: GatewayIdentity;
  /** Headers to add to a call for `audience` (in jwt mode `authorization: Bearer <short-lived JWT>`). */
  headers(audience: string): Promise<Record<string, string>>;
  /** TLS material for the connection: the CA to verify the server with, and in mtls mode the client certificate. */
  tls(): { ca?: string; cert?: string; key?: string };
}

/** Audiences of subsystem JWTs. */
export const audiences = {
  controlPlane: 'gatehouse:control-plane',
  analytics: 'gatehouse:analytics',
} as const;
