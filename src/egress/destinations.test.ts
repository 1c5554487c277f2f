import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileDestinations } from './destinations.ts';
import { isAbsoluteForm, parseAbsoluteTarget, parseConnectTarget } from './targets.ts';

test('exact entries allow their port, or 80 and 443 when none is written', () => {
  const list = compileDestinations([
    'api.stripe.com:443',
    'example.org',
    'LOCALHOST:8443',
    '[2001:db8::1]:443',
  ]);
  assert.equal(list.match('api.stripe.com', 443), 'api.stripe.com:443');
  assert.equal(list.match('api.stripe.com', 80), null);
  assert.equal(list.match('example.org', 80), 'example.org:80');
  assert.equal(list.match('example.org', 443), 'example.org:443');
  assert.equal(list.match('example.org', 8080), null);
  assert.equal(list.match('localhost', 8443), 'localhost:8443');
  assert.equal(list.match('[2001:db8::1]', 443), '[2001:db8::1]:443');
  assert.equal(list.match('sub.api.stripe.com', 443), null);
});

test('wildcards match names below the domain at any depth, not the domain, not addresses', () => {
  const list = compileDestinations([
    '*.githubusercontent.com',
    '*.raw.githubusercontent.com:8443',
    '*.0.0.1',
  ]);
  assert.equal(list.match('raw.githubusercontent.com', 443), '*.githubusercontent.com:443');
  assert.equal(list.match('a.b.githubusercontent.com', 80), '*.githubusercontent.com:80');
  assert.equal(list.match('githubusercontent.com', 443), null);
  assert.equal(list.match('evilgithubusercontent.com', 443), null);
  assert.equal(list.match('x.raw.githubusercontent.com', 8443), '*.raw.githubusercontent.com:8443');
  assert.equal(list.match('10.0.0.1', 80), null);
});

test('invalid entries are named', () => {
  assert.throws(
    () => compileDestinations(['ok.example', 'bad host', 'x:99999', '*.[::1]:443']),
    /bad host, x:99999, \*\.\[::1\]:443/,
  );
});

test('absolute-form targets: http only, port defaults to 80, path and query kept as sent', () => {
  assert.equal(isAbsoluteForm('http://a/b'), true);
  assert.equal(isAbsoluteForm('/http://a'), false);
  assert.equal(isAbsoluteForm('example.com:443'), false);
  const parsed = parseAbsoluteTarget('http://API.Example.com./v1/a%2Fb?x=1&y');
  assert.ok(parsed.ok);
  assert.deepEqual(parsed.target, {
    host: 'api.example.com',
    port: 80,
    authority: 'api.example.com',
    pathAndQuery: '/v1/a%2Fb?x=1&y',
    path: '/v1/a%2Fb',
    query: 'x=1&y',
  });
  const withPort = parseAbsoluteTarget('http://127.0.0.1:8080?q');
  assert.ok(withPort.ok);
  assert.equal(withPort.target.authority, '127.0.0.1:8080');
  assert.equal(withPort.target.pathAndQuery, '/?q');
  assert.match(String((parseAbsoluteTarget('https://a/') as { detail: string }).detail), /CONNECT/);
  assert.equal(parseAbsoluteTarget('ftp://a/').ok, false);
  assert.equal(parseAbsoluteTarget('http://user@a/').ok, false);
  assert.equal(parseAbsoluteTarget('http://a/#frag').ok, false);
});

test('CONNECT targets need host:port', () => {
  const parsed = parseConnectTarget('Api.Example.com:443');
  assert.ok(parsed.ok);
  assert.equal(parsed.target.host, 'api.example.com');
  assert.equal(parsed.target.port, 443);
  assert.equal(parseConnectTarget('api.example.com').ok, false);
  assert.equal(parseConnectTarget('[::1]:443').ok, true);
  assert.equal(parseConnectTarget('a:0').ok, false);
});
