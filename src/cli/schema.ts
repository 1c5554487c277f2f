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
    oneOf: Object.values(kindSchemas).map(forEditors),
  };
}

/**
 * The loader fills defaults before validating, so a field with a default may be left out of a
 * file. Editors validate the file as written: for them such fields are not required.
 */
function forEditors(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(forEditors);
  if (!schema || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) out[key] = forEditors(value);
  const properties = out.properties as Record<string, { default?: unknown }> | undefined;
  if (Array.isArray(out.required) && properties) {
    out.required = (out.required as string[]).filter((name) => properties[name]?.default === undefined);
  }
  return out;
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
