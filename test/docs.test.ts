import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Type from 'typebox';
import {
  fieldTable,
  generateDocs,
  introExample,
  jsonSchemaPath,
  referencePath,
  repoRoot,
} from '../scripts/gen-docs.ts';
import { parseResources } from '../src/config/load.ts';
import { kinds } from '../src/config/schemas/index.ts';

const generated = generateDocs();

function reference(): string {
  const text = generated[referencePath];
  assert.ok(text !== undefined);
  return text;
}

describe('generated docs', () => {
  it('are up to date with the schemas (run `npm run docs` when this fails)', () => {
    const stale: string[] = [];
    for (const [path, content] of Object.entries(generated)) {
      let onDisk: string | undefined;
      try {
        onDisk = readFileSync(join(repoRoot, path), 'utf8');
      } catch {
        onDisk = undefined;
      }
      if (onDisk === undefined) {
        stale.push(`${path} is missing`);
      } else if (onDisk !== content) {
        const want = content.split('\n');
        const have = onDisk.split('\n');
        const line = want.findIndex((l, i) => l !== have[i]);
        stale.push(`${path} differs from line ${(line === -1 ? want.length : line) + 1}`);
      }
    }
    assert.deepEqual(stale, [], `generated docs are stale, run \`npm run docs\`:\n${stale.join('\n')}`);
  });

  it('generates the editor schema with one entry per kind', () => {
    const text = generated[jsonSchemaPath];
    assert.ok(text !== undefined);
    const schema = JSON.parse(text) as { oneOf: Array<{ title: string }> };
    assert.deepEqual(
      schema.oneOf.map((s) => s.title),
      kinds,
    );
  });

  it('is what the quickstart points editors at', () => {
    const quickstart = readFileSync(join(repoRoot, 'examples/quickstart/gateway.yaml'), 'utf8');
    assert.match(quickstart, /\$schema=\.\.\/\.\.\/docs\/gatehouse\.schema\.json/);
  });

  it('has a section per kind and a row for nested fields', () => {
    const md = reference();
    assert.match(md, /do not edit; run `npm run docs`/);
    for (const kind of kinds) assert.match(md, new RegExp(`^## ${kind}$`, 'm'));
    assert.match(
      md,
      /^\| `spec\.listeners\[\]\.tls\.clientAuth\.mode` \| `"none"` \\\| `"optional"` \\\| `"require"` \| no \| `none` \|/m,
    );
    assert.match(md, /^\| `spec\.rules\[\]\.authenticate\[\]\.noAuth` \| object \| no \|/m);
    assert.match(md, /^\| `spec\.limits\.requestTimeout` \| \[duration\]\(#durations\) \| no \| `30s` \|/m);
  });

  it('shows an intro example that loads without errors', () => {
    const { resources, errors } = parseResources(introExample, 'intro.yaml');
    assert.deepEqual(errors, []);
    assert.deepEqual(
      resources.map((r) => r.kind),
      ['Gateway', 'Upstream', 'APIRule'],
    );
  });

  it('keeps every table row on one line with pipes escaped', () => {
    for (const line of reference().split('\n')) {
      if (!line.startsWith('|')) continue;
      assert.equal(line.replaceAll('\\|', '').split('|').length, 8, line);
    }
  });
});

describe('field table rendering', () => {
  it('lists the fields of each variant of a union of objects', () => {
    const schema = Type.Object({
      backend: Type.Union([
        Type.Object({ url: Type.String({ description: 'Where.' }) }, { title: 'remote' }),
        Type.Object({ file: Type.String() }, { title: 'local' }),
      ]),
      tags: Type.Record(Type.String(), Type.Object({ weight: Type.Integer({ minimum: 0 }) })),
    });
    const table = fieldTable(schema);
    assert.match(table, /^\| `backend` \| object \(2 variants\) \| yes \|/m);
    assert.match(table, /^\| `backend\.url` \| string \| yes \| {2}\| {2}\| _\(remote\)_ Where\. \|$/m);
    assert.match(table, /^\| `backend\.file` \| string \| yes \| {2}\| {2}\| _\(local\)_ \|$/m);
    assert.match(table, /^\| `tags` \| map of string to object \| yes \|/m);
    assert.match(table, /^\| `tags\.<key>\.weight` \| integer \| yes \| {2}\| min 0 \|/m);
  });
});
