import type { IdentityProviderSpec } from '../config/schemas/identity-provider.ts';
import type { JwtVerifier, ProviderDeps } from './types.ts';

// Placeholder until the key-set work lands: refuses every token as unavailable (fail closed).
export function createJwtVerifier(
  _id: string,
  _spec: IdentityProviderSpec,
  _deps: ProviderDeps,
): JwtVerifier {
  return {
    ready: () => true,
    verify: () => ({ ok: false, kind: 'unavailable', reason: 'jwt verification not built' }),
    close: () => {},
  };
}
