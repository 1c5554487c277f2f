import Type, { type Static } from 'typebox';
import { CONTINUE, type PolicyFactory, respond, type Verdict } from '../../types.ts';
import { callerOf, notAuthenticated } from '../conditions.ts';

const GroupsConfig = Type.Array(Type.String({ minLength: 1 }), {
  minItems: 1,
  uniqueItems: true,
  description: 'The caller must be a Consumer in at least one of these groups, otherwise 403 `forbidden`.',
});
export type GroupsConfig = Static<typeof GroupsConfig>;

const notInGroup = respond('forbidden', 'the caller is in none of the groups this route requires');

/** `authorize: { groups: [...] }`: consumer membership in one of the groups. */
export const groups: PolicyFactory<GroupsConfig> = {
  name: 'groups',
  stage: 'authorize',
  schema: GroupsConfig,
  compile(config) {
    const wanted = new Set(config);
    return {
      name: 'groups',
      handle(ctx): Verdict {
        const identity = callerOf(ctx);
        if (identity === null) return notAuthenticated;
        for (const group of identity.consumer?.groups ?? []) if (wanted.has(group)) return CONTINUE;
        return notInGroup;
      },
    };
  },
};
