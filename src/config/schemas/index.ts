import type { TSchema } from 'typebox';
import { APIRule } from './api-rule.ts';
import { Consumer } from './consumer.ts';
import { ControlPlane } from './control-plane.ts';
import { Gateway } from './gateway.ts';
import { IdentityProvider } from './identity-provider.ts';
import { Policy } from './policy.ts';
import { Upstream } from './upstream.ts';

/** Every resource kind and its schema: the single source of types, validation, defaults and docs. */
export const kindSchemas = {
  Gateway,
  Upstream,
  APIRule,
  IdentityProvider,
  Consumer,
  Policy,
  ControlPlane,
} as const satisfies Record<string, TSchema>;

export type Kind = keyof typeof kindSchemas;
export const kinds = Object.keys(kindSchemas) as Kind[];

export function isKind(value: unknown): value is Kind {
  return typeof value === 'string' && Object.hasOwn(kindSchemas, value);
}
