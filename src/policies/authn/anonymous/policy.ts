import Type from 'typebox';
import { CONTINUE, type PolicyFactory, SKIP } from '../../types.ts';

/**
 * Callers without a credential proceed as `anonymous`: `- anonymous: {}`, last in `authenticate`.
 * An invalid credential never reaches it: the method it belongs to has already answered 401.
 */
export const anonymous: PolicyFactory<Record<string, never>> = {
  name: 'anonymous',
  stage: 'authenticate',
  mustBeLast: true,
  schema: Type.Object(
    {},
    {
      additionalProperties: false,
      description:
        'Lets requests that sent no credential through with subject `anonymous`. Must be the last method: ' +
        'an invalid credential fails at the method it belongs to (401), and an `Authorization` header that ' +
        'no earlier method accepted is refused (401 `unauthenticated`), never ignored.',
    },
  ),
  compile() {
    return {
      name: 'anonymous',
      handle(ctx) {
        // A credential no method of this route understands is not "no credential": stepping aside
        // makes it a 401 rather than an anonymous call to an upstream that might trust the header.
        if (ctx.headers.authorization !== undefined) return SKIP;
        ctx.identity = { method: 'anonymous', subject: 'anonymous' };
        return CONTINUE;
      },
    };
  },
};
