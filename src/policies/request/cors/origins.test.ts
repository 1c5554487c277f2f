import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compileOrigins } from './origins.ts';

function compile(entries: string[]) {
  const problems: string[] = [];
  const matcher = compileOrigins(entries, problems);
  return { matcher, problems };
}

describe('cors origins', () => {
  test('exact origins match only as browsers send them', () => {
    const { matcher, problems } = compile(['https://app.example.com', 'http://localhost:3000']);
    assert.deepEqual(problems, []);
    assert.equal(matcher.any, false);
    assert.ok(matcher.allows('https://app.example.com'));
    assert.ok(matcher.allows('http://localhost:3000'));
    for (const other of [
      'http://app.example.com',
      'https://app.example.com:8443',
      'https://app.example.com.evil.test',
      'https://evil.app.example.com',
      'http://localhost:3001',
      'null',
      '',
    ])
      assert.equal(matcher.allows(other), false, other);
  });

  test('a pattern stands for one or more labels in front of the domain, same scheme and port', () => {
    const { matcher, problems } = compile(['https://*.example.com', 'http://*.dev.example.org:8080']);
    assert.deepEqual(problems, []);
    assert.ok(matcher.allows('https://a.example.com'));
    assert.ok(matcher.allows('https://a.b.example.com'));
    assert.ok(matcher.allows('http://x.dev.example.org:8080'));
    for (const other of [
      'https://example.com',
      'https://.example.com',
      'http://a.example.com',
      'https://a.example.com:8443',
      'https://evilexample.com',
      'https://a.example.com.evil.test',
      'https://evil.test/.example.com',
      'https://evil.test:1@a.example.com',
      'https://evil.test#.example.com',
      'http://x.dev.example.org',
      `https://${'a.'.repeat(2000)}example.com`,
    ])
      assert.equal(matcher.allows(other), false, other);
  });

  test('`*` allows every origin and must stand alone', () => {
    assert.equal(compile(['*']).matcher.any, true);
    assert.ok(compile(['*']).matcher.allows('https://anything.test'));
    assert.match(compile(['*', 'https://a.example.com']).problems.join(), /list it alone/);
  });

  test('entries that could never match, or would match anyone, are refused', () => {
    const refused = {
      null: /`null` origin/,
      'https://App.example.com': /as browsers send it/,
      'https://a.example.com/': /not an origin/,
      'https://a.example.com:443': /as browsers send it/,
      'https://a.example.com/path': /not an origin/,
      'app.example.com': /not an origin/,
      'https://*.com': /at least two labels/,
      'https://*.example.com:443': /no default port/,
      'https://a*.example.com': /whole first label/,
      'https://a.*.example.com': /whole first label/,
    };
    for (const [entry, why] of Object.entries(refused)) {
      const { problems } = compile([entry]);
      assert.equal(problems.length, 1, entry);
      assert.match(problems[0]!, why, entry);
    }
  });

  test('other schemes (browser extensions, app shells) are exact and lowercase', () => {
    const { matcher, problems } = compile(['chrome-extension://abcdefghijklmnop']);
    assert.deepEqual(problems, []);
    assert.ok(matcher.allows('chrome-extension://abcdefghijklmnop'));
    assert.equal(compile(['capacitor://Localhost']).problems.length, 1);
  });
});
