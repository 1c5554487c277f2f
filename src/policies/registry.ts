import Type from 'typebox';
import { noAuth } from './authn/no-auth/policy.ts';
import type { PolicyFactory, Stage } from './types.ts';

/** Every policy kind, by the key it is written under in a rule. Adding a policy means adding it here. */
export const policyFactories: Readonly<Record<string, PolicyFactory<never>>> = {
  noAuth,
};

export function factoriesOf(stage: Stage): Array<[string, PolicyFactory<never>]> {
  return Object.entries(policyFactories).filter(([, f]) => f.stage === stage);
}

/**
 * Schema of one entry of a rule's `authenticate` list: an object with exactly one key, the method.
 * Built from the registry so a new method needs no change here.
 */
export function authenticateEntrySchema() {
  const methods = Object.fromEntries(
    factoriesOf('authenticate').map(([key, f]) => [key, Type.Optional(f.schema)]),
  );
  return Type.Object(methods, {
    additionalProperties: false,
    minProperties: 1,
    maxProperties: 1,
    description: 'One authentication method: an object with exactly one key, the method name.',
  });
}
