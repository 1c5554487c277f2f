import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Compile } from 'typebox/compile';
import Value from 'typebox/value';
import { isNode, LineCounter, parseAllDocuments, type Document } from 'yaml';
import { type ConfigError, formatFieldPath } from './errors.ts';
import { type FieldProblem, readableSchemaErrors } from './schema-errors.ts';
import { apiVersion } from './schemas/metadata.ts';
import { isKind, type Kind, kindSchemas, kinds } from './schemas/index.ts';

/** Where a resource came from, so that later checks can point at the exact line of a field. */
export interface ResourceSource {
  file: string;
  /** Line and column of a field path inside this resource's document (falls back to the closest parent). */
  locate(path: ReadonlyArray<string | number>): { line: number; column: number };
}

export interface LoadedResource {
  apiVersion: string;
  kind: Kind;
  metadata: { name: string; namespace: string; labels?: Record<string, string> };
  spec: Record<string, unknown>;
  source: ResourceSource;
}

export interface LoadResult {
  resources: LoadedResource[];
  errors: ConfigError[];
  /** Every file read, for watching. */
  files: string[];
}

const validators = Object.fromEntries(kinds.map((k) => [k, Compile(kindSchemas[k])])) as {
  [K in Kind]: ReturnType<typeof Compile>;
};

const yamlFile = /\.ya?ml$/;

/** Expands files and directories (recursively, sorted, *.yaml / *.yml only) into a list of files. */
export function configFiles(paths: readonly string[]): { files: string[]; errors: ConfigError[] } {
  const files: string[] = [];
  const errors: ConfigError[] = [];
  const walk = (path: string, explicit: boolean) => {
    let stat: ReturnType<typeof statSync>;
    try {
      stat = statSync(path);
    } catch (err) {
      errors.push({
        file: path,
        line: 0,
        column: 0,
        path: '',
        message: `cannot read: ${(err as Error).message}`,
      });
      return;
    }
    if (stat.isDirectory()) {
      for (const entry of readdirSync(path).sort()) {
        if (entry.startsWith('.')) continue;
        walk(join(path, entry), false);
      }
    } else if (explicit || yamlFile.test(path)) {
      files.push(path);
    }
  };
  for (const p of paths) walk(p, true);
  if (files.length === 0 && errors.length === 0) {
    errors.push({
      file: paths.join(', '),
      line: 0,
      column: 0,
      path: '',
      message: 'no .yaml or .yml file found',
    });
  }
  return { files, errors };
}

/** Loads every resource from files and directories. All errors of all files are reported at once. */
export function loadConfig(paths: readonly string[]): LoadResult {
  const { files, errors } = configFiles(paths);
  const resources: LoadedResource[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      errors.push({ file, line: 0, column: 0, path: '', message: `cannot read: ${(err as Error).message}` });
      continue;
    }
    const parsed = parseResources(text, file);
    resources.push(...parsed.resources);
    errors.push(...parsed.errors);
  }
  return { resources, errors, files };
}

/** Parses and validates one multi-document YAML text. */
export function parseResources(
  text: string,
  file: string,
): { resources: LoadedResource[]; errors: ConfigError[] } {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const resources: LoadedResource[] = [];
  const errors: ConfigError[] = [];
  const at = (offset: number) => {
    const pos = lineCounter.linePos(offset);
    return { line: pos.line, column: pos.col };
  };
  if (!Array.isArray(docs)) {
    // An empty stream parses to an EmptyStream.
    return { resources, errors };
  }
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors)
        errors.push({ file, ...at(e.pos[0]), path: '', message: `YAML: ${e.message.split('\n')[0]}` });
      continue;
    }
    if (doc.contents === null) continue; // an empty document (e.g. a trailing ---)
    const source: ResourceSource = { file, locate: (path) => locateIn(doc, path, at) };
    const value = doc.toJS({ maxAliasCount: 50 }) as unknown;
    const fail = (path: Array<string | number>, message: string) =>
      errors.push({ file, ...source.locate(path), path: formatFieldPath(path), message });
    const checked = checkResource(value);
    if (!checked.ok) {
      for (const problem of checked.problems) fail(problem.path, problem.message);
      continue;
    }
    resources.push({ ...checked.resource, source });
  }
  return { resources, errors };
}

/**
 * The schema checks of one resource already parsed into a plain object (from YAML, or a JSON body
 * sent to the control plane): apiVersion, kind, then the kind's schema with its defaults applied.
 */
export function checkResource(
  value: unknown,
): { ok: true; resource: Omit<LoadedResource, 'source'> } | { ok: false; problems: FieldProblem[] } {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return {
      ok: false,
      problems: [
        { path: [], message: 'a resource must be a mapping with apiVersion, kind, metadata and spec' },
      ],
    };
  const record = value as Record<string, unknown>;
  if (record.apiVersion !== apiVersion)
    return { ok: false, problems: [{ path: ['apiVersion'], message: `must be ${apiVersion}` }] };
  if (!isKind(record.kind))
    return {
      ok: false,
      problems: [
        {
          path: ['kind'],
          message: `unknown kind ${JSON.stringify(record.kind)}; known kinds: ${kinds.join(', ')}`,
        },
      ],
    };
  const kind = record.kind;
  const withDefaults = Value.Default(kindSchemas[kind], structuredClone(record)) as Record<string, unknown>;
  const validator = validators[kind];
  if (!validator.Check(withDefaults))
    return { ok: false, problems: readableSchemaErrors(validator.Errors(withDefaults)) };
  return { ok: true, resource: withDefaults as unknown as Omit<LoadedResource, 'source'> };
}

function locateIn(
  doc: Document,
  path: ReadonlyArray<string | number>,
  at: (offset: number) => { line: number; column: number },
): { line: number; column: number } {
  // Walk down as far as the document goes; a missing field points at its parent.
  for (let depth = path.length; depth >= 0; depth--) {
    const node = depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth), true);
    if (isNode(node) && node.range) {
      // For a mapping value, point at its key: that is where a reader looks.
      const parent = depth > 0 ? doc.getIn(path.slice(0, depth - 1), true) : null;
      const keyOffset = keyRange(parent, path[depth - 1]);
      return at(keyOffset ?? node.range[0]);
    }
  }
  return { line: 1, column: 1 };
}

function keyRange(parent: unknown, key: string | number | undefined): number | undefined {
  if (key === undefined || !parent || typeof parent !== 'object' || !('items' in parent)) return undefined;
  const items = (parent as { items: unknown[] }).items;
  for (const item of items) {
    if (item && typeof item === 'object' && 'key' in item) {
      const k = (item as { key: unknown }).key;
      if (isNode(k) && k.range && (k as unknown as { value: unknown }).value === key) return k.range[0];
    }
  }
  return undefined;
}
