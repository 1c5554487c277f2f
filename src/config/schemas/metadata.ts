import Type, { type Static } from 'typebox';

export const apiVersion = 'gatehouse.dev/v1';

const dnsLabelName = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$';

export const Metadata = Type.Object(
  {
    name: Type.String({
      pattern: dnsLabelName,
      description: 'Name of the resource, unique per kind and namespace: lowercase letters, digits and -.',
    }),
    namespace: Type.String({
      pattern: dnsLabelName,
      default: 'default',
      description: 'Namespace (tenant) of the resource. References resolve within the same namespace.',
    }),
    labels: Type.Optional(
      Type.Record(Type.String({ maxLength: 63 }), Type.String({ maxLength: 63 }), {
        description: 'Labels for selecting the resource (by policies, gateways and the admin API).',
      }),
    ),
    // Written by the control plane; accepted back so that `gatehouse get -o yaml`, edited, can be
    // applied again (and refused if someone changed the resource meanwhile). Gateways ignore them.
    resourceVersion: Type.Optional(
      Type.String({
        pattern: '^[1-9][0-9]*$',
        description:
          'Set by the control plane. Given to `gatehouse apply`, the change is refused (conflict) if the ' +
          'resource changed since this version.',
      }),
    ),
    uid: Type.Optional(Type.String({ description: 'Set by the control plane; ignored when given.' })),
    creationTimestamp: Type.Optional(
      Type.String({ description: 'Set by the control plane; ignored when given.' }),
    ),
  },
  { additionalProperties: false },
);

export type Metadata = Static<typeof Metadata>;

/** Wraps a spec schema into the envelope every resource shares. */
export function resourceSchema<K extends string, S extends ReturnType<typeof Type.Object>>(
  kind: K,
  spec: S,
  description: string,
) {
  return Type.Object(
    {
      apiVersion: Type.Literal(apiVersion, { description: `Always \`${apiVersion}\`.` }),
      kind: Type.Literal(kind),
      metadata: Metadata,
      spec,
    },
    { additionalProperties: false, description, title: kind },
  );
}
