import { createHash } from 'node:crypto';
import type { RequestContext } from '../../../gateway/context.ts';

/** Reads the value a limit counts by from a request; undefined when the request has none. */
export type KeyReader = (ctx: RequestContext) => string | undefined;

const keyKinds = ['client', 'subject', 'consumer', 'route', 'header:', 'claim:', 'path:'] as const;

/** The `key` values a limit accepts (the schema's pattern says the same). */
export const keyPattern =
  "^(client|subject|consumer|route|header:[A-Za-z0-9!#$%&'*+.^_`|~-]+|claim:[^\\s]+|path:[A-Za-z_][A-Za-z0-9_]*)$";

/**
 * The reader of one `key`, and its value when it is the same for every request of the rule
 * (`route`). `template` is the rule's path: `path:<param>` must name one of its parameters.
 */
export function keyReader(
  key: string,
  rule: { id: string; template: string },
): { read: KeyReader; constant: string | null } {
  if (key === 'client') return { read: (ctx) => ctx.client.address, constant: null };
  if (key === 'subject') return { read: (ctx) => ctx.identity?.subject ?? undefined, constant: null };
  if (key === 'consumer') return { read: (ctx) => ctx.identity?.consumer?.name, constant: null };
  if (key === 'route') return { read: () => rule.id, constant: rule.id };
  if (key.startsWith('header:')) {
    const name = key.slice('header:'.length).toLowerCase();
    return {
      read(ctx) {
        const value = ctx.headers[name];
        const text = Array.isArray(value) ? value.join(', ') : value;
        return text === undefined || text === '' ? undefined : text;
      },
      constant: null,
    };
  }
  if (key.startsWith('claim:')) {
    const name = key.slice('claim:'.length);
    return {
      read(ctx) {
        const value = ctx.identity?.claims?.[name];
        if (typeof value === 'string') return value === '' ? undefined : value;
        if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean')
          return String(value);
        return undefined; // objects and arrays do not name one caller
      },
      constant: null,
    };
  }
  if (key.startsWith('path:')) {
    const param = key.slice('path:'.length);
    if (!rule.template.split('/').includes(`{${param}}`))
      throw new TypeError(`key ${key}: the path ${rule.template} (${rule.id}) has no parameter {${param}}`);
    return { read: (ctx) => ctx.params[param], constant: null };
  }
  throw new TypeError(`unknown key ${key}; one of ${keyKinds.join(', ')}`);
}

// Values kept as they are in counter keys: short, and nothing that could end a Redis hash tag.
const plainValue = /^[\w.:@+/=-]{1,64}$/;

/**
 * A key value as it goes into a counter key: as is when short and plain, otherwise its SHA-256
 * (client-chosen values can be long, or carry braces that would move the key to another cluster slot).
 * `#` starts only hashed values and `!` only fallbacks (see `fallbackValue`), so they never collide.
 */
export function counterValue(raw: string): string {
  return plainValue.test(raw) ? raw : `#${createHash('sha256').update(raw).digest('base64url').slice(0, 22)}`;
}

/** What a request without the key's value is counted by: its client address, apart from real values. */
export function fallbackValue(ctx: RequestContext): string {
  return `!${counterValue(ctx.client.address)}`;
}

/** A short stable id (72 bits) for a scope or a limit inside counter keys. */
export function shortId(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 12);
}
