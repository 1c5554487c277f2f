import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import { pino } from 'pino';
import { openSqliteStore } from '../store/sqlite.ts';
import { keyRingRecordId, JwtKeyRing, securityCollection } from './keys.ts';
import type { StoredKeyRing } from './key-ring-state.ts';

const minute = 60_000;
const hour = 60 * minute;

describe('JwtKeyRing: rotation with overlap, shared through the store', async () => {
  const store = await openSqliteStore({ path: ':memory:' });
  after(() => store.close());
  let clock = Date.UTC(2030, 0, 1);
  const now = () => clock;
  const options = {
    store,
    now,
    logger: pino({ level: 'silent' }),
    rotationMs: hour,
    tokenLifetimeMs: 5 * minute,
    publishAheadMs: 10 * minute,
    refreshMs: 3_600_000,
  };
  const verifyOptions = {
    issuer: 'https://cp',
    audience: 'a',
    algorithms: ['ES256'],
    currentDate: new Date(clock),
  };
  const verify = (ring: JwtKeyRing, token: string) =>
    ring.verify(token, { ...verifyOptions, currentDate: new Date(clock) }).then(
      () => 'ok',
      (err: Error) => err.constructor.name,
    );
  const kidOf = (token: string) => decodeProtectedHeader(token).kid;

  test('a first key signs at once; two rings opened together on one store share it', async () => {
    const [a, b] = await Promise.all([JwtKeyRing.open(options), JwtKeyRing.open(options)]);
    after(() => {
      a.close();
      b.close();
    });
    assert.equal(a.jwks().keys.length, 1);
    assert.deepEqual(a.jwks(), b.jwks());
    assert.equal(a.jwks().keys[0]!.d, undefined, 'no private member is published');
    const token = await a.sign({ iss: 'https://cp', aud: 'a', sub: 'gw' }, 5 * minute);
    assert.equal(await verify(b, token), 'ok');

    // Rotation due (publishAhead before the interval ends): the new key is published, not signing.
    clock += hour - 10 * minute;
    await Promise.all([a.refresh(), b.refresh()]);
    const stored = await store.recordGet<StoredKeyRing>(securityCollection, keyRingRecordId);
    assert.equal(stored!.keys.length, 2, 'two rings rotating at once add one key');
    assert.equal(a.jwks().keys.length, 2);
    clock += 9 * minute;
    const stillOld = await a.sign({ iss: 'https://cp', aud: 'a', sub: 'gw' }, 5 * minute);
    assert.equal(kidOf(stillOld), kidOf(token));

    // The new key signs from its time on; tokens of the old one still verify.
    clock += minute;
    const fresh = await b.sign({ iss: 'https://cp', aud: 'a', sub: 'gw' }, 5 * minute);
    assert.notEqual(kidOf(fresh), kidOf(token));
    assert.equal(await verify(a, stillOld), 'ok');
    assert.equal(await verify(a, fresh), 'ok');

    // Once every token of the old key has expired (lifetime + skew), it leaves the key set.
    clock += 5 * minute + 61_000;
    await a.refresh();
    assert.deepEqual(
      a.jwks().keys.map((k) => k.kid),
      [kidOf(fresh)],
    );
  });

  test('a token longer-lived than the ring keeps retired keys is refused', async () => {
    const ring = await JwtKeyRing.open(options);
    after(() => ring.close());
    await assert.rejects(ring.sign({ sub: 'x' }, hour), /lifetime/);
  });
});
