/**
 * Generates the configuration reference from the resource schemas:
 * - docs/gatehouse.schema.json: the JSON Schema for editors (`resourcesJsonSchema()`);
 * - docs/reference.md: one section per kind with a table of every field.
 *
 * `node scripts/gen-docs.ts` writes the files; `--check` only compares them with what would be
 * written and exits 1 when they are stale (for CI).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { resourcesJsonSchema } from '../src/cli/schema.ts';
import { kindSchemas } from '../src/config/schemas/index.ts';
import { apiVersion } from '../src/config/schemas/metadata.ts';

/** The repository root; generated paths are relative to it. */
export const repoRoot = fileURLToPath(new URL('..', import.meta.url));

export const referencePath = 'docs/reference.md';
export const jsonSchemaPath = 'docs/gatehouse.schema.json';

/** A schema as the editor sees it: plain JSON. */
type Schema = { readonly [key: string]: unknown };

/** The pattern `Duration()` puts on every duration field (src/config/duration.ts). */
const durationPattern = '^[0-9]+(ms|s|m|h)$';

/** The multi-document example shown in the intro; test/docs.test.ts checks that it loads. */
export const introExample = `apiVersion: ${apiVersion}
kind: Gateway
metadata:
  name: edge
spec:
  listeners:
    - { name: public, port: 8080 }
---
apiVersion: ${apiVersion}
kind: Upstream
metadata:
  name: orders
spec:
  targets: [{ url: http://127.0.0.1:7001 }]
  timeouts: { response: 5s }
---
apiVersion: ${apiVersion}
kind: APIRule
metadata:
  name: orders
  labels: { team: orders }
spec:
  gateway: edge
  upstream: orders
  rules:
    - path: /health
      methods: [GET]
      authenticate: [{ noAuth: {} }]
`;

/** Every generated file, by path relative to the repository root. */
export function generateDocs(): Record<string, string> {
  return {
    [jsonSchemaPath]: `${JSON.stringify(resourcesJsonSchema(), null, 2)}\n`,
    [referencePath]: referenceMarkdown(),
  };
}

/** Fields that have no description, as `Kind path` (the envelope's `kind`, `metadata` and `spec` aside). */
export function undocumentedFields(): string[] {
  const missing: string[] = [];
  for (const [kind, schema] of Object.entries(plainKindSchemas())) {
    for (const row of fieldRows(schema)) {
      if (row.description === '' && !['kind', 'metadata', 'spec'].includes(row.path)) {
        missing.push(`${kind} ${row.path}`);
      }
    }
  }
  return missing;
}

/** The reference table of any object schema (exported for tests of the rendering). */
export function fieldTable(schema: object): string {
  return table(fieldRows(JSON.parse(JSON.stringify(schema)) as Schema));
}

// ---------------------------------------------------------------------------------------------
// Rows: one per field path.

interface Row {
  path: string;
  type: string;
  required: string;
  default: string;
  constraints: string;
  description: string;
}

function plainKindSchemas(): Record<string, Schema> {
  // JSON round trip: exactly what the editor schema holds, without TypeBox's own markers.
  return JSON.parse(JSON.stringify(kindSchemas)) as Record<string, Schema>;
}

function isSchema(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function schemaList(value: unknown): Schema[] {
  return Array.isArray(value) ? value.filter(isSchema) : [];
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** The schema of a map's values, when the object is a map (`Type.Record`). */
function mapValues(schema: Schema): Schema | undefined {
  if (isSchema(schema.patternProperties)) {
    const values = Object.values(schema.patternProperties).filter(isSchema);
    if (values.length === 1) return values[0];
  }
  if (isSchema(schema.additionalProperties) && !isSchema(schema.properties))
    return schema.additionalProperties;
  return undefined;
}

function unionMembers(schema: Schema): Schema[] {
  return [...schemaList(schema.anyOf), ...schemaList(schema.oneOf)];
}

function isLiteral(schema: Schema): boolean {
  return 'const' in schema;
}

function literal(value: unknown): string {
  return code(JSON.stringify(value));
}

function isObjectSchema(schema: Schema): boolean {
  return schema.type === 'object' && mapValues(schema) === undefined;
}

/** The type as a reader would say it: `string`, `array of object`, `"a" | "b"`, `map of string to string`. */
function typeOf(schema: Schema): string {
  if (isLiteral(schema)) return literal(schema.const);
  if (Array.isArray(schema.enum)) return schema.enum.map(literal).join(' | ');
  const members = unionMembers(schema);
  if (members.length > 0) {
    const names = [...new Set(members.map(typeOf))];
    // Objects of different shapes: their fields are listed below, marked with the variant.
    if (names.length === 1 && members.length > 1 && members.every(hasChildren)) {
      return `${names[0]} (${members.length} variants)`;
    }
    return names.join(' | ');
  }
  if (typeof schema.$ref === 'string') return code(schema.$ref);
  if (Array.isArray(schema.type)) return schema.type.map((t) => typeOf({ ...schema, type: t })).join(' | ');
  switch (schema.type) {
    case 'string':
      return schema.pattern === durationPattern ? '[duration](#durations)' : 'string';
    case 'array': {
      const items = isSchema(schema.items) ? schema.items : {};
      const inner = typeOf(items);
      return `array of ${inner.includes(' | ') ? `(${inner})` : inner}`;
    }
    case 'object': {
      const values = mapValues(schema);
      if (values === undefined) return 'object';
      const inner = typeOf(values);
      return `map of string to ${inner.includes(' | ') ? `(${inner})` : inner}`;
    }
    case undefined:
      return 'any';
    default:
      return String(schema.type);
  }
}

/** Keywords rendered elsewhere (type, default, description) or by the walk itself. */
const structural = new Set([
  'type',
  'properties',
  'required',
  'additionalProperties',
  'patternProperties',
  'items',
  'anyOf',
  'oneOf',
  'const',
  'enum',
  'description',
  'default',
  'title',
  '$schema',
  '$id',
  '$ref',
]);

function formatNumber(value: number, path: string): string {
  const text = String(value);
  if (!/Bytes$/.test(path) || value < 1024) return text;
  for (const [unit, size] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (value >= size && value % size === 0) return `${text} (${value / size} ${unit})`;
  }
  return text;
}

/** The constraints of one schema (not of its children), e.g. `min 1`, `pattern ^/`. */
function constraintsOf(schema: Schema, path: string): string[] {
  const out: string[] = [];
  const num = (key: string, label: string) => {
    const v = schema[key];
    if (typeof v === 'number') out.push(`${label} ${formatNumber(v, path)}`);
  };
  if (typeof schema.pattern === 'string' && schema.pattern !== durationPattern) {
    out.push(`pattern ${code(schema.pattern)}`);
  }
  if (typeof schema.format === 'string') out.push(`format ${schema.format}`);
  num('minLength', 'minLength');
  num('maxLength', 'maxLength');
  num('minimum', 'min');
  num('maximum', 'max');
  num('exclusiveMinimum', 'greater than');
  num('exclusiveMaximum', 'less than');
  num('multipleOf', 'multiple of');
  num('minItems', 'minItems');
  num('maxItems', 'maxItems');
  if (schema.uniqueItems === true) out.push('unique items');
  if (schema.minProperties === 1 && schema.maxProperties === 1) {
    out.push('exactly one key');
  } else {
    num('minProperties', 'minProperties');
    num('maxProperties', 'maxProperties');
  }
  if (
    schema.type === 'object' &&
    schema.additionalProperties === false &&
    !isSchema(schema.patternProperties) &&
    (!isSchema(schema.properties) || Object.keys(schema.properties).length === 0)
  ) {
    out.push('empty: `{}`');
  }
  // Whatever this generator does not know is still shown, rather than silently dropped.
  const handled = new Set([
    ...structural,
    'pattern',
    'format',
    'minLength',
    'maxLength',
    'minimum',
    'maximum',
    'exclusiveMinimum',
    'exclusiveMaximum',
    'multipleOf',
    'minItems',
    'maxItems',
    'uniqueItems',
    'minProperties',
    'maxProperties',
  ]);
  for (const [key, value] of Object.entries(schema)) {
    if (!handled.has(key)) out.push(`${key} ${code(JSON.stringify(value))}`);
  }
  // Items and map values have no row of their own (only their fields do): their constraints go here.
  const items = schema.type === 'array' && isSchema(schema.items) ? schema.items : undefined;
  if (items) for (const c of constraintsOf(items, path)) out.push(`each item: ${c}`);
  const values = schema.type === 'object' ? mapValues(schema) : undefined;
  if (values) for (const c of constraintsOf(values, path)) out.push(`each value: ${c}`);
  return out;
}

function hasChildren(schema: Schema): boolean {
  if (isObjectSchema(schema)) return isSchema(schema.properties) && Object.keys(schema.properties).length > 0;
  if (schema.type === 'array') return isSchema(schema.items) && hasChildren(schema.items);
  if (schema.type === 'object') {
    const values = mapValues(schema);
    return values !== undefined && hasChildren(values);
  }
  return unionMembers(schema).some(hasChildren);
}

function formatDefault(value: unknown): string {
  if (value === undefined) return '';
  if (typeof value === 'string' && value !== '' && value.trim() === value) return code(value);
  return code(JSON.stringify(value));
}

/** What `Duration()` appends to every description; the type column links to the explanation instead. */
const durationHint = ' A number followed by ms, s, m or h.';

function descriptionOf(schema: Schema): string {
  let own = str(schema.description);
  if (schema.pattern === durationPattern && own.endsWith(durationHint))
    own = own.slice(0, -durationHint.length);
  const parts = [own];
  // An item's or a map value's own description, when it has no row of its own.
  const items = schema.type === 'array' && isSchema(schema.items) ? schema.items : undefined;
  const values = schema.type === 'object' ? mapValues(schema) : undefined;
  const inner = items ?? values;
  if (inner && typeof inner.description === 'string') {
    parts.push(`${items ? 'Each item' : 'Each value'}: ${inner.description}`);
  }
  return prose(parts.filter((p) => p !== '').join(' '));
}

/**
 * Schema prose as Markdown: code spans are kept, and outside them the characters Markdown would
 * take for emphasis or HTML are escaped (path templates such as `{*}` and `{**}` are common).
 */
function prose(text: string): string {
  return text
    .split(/(`[^`]*`)/)
    .map((part, i) => (i % 2 === 1 ? part : part.replace(/[\\*_<]/g, (c) => `\\${c}`)))
    .join('');
}

/** Rows for the children of `schema` (its properties, its items' properties…), under `path`. */
function childRows(schema: Schema, path: string, note = ''): Row[] {
  const rows: Row[] = [];
  if (isObjectSchema(schema) && isSchema(schema.properties)) {
    const required = new Set(Array.isArray(schema.required) ? schema.required : []);
    for (const [key, child] of Object.entries(schema.properties)) {
      if (!isSchema(child)) continue;
      const childPath = path === '' ? key : `${path}.${key}`;
      // Defaults are filled in before validation, so a field with a default may be left out.
      const isRequired = required.has(key) && child.default === undefined;
      rows.push(fieldRow(child, childPath, isRequired, note));
      rows.push(...childRows(child, childPath, note));
    }
  } else if (schema.type === 'array' && isSchema(schema.items)) {
    rows.push(...childRows(schema.items, `${path}[]`, note));
  } else if (schema.type === 'object') {
    const values = mapValues(schema);
    if (values) rows.push(...childRows(values, `${path}.<key>`, note));
  } else {
    const members = unionMembers(schema).filter(hasChildren);
    members.forEach((member, i) => {
      const name = typeof member.title === 'string' ? member.title : `variant ${i + 1}`;
      rows.push(...childRows(member, path, `${note}_(${name})_ `));
    });
  }
  return rows;
}

function fieldRow(schema: Schema, path: string, required: boolean, note: string): Row {
  return {
    path,
    type: typeOf(schema),
    required: required ? 'yes' : 'no',
    default: formatDefault(schema.default),
    constraints: constraintsOf(schema, path).join(', '),
    description: `${note}${descriptionOf(schema)}`.trim(),
  };
}

function fieldRows(kindSchema: Schema): Row[] {
  return childRows(kindSchema, '');
}

// ---------------------------------------------------------------------------------------------
// Markdown.

function code(text: string): string {
  const fence = text.includes('`') ? '``' : '`';
  const pad = text.startsWith('`') || text.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${text}${pad}${fence}`;
}

/** A table cell: one line, with `|` escaped (GitHub also unescapes it inside code spans). */
function cell(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').replaceAll('|', '\\|');
}

function table(rows: readonly Row[]): string {
  const lines = [
    '| Field | Type | Required | Default | Constraints | Description |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    const cells = [code(r.path), r.type, r.required, r.default, r.constraints, r.description];
    lines.push(`| ${cells.map(cell).join(' | ')} |`);
  }
  return lines.join('\n');
}

/** GitHub's heading anchor for simple headings. */
function anchor(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, '')
    .replaceAll(' ', '-');
}

/** Objects that accept fields they do not declare (neither closed nor maps). */
function openObjects(schema: Schema, path: string, out: string[]): void {
  if (isObjectSchema(schema) && schema.additionalProperties !== false)
    out.push(path === '' ? '(root)' : path);
  if (isSchema(schema.properties)) {
    for (const [key, child] of Object.entries(schema.properties)) {
      if (isSchema(child)) openObjects(child, path === '' ? key : `${path}.${key}`, out);
    }
  }
  if (isSchema(schema.items)) openObjects(schema.items, `${path}[]`, out);
  const values = schema.type === 'object' ? mapValues(schema) : undefined;
  if (values) openObjects(values, `${path}.<key>`, out);
  for (const member of unionMembers(schema)) openObjects(member, path, out);
}

function referenceMarkdown(): string {
  const schemas = plainKindSchemas();
  const kinds = Object.keys(schemas);
  const rowsByKind = Object.fromEntries(kinds.map((k) => [k, fieldRows(schemas[k]!)]));

  // The envelope (apiVersion, metadata) is shared: shown once, from the first kind, unless a kind differs.
  const isEnvelope = (r: Row) => r.path !== 'kind' && r.path !== 'spec' && !r.path.startsWith('spec.');
  const common = (rowsByKind[kinds[0]!] ?? []).filter(isEnvelope);
  const commonKeys = new Set(common.map((r) => JSON.stringify(r)));
  const kindRow: Row = {
    path: 'kind',
    type: 'string',
    required: 'yes',
    default: '',
    constraints: `one of ${kinds.map(code).join(', ')}`,
    description: 'The kind of resource; decides what `spec` holds.',
  };

  const open: string[] = [];
  for (const k of kinds) {
    const found: string[] = [];
    openObjects(schemas[k]!, '', found);
    open.push(...found.map((p) => `${k} ${code(p)}`));
  }
  const unknownFields =
    open.length === 0
      ? 'Every object is closed: **an unknown field is an error**, reported with its file, line and column ' +
        '(a misspelt optional field would otherwise be silently ignored). Only maps such as ' +
        '`metadata.labels` accept keys of your choosing.'
      : `**An unknown field is an error**, except in these objects: ${open.join(', ')}.`;

  const out: string[] = [];
  out.push(
    '<!-- Generated by scripts/gen-docs.ts from src/config/schemas: do not edit; run `npm run docs`. -->',
    '',
    '# Configuration reference',
    '',
    'Gatehouse is configured with resources written in YAML. This page lists every field of every ' +
      'kind; it is generated from the same schemas that validate the configuration, so it is always ' +
      'complete. For editor completion and validation, point ' +
      '[yaml-language-server](https://github.com/redhat-developer/yaml-language-server) at ' +
      `[\`gatehouse.schema.json\`](gatehouse.schema.json) (also printed by \`gatehouse schema\`) with a ` +
      'first line such as:',
    '',
    '```yaml',
    '# yaml-language-server: $schema=../../docs/gatehouse.schema.json',
    '```',
    '',
    '- [Resources](#resources)',
    '  - [Common fields](#common-fields)',
    '  - [Durations](#durations)',
    '  - [Reading the tables](#reading-the-tables)',
    ...kinds.map((k) => `- [${k}](#${anchor(k)}): ${prose(str(schemas[k]!.description))}`),
    '',
    '## Resources',
    '',
    `Every resource has \`apiVersion: ${apiVersion}\`, a \`kind\`, a \`metadata\` block naming it and a ` +
      '`spec` whose fields depend on the kind. A file may hold several resources as a multi-document ' +
      'YAML stream, separated by `---` lines; `gatehouse validate` and `gatehouse gateway --config` ' +
      'take files and directories (read recursively, in name order, `*.yaml` and `*.yml` only).',
    '',
    '```yaml',
    introExample.trimEnd(),
    '```',
    '',
    unknownFields,
    '',
    'Fields with a default may be left out: defaults are filled in before the resource is validated. ' +
      '`gatehouse validate` reports every problem of every file at once.',
    '',
    '### Common fields',
    '',
    'Every kind has these fields.',
    '',
    table([
      ...common.filter((r) => r.path === 'apiVersion'),
      kindRow,
      ...common.filter((r) => r.path !== 'apiVersion'),
    ]),
    '',
    '### Durations',
    '',
    'A duration is a string: a whole number followed by a unit, `ms`, `s`, `m` or `h`, with no space — ' +
      'for example `500ms`, `30s`, `2m`, `1h`. Units cannot be combined (`1m30s` is an error; write `90s`).',
    '',
    '### Reading the tables',
    '',
    '- **Field** is the path of the field in the resource: `.` goes into an object, `[]` into every item ' +
      'of a list, and `<key>` into every value of a map. For example ' +
      '`spec.listeners[].tls.clientAuth.mode` is the `mode` of the `clientAuth` of the `tls` of each listener.',
    '- **Required** is about the field’s own object: a required field inside an optional object is only ' +
      'required when that object is written. A field with a default is never required.',
    '- **Type**: `"a" | "b"` means one of these exact strings; `array of X` is a YAML list; `object` is ' +
      'a mapping with the fields listed below it; `map of string to X` is a mapping with keys of your choosing.',
    '',
  );

  for (const k of kinds) {
    const schema = schemas[k]!;
    const rows = (rowsByKind[k] ?? []).filter((r) => {
      if (r.path === 'kind' || r.path === 'spec') return false;
      return !isEnvelope(r) || !commonKeys.has(JSON.stringify(r));
    });
    out.push(`## ${str(schema.title) || k}`, '');
    if (typeof schema.description === 'string') out.push(prose(schema.description), '');
    out.push(`\`kind: ${k}\``, '', table(rows), '');
  }
  return `${out.join('\n').trimEnd()}\n`;
}

// ---------------------------------------------------------------------------------------------
// Writing and checking.

/** Generated files whose content on disk differs (or that are missing). */
export function staleDocs(root = repoRoot): string[] {
  const stale: string[] = [];
  for (const [path, content] of Object.entries(generateDocs())) {
    let current: string | undefined;
    try {
      current = readFileSync(join(root, path), 'utf8');
    } catch {
      current = undefined;
    }
    if (current !== content) stale.push(current === undefined ? `${path} (missing)` : path);
  }
  return stale;
}

function writeDocs(root = repoRoot): string[] {
  const written: string[] = [];
  for (const [path, content] of Object.entries(generateDocs())) {
    const file = join(root, path);
    let current: string | undefined;
    try {
      current = readFileSync(file, 'utf8');
    } catch {
      current = undefined;
    }
    if (current === content) continue;
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
    written.push(path);
  }
  return written;
}

export function main(args: string[]): number {
  const { values } = parseArgs({ args, options: { check: { type: 'boolean', default: false } } });
  if (values.check) {
    const stale = staleDocs();
    if (stale.length > 0) {
      process.stderr.write(
        `gen-docs: generated docs are out of date with src/config/schemas:\n` +
          stale.map((p) => `  ${p}\n`).join('') +
          'Run `npm run docs` and commit the result.\n',
      );
      return 1;
    }
    process.stdout.write('gen-docs: docs are up to date.\n');
    return 0;
  }
  const written = writeDocs();
  process.stdout.write(
    written.length === 0 ? 'gen-docs: docs already up to date.\n' : `gen-docs: wrote ${written.join(', ')}\n`,
  );
  const missing = undocumentedFields();
  if (missing.length > 0) {
    process.stderr.write(
      `gen-docs: fields without a description:\n${missing.map((m) => `  ${m}\n`).join('')}`,
    );
  }
  return 0;
}

if (import.meta.main) {
  process.exitCode = main(process.argv.slice(2));
}
