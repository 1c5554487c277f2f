import { parseArgs } from 'node:util';
import { isKind, kindSchemas } from '../config/schemas/index.ts';

/**
 * JSON Schema for editors: one schema accepting any resource (`oneOf` by kind), or one kind's.
 * Point yaml-language-server at it with `# yaml-language-server: $schema=gatehouse.schema.json`.
 */
export function resourcesJsonSchema(): Record<string, unknown> {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://gatehouse.dev/schemas/v1/resources.json',
    title: 'Gatehouse resource',
    oneOf: Object.values(kindSchemas),
  };
}

export async function runSchema(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { kind: { type: 'string' } } });
  if (values.kind !== undefined) {
    if (!isKind(values.kind)) {
      process.stderr.write(`unknown kind ${values.kind}; known: ${Object.keys(kindSchemas).join(', ')}\n`);
      return 2;
    }
    process.stdout.write(`${JSON.stringify(kindSchemas[values.kind], null, 2)}\n`);
    return 0;
  }
  process.stdout.write(`${JSON.stringify(resourcesJsonSchema(), null, 2)}\n`);
  return 0;
}
