import Type, { type TSchema } from 'typebox';
import { introspection } from './authn/introspection/policy.ts';
import { jwt } from './authn/jwt/policy.ts';
import { noAuth } from './authn/no-auth/policy.ts';
import { anonymous } from './authn/anonymous/policy.ts';
import { apiKey } from './authn/api-key/policy.ts';
import { mtls } from './authn/mtls/policy.ts';
import { allow } from './authz/allow/policy.ts';
import { audiences } from './authz/audiences/policy.ts';
import { certificates } from './authz/certificates/policy.ts';
import { claims } from './authz/claims/policy.ts';
import { deny } from './authz/deny/policy.ts';
import { groups } from './authz/groups/policy.ts';
import { requiredScopes } from './authz/required-scopes/policy.ts';
import { rateLimit } from './limit/rate-limit/policy.ts';
import { clientCredentials } from './mutate/client-credentials/policy.ts';
import { headers } from './mutate/headers/policy.ts';
import { injectApiKey } from './mutate/inject-api-key/policy.ts';
import { token } from './mutate/token/policy.ts';
import { cors } from './request/cors/policy.ts';
import { ipAllow } from './request/ip-allow/policy.ts';
import { ipDeny } from './request/ip-deny/policy.ts';
import { type PolicyFactory, type Stage, stages } from './types.ts';

/** Every policy kind, by the key it is written under in a rule. Adding a policy means adding it here. */
export const policyFactories: Readonly<Record<string, PolicyFactory<never>>> = {
  // request, in run order: a denied range wins, then the allowed ranges, then CORS (which may answer).
  ipDeny,
  ipAllow,
  cors,
  noAuth,
  jwt,
  introspection,
  apiKey,
  mtls,
  anonymous,
  // authorize, in run order: deny wins, allow decides last.
  deny,
  requiredScopes,
  audiences,
  claims,
  groups,
  certificates,
  allow,
  // limit: written as the rule field `rateLimit` itself.
  rateLimit,
  // mutate, in run order: the token first, so a header template can use it.
  token,
  headers,
  // Credentials the gateway holds for the upstream last: what they set is what goes upstream.
  injectApiKey,
  clientCredentials,
};

export function factoriesOf(stage: Stage): Array<[string, PolicyFactory<never>]> {
  return Object.entries(policyFactories).filter(([, f]) => f.stage === stage);
}

/** The rule fields a stage is written in: its object (when some policy lives there) and own fields. */
export function fieldsOf(stage: Stage): string[] {
  const factories = factoriesOf(stage);
  const own = factories.flatMap(([, f]) => (f.field === undefined ? [] : [f.field]));
  return factories.length > own.length ? [stage, ...own] : own;
}

/**
 * The rule fields of every stage, built from the registry so a new policy needs no change here:
 * `authenticate` is a required ordered list of one-key entries; every other stage that has
 * policies is an optional object keyed by policy name, except that a policy with a `field` of its
 * own is written as that optional field (`rateLimit`).
 */
export function stageFields(): Record<string, TSchema> {
  const fields: Record<string, TSchema> = {};
  for (const stage of stages) {
    const all = factoriesOf(stage);
    // A policy with a field of its own (`rateLimit`) is written as that field, not in the stage's object.
    for (const [, f] of all) if (f.field !== undefined) fields[f.field] = Type.Optional(f.schema);
    const factories = all.filter(([, f]) => f.field === undefined);
    if (factories.length === 0) continue;
    const keyed = Object.fromEntries(factories.map(([key, f]) => [key, Type.Optional(f.schema)]));
    if (stage === 'authenticate') {
      const entry = Type.Object(keyed, {
        additionalProperties: false,
        minProperties: 1,
        maxProperties: 1,
        description: 'One authentication method: an object with exactly one key, the method name.',
      });
      fields[stage] = Type.Array(entry, {
        minItems: 1,
        description:
          'Authentication methods tried in order; one that finds no credential of its kind steps aside, ' +
          'an invalid credential fails at once. Required: public routes say `noAuth: {}`.',
      });
    } else {
      fields[stage] = Type.Optional(
        Type.Object(keyed, { additionalProperties: false, description: stageDescriptions[stage] }),
      );
    }
  }
  return fields;
}

const stageDescriptions: Record<Stage, string> = {
  request:
    'Checks made before authentication, on what every request carries: the client address and, for ' +
    'browsers, CORS. Runs first so that a CORS preflight, which carries no credentials, is answered.',
  authenticate: '',
  authorize: 'Conditions on the authenticated identity; every one given must hold. Deny rules win.',
  limit: 'Limits on how much a caller may send.',
  mutate: 'Changes to the request sent upstream, applied after authorization.',
};
