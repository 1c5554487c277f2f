import type { TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import Value from 'typebox/value';
import { formatFieldPath } from '../../config/errors.ts';
import { readableSchemaErrors } from '../../config/schema-errors.ts';
import { HttpProblem } from '../routes.ts';

/** A compiled body check: defaults applied, then validated; 400 `bad_request` naming every field. */
export function bodyParser<T>(schema: TSchema): (value: unknown) => T {
  const validator = Compile(schema);
  return (value) => {
    const withDefaults = Value.Default(schema, structuredClone(value ?? {}));
    if (validator.Check(withDefaults)) return withDefaults as T;
    const problems = readableSchemaErrors(validator.Errors(withDefaults)).map(
      (p) => `${formatFieldPath(p.path) || 'body'}: ${p.message}`,
    );
    throw new HttpProblem('bad_request', problems.join('; '));
  };
}
