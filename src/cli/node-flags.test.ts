// The V8 flags of the gateway process are written in three places that must agree: the list the
// tests and the bench start processes with, the bin script's shebang and `npm start`.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { gatewayNodeFlags } from './node-flags.ts';

const root = new URL('../../', import.meta.url);

test('the bin script and npm start pass every gateway node flag', () => {
  const shebang = readFileSync(new URL('bin/gatehouse.ts', root), 'utf8').split('\n')[0]!;
  const start = (
    JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { scripts: { start: string } }
  ).scripts.start;
  for (const flag of gatewayNodeFlags) {
    assert.ok(shebang.split(/\s+/).includes(flag), `bin/gatehouse.ts shebang lacks ${flag}`);
    assert.ok(start.split(/\s+/).includes(flag), `npm start lacks ${flag}`);
  }
});
