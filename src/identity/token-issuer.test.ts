import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { SigningKeyRing } from './signing-keys.ts';
import { InternalTokenIssuer } from './token-issuer.ts';

const keys = new SigningKeyRing({
  algorithm: 'EdDSA',
  source: { kind: 'memory' },
  rotationIntervalMs: 3_600_000,
  overlapMs: 600_000,
  now: Date.now,
  start: false,
  log: () => {},
});
const issuer = new InternalTokenIssuer({
  issuer: 'https://gw.test',
  publishOn: null,
  keys,
  cacheSize: 2,
  now: Date.now,
});
after(() => issuer.close());

const request = { audience: 'orders', lifetimeSeconds: 60, subject: 'alice', claims: { tenant: 'acme' } };

test('rotation empties the cache: the next token is signed by the new key, the old one still verifies', async () => {
  const before = await issuer.mint(request);
  assert.equal(issuer.mint(request), before, 'cached: same token, synchronously');
  const rotated = await keys.rotate();
  const after = issuer.mint(request);
  assert.ok(after instanceof Promise, 'the cache was emptied');
  const token = await after;
  assert.equal(decodeProtectedHeader(token).kid, rotated.kid);
  const jwks = createLocalJWKSet(JSON.parse(issuer.jwks()));
  for (const t of [before, token]) {
    const { payload } = await jwtVerify(t, jwks, { issuer: 'https://gw.test', audience: 'orders' });
    assert.equal(payload.sub, 'alice');
  }
});

test('the cache is bounded', async () => {
  const tokens = [];
  for (const subject of ['a', 'b', 'c']) tokens.push(await issuer.mint({ ...request, subject }));
  assert.equal(issuer.mint({ ...request, subject: 'c' }), tokens[2]);
  assert.ok(issuer.mint({ ...request, subject: 'a' }) instanceof Promise, 'least recently used was dropped');
});
