import type { TLocalizedValidationError } from 'typebox/error';

export interface FieldProblem {
  /** Path to the offending value (for a missing field: to the field itself). */
  path: Array<string | number>;
  message: string;
}

const durationPattern = '^[0-9]+(ms|s|m|h)$';

function pointerToPath(pointer: string): Array<string | number> {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((raw) => {
      const part = raw.replaceAll('~1', '/').replaceAll('~0', '~');
      return /^(0|[1-9][0-9]*)$/.test(part) ? Number(part) : part;
    });
}

/**
 * Turns raw JSON Schema errors into one readable message per field: unknown fields are named,
 * unions of literals become "must be one of", and the noise a union produces is folded away.
 */
export function readableSchemaErrors(errors: readonly TLocalizedValidationError[]): FieldProblem[] {
  const unionPaths = new Map<string, Set<unknown>>();
  for (const e of errors) if (e.keyword === 'anyOf') unionPaths.set(e.schemaPath, new Set());
  // TypeBox does not always report the anyOf itself (seen for a union of literals as array items):
  // its branches' const errors then stand for it, and it is reported once at their instance.
  const unreported = new Map<string, string>();
  for (const e of errors) {
    const branch = e.keyword === 'const' ? /^(.*)\/anyOf\/\d+$/.exec(e.schemaPath) : null;
    if (branch && !unionPaths.has(branch[1]!)) unreported.set(branch[1]!, e.instancePath);
  }
  for (const union of unreported.keys()) unionPaths.set(union, new Set());
  const out: FieldProblem[] = [];
  const seen = new Set<string>();
  const add = (path: Array<string | number>, message: string) => {
    const key = `${path.join('\0')}\u0001${message}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ path, message });
  };
  for (const e of errors) {
    const union = [...unionPaths.keys()].find((p) => e.schemaPath.startsWith(`${p}/anyOf/`));
    if (union !== undefined) {
      if (e.keyword === 'const')
        unionPaths.get(union)?.add((e.params as { allowedValue: unknown }).allowedValue);
      continue;
    }
    const path = pointerToPath(e.instancePath);
    const params = e.params as Record<string, unknown>;
    switch (e.keyword) {
      case 'boolean':
        add(path, 'unknown field');
        break;
      case 'additionalProperties':
        for (const name of params.additionalProperties as string[]) add([...path, name], 'unknown field');
        break;
      case 'required':
        for (const name of params.requiredProperties as string[])
          add([...path, name], 'required field is missing');
        break;
      case 'anyOf': {
        const allowed = [...(unionPaths.get(e.schemaPath) ?? [])];
        add(
          path,
          allowed.length ? `must be one of: ${allowed.join(', ')}` : 'does not match any allowed form',
        );
        break;
      }
      case 'pattern':
        add(
          path,
          params.pattern === durationPattern ? 'must be a duration such as 500ms, 30s, 2m or 1h' : e.message,
        );
        break;
      case 'minProperties':
      case 'maxProperties':
        add(path, params.limit === 1 ? 'must have exactly one key' : e.message);
        break;
      default:
        add(path, e.message);
    }
  }
  for (const [union, instancePath] of unreported) {
    const allowed = [...(unionPaths.get(union) ?? [])];
    if (allowed.length > 0) add(pointerToPath(instancePath), `must be one of: ${allowed.join(', ')}`);
  }
  return out;
}
