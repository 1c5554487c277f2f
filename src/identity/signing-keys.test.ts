import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CompactSign, compactVerify, createLocalJWKSet } from 'jose';
import { type KeyRingOptions, SigningKeyError, SigningKeyRing } from './signing-keys.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'gatehouse-keys-'));
  dirs.push(d);
  return d;
}

const hour = 3_600_000;
function ring(options: Partial<KeyRingOptions>): SigningKeyRing {
  return new SigningKeyRing({
    algorithm: 'ES256',
    source: { kind: 'memory' },
    rotationIntervalMs: 24 * hour,
    overlapMs: hour,
    now: Date.now,
    start: false, // no timers in unit tests: rotation is called directly
    log: () => {},
    ...options,
  });
}

describe('signing keys', () => {
  test('the key set has public members only', () => {
    for (const [algorithm, members] of [
      ['ES256', ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']],
      ['RS256', ['alg', 'e', 'kid', 'kty', 'n', 'use']],
      ['EdDSA', ['alg', 'crv', 'kid', 'kty', 'use', 'x']],
    ] as const) {
      const keys = ring({ algorithm });
      const { keys: published } = JSON.parse(keys.jwks()) as { keys: Array<Record<string, string>> };
      assert.equal(published.length, 1);
      assert.deepEqual(Object.keys(published[0]!).sort(), members);
      assert.equal(published[0]!.alg, algorithm);
      assert.equal(published[0]!.kid, keys.current().kid);
    }
  });

  test('a directory gets a 0600 key file, and the same key back on the next start', () => {
    const dir = join(tempDir(), 'keys');
    const first = ring({ source: { kind: 'dir', dir }, start: true });
    first.close();
    const files = readdirSync(dir);
    assert.deepEqual(files, [`${first.current().kid}.jwk.json`]);
    assert.equal(statSync(join(dir, files[0]!)).mode & 0o777, 0o600);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    const second = ring({ source: { kind: 'dir', dir }, start: true });
    second.close();
    assert.equal(second.current().kid, first.current().kid);
  });

  test('offline rings never write', () => {
    const dir = join(tempDir(), 'keys');
    ring({ source: { kind: 'dir', dir }, start: false });
    assert.equal(existsSync(dir), false);
  });

  test('rotation: the new key signs, the old one stays published for the overlap, then goes', async () => {
    const dir = tempDir();
    let now = Date.now();
    const options = { source: { kind: 'dir', dir } as const, start: true, now: () => now };
    const keys = ring(options);
    after(() => keys.close());
    const old = keys.current();
    let rotations = 0;
    keys.onRotate(() => rotations++);
    now += 1000;
    const fresh = await keys.rotate();
    assert.equal(rotations, 1);
    assert.notEqual(fresh.kid, old.kid);
    assert.equal(keys.current().kid, fresh.kid);
    assert.deepEqual(
      keys.published().map((k) => k.kid),
      [fresh.kid, old.kid],
    );
    assert.deepEqual(readdirSync(dir).sort(), [`${fresh.kid}.jwk.json`, `${old.kid}.jwk.json`].sort());

    // A token signed by the old key still verifies against the published set during the overlap.
    const jws = await new CompactSign(new TextEncoder().encode('x'))
      .setProtectedHeader({ alg: 'ES256', kid: old.kid })
      .sign(old.privateKey);
    await compactVerify(jws, createLocalJWKSet(JSON.parse(keys.jwks())));

    now += hour + 1;
    assert.deepEqual(
      keys.published().map((k) => k.kid),
      [fresh.kid],
    );
    assert.equal((JSON.parse(keys.jwks()) as { keys: unknown[] }).keys.length, 1);

    // The next start forgets (and deletes) what is past its overlap, and keeps the signing key.
    const restarted = ring(options);
    restarted.close();
    assert.equal(restarted.current().kid, fresh.kid);
    assert.deepEqual(readdirSync(dir), [`${fresh.kid}.jwk.json`]);
  });

  test('a key older than the interval is replaced when loaded', () => {
    const dir = tempDir();
    let now = Date.now();
    const first = ring({ source: { kind: 'dir', dir }, start: true, now: () => now });
    first.close();
    now += 25 * hour;
    const later = ring({ source: { kind: 'dir', dir }, start: true, now: () => now, overlapMs: 2 * hour });
    later.close();
    assert.notEqual(later.current().kid, first.current().kid);
    assert.deepEqual(
      later
        .published()
        .map((k) => k.kid)
        .sort(),
      [first.current().kid, later.current().kid].sort(),
    );
  });

  test('keys from files: PEM or JWK, first signs, kid given or computed', () => {
    const dir = tempDir();
    const a = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const b = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    writeFileSync(join(dir, 'a.pem'), a.export({ format: 'pem', type: 'sec1' }) as string);
    writeFileSync(join(dir, 'b.json'), JSON.stringify(b.export({ format: 'jwk' })));
    const keys = ring({
      source: {
        kind: 'files',
        files: [{ path: join(dir, 'a.pem'), kid: 'primary' }, { path: join(dir, 'b.json') }],
      },
    });
    assert.equal(keys.current().kid, 'primary');
    assert.equal(keys.published().length, 2);
    assert.match(keys.published()[1]!.kid, /^[A-Za-z0-9_-]{43}$/, 'RFC 7638 thumbprint');
    assert.equal(keys.maxLifetimeMs(), Number.POSITIVE_INFINITY);
  });

  test('unusable key files are errors that point at the field and quote no key material', () => {
    const dir = tempDir();
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    writeFileSync(join(dir, 'rsa.pem'), rsa.export({ format: 'pem', type: 'pkcs8' }) as string);
    writeFileSync(join(dir, 'junk.pem'), 'not a key SECRETSECRET');
    const files = (path: string) => ({ kind: 'files', files: [{ path }] }) as const;
    assert.throws(
      () => ring({ source: files(join(dir, 'rsa.pem')) }),
      (err: unknown) =>
        err instanceof SigningKeyError &&
        /ES256 needs an EC P-256 key/.test(err.message) &&
        err.field.join('.') === 'keys.files.0.private',
    );
    assert.throws(
      () => ring({ source: files(join(dir, 'junk.pem')) }),
      (err: Error) => err instanceof SigningKeyError && !err.message.includes('SECRET'),
    );
    assert.throws(() => ring({ source: files(join(dir, 'missing.pem')) }), /cannot read/);

    const keysDir = tempDir();
    writeFileSync(join(keysDir, 'broken.jwk.json'), '{"d":"SECRETSECRET",');
    assert.throws(
      () => ring({ source: { kind: 'dir', dir: keysDir } }),
      (err: Error) => err instanceof SigningKeyError && !err.message.includes('SECRET'),
    );
    assert.ok(readFileSync(join(keysDir, 'broken.jwk.json'), 'utf8'), 'a bad file is left alone');
  });
});
