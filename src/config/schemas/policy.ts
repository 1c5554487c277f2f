import Type, { type Static, type TSchema } from 'typebox';
import { stageFields } from '../../policies/registry.ts';
import { resourceSchema } from './metadata.ts';

const TargetRef = Type.Object(
  {
    kind: Type.Union([Type.Literal('Gateway'), Type.Literal('APIRule')], {
      description:
        'Gateway: platform scope, every rule the gateway serves. APIRule with `selector`: application ' +
        'scope. APIRule with `name` (and optionally `rule`): service scope.',
    }),
    name: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'Name of the Gateway or APIRule, in the Policy’s namespace. Required for kind Gateway; for kind ' +
          'APIRule give either `name` or `selector`.',
      }),
    ),
    selector: Type.Optional(
      Type.Record(Type.String({ maxLength: 63 }), Type.String({ maxLength: 63 }), {
        minProperties: 1,
        description:
          'Labels an APIRule of the Policy’s namespace must all carry for its rules to be targeted (kind APIRule only).',
      }),
    ),
    rule: Type.Optional(
      Type.Integer({
        minimum: 0,
        description: 'Index of one rule in the named APIRule’s `rules`; omitted = all of its rules.',
      }),
    ),
  },
  {
    additionalProperties: false,
    description:
      'What the Policy applies to. A reference to nothing that exists (no such Gateway or APIRule, a ' +
      'selector matching no APIRule, a rule index past the end) is a compile error.',
  },
);

/** The stage fields of an APIRule rule, with `authenticate` optional: a Policy adds to a rule, it is not one. */
function policyStageFields(): Record<string, TSchema> {
  const fields = stageFields();
  const authenticate = fields.authenticate as { items?: TSchema } | undefined;
  if (authenticate?.items !== undefined) {
    fields.authenticate = Type.Optional(
      Type.Array(authenticate.items, {
        minItems: 1,
        description:
          'An additional authentication requirement: these methods are tried in order like a rule’s, and ' +
          'must succeed on top of the rule’s own `authenticate` (which every rule still needs). Not allowed ' +
          'in shadow mode.',
      }),
    );
  }
  return fields;
}

export const PolicySpec = Type.Object(
  {
    targetRef: TargetRef,
    mode: Type.Union([Type.Literal('enforce'), Type.Literal('shadow')], {
      default: 'enforce',
      description:
        'enforce: a denial answers the request. shadow: a denial is only recorded (log line `shadow deny` ' +
        'and metric `gatehouse_shadow_denials_total`) and the request goes on as if the Policy had passed. ' +
        'A shadow Policy may only set what decides (`authorize`, `request.ipAllow`, `request.ipDeny`), never ' +
        '`authenticate`, `mutate` or `request.cors`.',
    }),
    ...policyStageFields(),
  },
  { additionalProperties: false },
);

export const Policy = resourceSchema(
  'Policy',
  PolicySpec,
  'Policies applied to many rules at once: every rule of a Gateway, the APIRules matching a label ' +
    'selector, or one APIRule (or one of its rules). See docs/policies.md for how scopes combine.',
);
export type Policy = Static<typeof Policy>;
export type PolicySpec = Static<typeof PolicySpec>;
