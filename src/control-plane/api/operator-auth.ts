import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { IdentityProviderSpec } from '../../config/schemas/identity-provider.ts';
import type { ProblemCode } from '../../errors.ts';
import { createJwtVerifier } from '../../identity/jwt-verifier.ts';
import type { JwtVerifier } from '../../identity/types.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { OperatorIdentity, Role } from '../routes.ts';
import { parseRoleBinding } from './roles.ts';

/** Who may call the admin API (from ControlPlane.spec.operators, the provider resolved). */
export interface OperatorAuthConfig {
  tokens: ReadonlyArray<{
    name: string;
    sha256: string;
    roles: ReadonlyArray<{ namespace: string; role: Role }>;
  }>;
  jwt?: {
    /** `namespace/name` of the IdentityProvider. */
    providerId: string;
    provider: IdentityProviderSpec;
    subjectClaim: string;
    rolesClaim: string;
  };
}

export type OperatorCheck =
  | { ok: true; operator: OperatorIdentity }
  | {
      ok: false;
      code: Extract<ProblemCode, 'unauthenticated' | 'invalid_token' | 'identity_provider_unavailable'>;
      detail: string;
    };

export interface OperatorAuthenticator {
  authenticate(req: IncomingMessage): Promise<OperatorCheck>;
  /** False while operator JWTs cannot be checked yet (no keys fetched). */
  ready(): boolean;
  close(): void;
}

const jwsShape = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Admin tokens are compared by sha256, every configured one with timingSafeEqual (no early exit
 * that would tell which prefix matched); a JWT is verified against the IdentityProvider's key set
 * with the gateway's own verifier (key rotation, grace, bounded refetch included).
 */
export function createOperatorAuthenticator(
  config: OperatorAuthConfig,
  deps: { now: () => number; logger: Logger; env: Readonly<Record<string, string | undefined>> },
): OperatorAuthenticator {
  const tokens = config.tokens.map((t) => ({
    operator: Object.freeze({ name: t.name, roles: Object.freeze(t.roles.map((r) => ({ ...r }))) }),
    digest: Buffer.from(t.sha256, 'hex'),
  }));
  let verifier: JwtVerifier | null = null;
  if (config.jwt) {
    verifier = createJwtVerifier(config.jwt.providerId, config.jwt.provider, {
      now: deps.now,
      start: true,
      env: deps.env,
      log: (level, fields, message) =>
        deps.logger[level]({ ...fields, provider: config.jwt?.providerId }, message),
    });
    verifier.activate();
  }
  const jwt = config.jwt;

  return {
    async authenticate(req) {
      const header = req.headers.authorization;
      if (header === undefined)
        return { ok: false, code: 'unauthenticated', detail: 'a bearer token is required' };
      const match = /^Bearer +([^\s]+) *$/i.exec(header);
      if (!match)
        return { ok: false, code: 'invalid_token', detail: 'Authorization must be "Bearer <token>"' };
      const token = match[1]!;
      const digest = createHash('sha256').update(token).digest();
      let found: OperatorIdentity | null = null;
      for (const t of tokens) if (timingSafeEqual(t.digest, digest)) found = t.operator;
      if (found) return { ok: true, operator: found };
      if (!verifier || !jwt || !jwsShape.test(token))
        return { ok: false, code: 'invalid_token', detail: 'the token is not accepted' };
      const check = await verifier.verify(token);
      if (!check.ok)
        return check.kind === 'unavailable'
          ? { ok: false, code: 'identity_provider_unavailable', detail: check.reason }
          : { ok: false, code: 'invalid_token', detail: `the token is not accepted: ${check.reason}` };
      const subject = check.claims[jwt.subjectClaim];
      if (typeof subject !== 'string' || subject === '')
        return { ok: false, code: 'invalid_token', detail: `the token has no ${jwt.subjectClaim} claim` };
      const raw = check.claims[jwt.rolesClaim];
      const values = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(' ') : [];
      const roles = values.map(parseRoleBinding).filter((r) => r !== null);
      return { ok: true, operator: { name: subject, roles } };
    },
    ready: () => verifier?.ready() ?? true,
    close: () => verifier?.close(),
  };
}
