import type { IdentityProviderSpec } from '../config/schemas/identity-provider.ts';
import type { Introspector, ProviderDeps } from './types.ts';

// Placeholder until the introspection work lands: fail closed.
export function createIntrospector(
  _id: string,
  _spec: IdentityProviderSpec,
  _deps: ProviderDeps,
): Introspector {
  return {
    introspect: () => ({ ok: false, kind: 'unavailable', reason: 'introspection not built' }),
    close: () => {},
  };
}
