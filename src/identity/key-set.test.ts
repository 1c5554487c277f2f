import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { exportJWK } from 'jose';
import { newTestKey, startKeyServer, type TestKeyServer } from '../../test/helpers/jwks.ts';
import { KeySet, type KeySetConfig } from './key-set.ts';

let server: TestKeyServer;
const open: KeySet[] = [];
const logs: Array<{ level: string; message: string; fields: Record<string, unknown> }> = [];

/** An injected clock: tests move it instead of waiting. */
const clock = { now: 1_700_000_000_000 };

function keySet(overrides: Partial<KeySetConfig> = {}, onChange?: () => void): KeySet {
  const ks = new KeySet(
    {
      id: 'test/idp',
      issuer: server.issuer,
      jwksUri: server.jwksUri,
      algorithms: ['ES256', 'RS256'],
      refreshIntervalMs: 300_000,
      gracePeriodMs: 60_000,
      timeoutMs: 5_000,
      minRefetchIntervalMs: 10_000,
      maxBytes: 262_144,
      maxKeys: 50,
      ...overrides,
    },
    {
      now: () => clock.now,
      log: (level, fields, message) => logs.push({ level, fields, message }),
      onChange,
    },
  );
  open.push(ks);
  return ks;
}

const hits = (path: string) => server.hits.get(path) ?? 0;

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300 && !condition(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(condition(), `timed out waiting for ${what}`);
}

before(async () => {
  server = await startKeyServer({ algs: ['ES256', 'RS256'] });
});

beforeEach(() => {
  server.mode = 'ok';
  server.body = null;
  server.published = null;
  server.hits.clear();
  logs.length = 0;
});

afterEach(() => {
  // Closed after each test: a failing key set retries in the background and would skew hit counts.
  for (const ks of open.splice(0)) ks.close();
});

after(() => server.close());

describe('KeySet', () => {
  it('does no I/O before start, then loads the keys in the background', async () => {
    const ks = keySet();
    assert.equal(ks.state(), 'cold');
    assert.equal(ks.requestRefresh(), null, 'no fetch before start');
    assert.equal(await ks.refresh(), false);
    assert.equal(hits('/jwks'), 0);
    ks.start();
    await until(() => ks.state() === 'usable', 'keys');
    assert.equal(hits('/jwks'), 1);
    assert.equal(hits('/.well-known/openid-configuration'), 0, 'explicit jwksUri: no discovery');
    const [es, rs] = server.keys;
    assert.equal(ks.keysFor(es!.kid, 'ES256').length, 1);
    assert.equal(ks.keysFor(es!.kid, 'RS256').length, 0, 'a key is only used with its own algorithm');
    assert.equal(ks.keysFor(rs!.kid, 'RS256').length, 1);
    assert.equal(ks.keysFor(undefined, 'ES256').length, 1);
    assert.ok(ks.knowsKid(rs!.kid));
    assert.ok(!ks.knowsKid('nope'));
    assert.ok(logs.some((l) => l.message === 'key set loaded'));
  });

  it('discovers the key set from the issuer, checking the document is the issuer’s own', async () => {
    const ks = keySet({ jwksUri: null });
    ks.start();
    await until(() => ks.state() === 'usable', 'keys');
    assert.equal(hits('/.well-known/openid-configuration'), 1);
    assert.equal(hits('/jwks'), 1);

    const foreign = keySet({ jwksUri: null, issuer: `${server.issuer}/other` });
    foreign.start();
    await until(() => logs.some((l) => l.fields.reason === 'discovery: answered HTTP 404'), 'failure');
    const spoofed = keySet({ jwksUri: null, issuer: `${server.issuer}/` });
    spoofed.start();
    await until(
      () => logs.some((l) => l.fields.reason === 'discovery: document names another issuer'),
      'failure',
    );
    assert.equal(spoofed.state(), 'cold');
  });

  it('skips keys that are not public signature keys for an allowed algorithm', async () => {
    const es384 = await newTestKey('ES384');
    const enc = await newTestKey('ES256');
    const noUse = await newTestKey('ES256');
    delete noUse.publicJwk.use;
    const priv = await newTestKey('ES256');
    const privJwk = { ...(await exportJWK(priv.privateKey)), kid: priv.kid };
    server.published = [
      server.keys[0]!.publicJwk,
      es384.publicJwk,
      { ...enc.publicJwk, use: 'enc' },
      { ...enc.publicJwk, kid: 'ops', key_ops: ['encrypt'] },
      noUse.publicJwk,
      { kty: 'oct', kid: 'hmac', k: randomBytes(32).toString('base64url') },
      privJwk,
      { ...server.keys[1]!.publicJwk, alg: 'PS256' },
      { kty: 'EC', kid: 'bad-point', crv: 'P-256', x: 'AAAA', y: 'AAAA' },
      'not a key',
    ];
    const ks = keySet();
    ks.start();
    await until(() => ks.state() === 'usable', 'keys');
    assert.equal(ks.keysFor(server.keys[0]!.kid, 'ES256').length, 1);
    assert.equal(ks.keysFor(noUse.kid, 'ES256').length, 1, 'use is optional');
    for (const kid of [es384.kid, enc.kid, 'ops', 'hmac', priv.kid, server.keys[1]!.kid, 'bad-point'])
      assert.ok(!ks.knowsKid(kid), kid);
    const skipped = logs.find((l) => l.message === 'key set loaded')?.fields.skipped as string[];
    assert.equal(skipped.length, 8);
    assert.ok(skipped.includes(`${priv.kid}: private key published`));
    assert.ok(skipped.includes('hmac: symmetric key'));
  });

  it('refuses a response over the size cap or listing too many keys, keeping the keys held', async () => {
    const ks = keySet({ maxBytes: 2048, maxKeys: 3 });
    server.body = JSON.stringify({ keys: [], padding: 'x'.repeat(4096) });
    ks.start();
    await until(() => logs.some((l) => /larger than 2048 bytes/.test(String(l.fields.reason))), 'size cap');
    assert.equal(ks.state(), 'cold');

    server.body = null;
    assert.equal(await ks.refresh(), true);
    const version = ks.version;

    server.published = Array.from({ length: 4 }, () => server.keys[0]!.publicJwk);
    assert.equal(await ks.refresh(), false);
    assert.ok(logs.some((l) => l.fields.reason === 'lists 4 keys, more than 3'));
    server.published = [];
    assert.equal(await ks.refresh(), false, 'an empty set does not replace the keys held');
    server.published = null;
    server.body = 'not json';
    assert.equal(await ks.refresh(), false);
    assert.equal(ks.state(), 'usable');
    assert.equal(ks.version, version);
    assert.equal(ks.keysFor(server.keys[0]!.kid, 'ES256').length, 1);
  });

  it('gives up on a fetch after the timeout', async () => {
    server.mode = 'hang';
    const ks = keySet({ timeoutMs: 300 });
    ks.start();
    assert.equal(await ks.refresh(), false);
    assert.ok(logs.some((l) => l.fields.reason === 'timed out'));
    assert.equal(ks.state(), 'cold');
  });

  it('keeps the last good keys through an outage for the grace period only', async () => {
    const ks = keySet({ gracePeriodMs: 60_000 });
    ks.start();
    await until(() => ks.state() === 'usable', 'keys');
    server.mode = 'down';
    clock.now += 59_000;
    assert.equal(await ks.refresh(), false);
    assert.equal(ks.state(), 'usable');
    assert.ok(logs.some((l) => l.level === 'warn' && l.message.includes('keeping the keys held')));
    clock.now += 2_000;
    assert.equal(ks.state(), 'expired');
    assert.equal(await ks.refresh(), false);
    assert.ok(logs.some((l) => l.level === 'error'));
    server.mode = 'ok';
    assert.equal(await ks.refresh(), true);
    assert.equal(ks.state(), 'usable');
  });

  it('shares one fetch between requests and rate-limits request-driven fetches', async () => {
    const ks = keySet({ minRefetchIntervalMs: 10_000 });
    ks.start();
    await until(() => ks.state() === 'usable', 'keys');
    const before = hits('/jwks');
    assert.equal(ks.requestRefresh(), null, 'the fetch just made counts');
    clock.now += 10_000;
    const waits = Array.from({ length: 20 }, () => ks.requestRefresh());
    assert.ok(
      waits.every((w) => w === waits[0] && w !== null),
      'one shared fetch',
    );
    await Promise.all(waits);
    assert.equal(hits('/jwks'), before + 1);
    assert.equal(ks.requestRefresh(), null);
    clock.now += 9_999;
    assert.equal(ks.requestRefresh(), null);
    clock.now += 1;
    assert.equal(await ks.requestRefresh(), true);
    assert.equal(hits('/jwks'), before + 2);
  });

  it('reports a change of keys (not the first load) and refreshes periodically', async () => {
    let changes = 0;
    const ks = keySet({ refreshIntervalMs: 200 }, () => changes++);
    ks.start();
    await until(() => hits('/jwks') >= 3, 'periodic refreshes');
    assert.equal(changes, 0, 'same keys: no change');
    const version = ks.version;
    const added = await server.addKey('ES256');
    try {
      await until(() => ks.knowsKid(added.kid), 'rotation');
      assert.equal(changes, 1);
      assert.equal(ks.version, version + 1);
    } finally {
      server.keys.pop();
    }
  });

  it('stops fetching when closed', async () => {
    const ks = keySet({ refreshIntervalMs: 200 });
    ks.start();
    await until(() => ks.state() === 'usable', 'keys');
    ks.close();
    const seen = hits('/jwks');
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(hits('/jwks'), seen);
    assert.equal(await ks.refresh(), false);
    assert.equal(ks.requestRefresh(), null);
  });
});
