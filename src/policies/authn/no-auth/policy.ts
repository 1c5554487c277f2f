import Type from 'typebox';
import { CONTINUE, type PolicyFactory } from '../../types.ts';

/** Public route: no credential is looked at, the identity stays anonymous. Must be stated explicitly. */
export const noAuth: PolicyFactory<Record<string, never>> = {
  name: 'noAuth',
  stage: 'authenticate',
  schema: Type.Object(
    {},
    { additionalProperties: false, description: 'Public route: requests are not authenticated.' },
  ),
  compile() {
    return {
      name: 'noAuth',
      handle(ctx) {
        ctx.identity = { method: 'noAuth', subject: null };
        return CONTINUE;
      },
    };
  },
};
