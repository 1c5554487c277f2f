import { decodeJwt } from 'jose';
import Value from 'typebox/value';
import { IdentityProviderSpec } from '../../config/schemas/identity-provider.ts';
import { audiences } from '../../control-plane/security/types.ts';
import {
  createSubsystemJwtVerifier,
  type SubsystemJwtVerifier,
} from '../../control-plane/security/verifier.ts';
import { SubsystemTokenError } from '../../control-plane/security/errors.ts';
import { createJwtVerifier } from '../../identity/jwt-verifier.ts';
import type { JwtVerifier } from '../../identity/types.ts';
import type { AnalyticsSpec } from '../schema.ts';

/** Who sent a batch: the gateway name its events must carry. */
export type LinkCheck =
  | { readonly ok: true; readonly gateway: string }
  | { readonly ok: false; readonly kind: 'invalid' | 'unavailable'; readonly reason: string };

export interface LinkVerifier {
  verify(authorization: string | undefined): Promise<LinkCheck>;
  close(): Promise<void>;
}

export interface LinkVerifierOptions {
  /** Local-mode gateways that sign their own link JWTs. */
  readonly trustedGateways: AnalyticsSpec['trustedGateways'];
  /** The control plane issuing link JWTs to connected gateways, if any. */
  readonly controlPlane?: { readonly issuer: string; readonly jwksUrl: string };
  readonly now?: () => number;
  readonly log: (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string) => void;
}

/**
 * Checks the bearer JWT on the ingestion link. The token's (unverified) `iss` only picks which key
 * set to check it against: a trusted gateway's own (JWKS at its admin port, fetched and kept in the
 * background like an IdentityProvider's, with an unknown `kid` refetched at a bounded rate), or the
 * control plane's. Audience `gatehouse:analytics` and expiry are always required; an unknown issuer,
 * a bad signature or an expired token are `invalid` (401), a key set that cannot be fetched is
 * `unavailable` (503: the shipper retries).
 */
export function createLinkVerifier(options: LinkVerifierOptions): LinkVerifier {
  const now = options.now ?? Date.now;
  const local = new Map<string, { name: string; verifier: JwtVerifier }>();
  for (const gw of options.trustedGateways) {
    const spec = Value.Default(IdentityProviderSpec, {
      issuer: gw.issuer,
      jwksUri: gw.jwksUri,
      audiences: [audiences.analytics],
      algorithms: ['ES256', 'RS256', 'EdDSA'],
      clockSkew: '30s',
      keySet: { minRefetchInterval: '1s', refreshInterval: '5m' },
    }) as IdentityProviderSpec;
    const verifier = createJwtVerifier(`analytics/${gw.name}`, spec, {
      now,
      start: true,
      env: {},
      log: options.log,
    });
    verifier.activate();
    local.set(gw.issuer, { name: gw.name, verifier });
  }
  let controlPlane: SubsystemJwtVerifier | null = null;
  if (options.controlPlane)
    controlPlane = createSubsystemJwtVerifier({
      jwksUrl: options.controlPlane.jwksUrl,
      issuer: options.controlPlane.issuer,
      audience: audiences.analytics,
    });
  return {
    async verify(authorization) {
      const match = authorization === undefined ? null : /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(authorization);
      if (!match) return { ok: false, kind: 'invalid', reason: 'no bearer token' };
      const token = match[1]!;
      let issuer: unknown;
      try {
        issuer = decodeJwt(token).iss;
      } catch {
        return { ok: false, kind: 'invalid', reason: 'malformed token' };
      }
      const trusted = typeof issuer === 'string' ? local.get(issuer) : undefined;
      if (trusted) {
        const check = await trusted.verifier.verify(token);
        if (!check.ok) return { ok: false, kind: check.kind, reason: check.reason };
        if (check.claims.sub !== trusted.name)
          return { ok: false, kind: 'invalid', reason: `sub is not ${trusted.name}` };
        return { ok: true, gateway: trusted.name };
      }
      if (controlPlane && issuer === options.controlPlane!.issuer) {
        try {
          const identity = await controlPlane.verify(token);
          return { ok: true, gateway: identity.name };
        } catch (err) {
          if (err instanceof SubsystemTokenError)
            return {
              ok: false,
              kind: err.code === 'keys_unavailable' ? 'unavailable' : 'invalid',
              reason: err.message,
            };
          throw err;
        }
      }
      return { ok: false, kind: 'invalid', reason: 'issuer not trusted' };
    },
    async close() {
      for (const { verifier } of local.values()) verifier.close();
      await controlPlane?.close();
    },
  };
}
