import assert from 'node:assert/strict';
import { createHmac, createPublicKey } from 'node:crypto';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { CompactSign } from 'jose';
import Value from 'typebox/value';
import { newTestKey, startKeyServer, type TestKeyServer } from '../../test/helpers/jwks.ts';
import { IdentityProviderSpec } from '../config/schemas/identity-provider.ts';
import { createJwtVerifier } from './jwt-verifier.ts';
import type { CredentialCheck, JwtVerifier } from './types.ts';

let server: TestKeyServer;
const open: JwtVerifier[] = [];
const clock = { now: Date.now() };
const nowSeconds = () => Math.floor(clock.now / 1000);

function verifier(spec: Record<string, unknown> = {}, options: { start?: boolean } = {}): JwtVerifier {
  const full = Value.Default(
    IdentityProviderSpec,
    structuredClone({ issuer: server.issuer, jwksUri: server.jwksUri, audiences: ['api'], ...spec }),
  ) as IdentityProviderSpec;
  assert.ok(Value.Check(IdentityProviderSpec, full), 'test spec is valid');
  const v = createJwtVerifier('test/idp', full, {
    now: () => clock.now,
    start: options.start ?? true,
    env: {},
    log: () => {},
  });
  open.push(v);
  return v;
}

async function activated(spec: Record<string, unknown> = {}): Promise<JwtVerifier> {
  const v = verifier(spec);
  v.activate();
  await until(() => v.ready(), 'keys');
  return v;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300 && !condition(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(condition(), `timed out waiting for ${what}`);
}

/** A JWT for the test server's issuer and audience `api`, valid for an hour on the test clock. */
const sign = (
  claims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
  key = server.keys[0],
) =>
  server.sign(
    { aud: 'api', sub: 'alice', iat: nowSeconds(), exp: nowSeconds() + 3600, ...claims },
    { key, header },
  );

/** A JWS over arbitrary payload bytes, signed with the first test key. */
function signRaw(payload: string, header: Record<string, unknown> = {}): Promise<string> {
  const key = server.keys[0]!;
  return new CompactSign(new TextEncoder().encode(payload))
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header })
    .sign(key.privateKey);
}

const b64 = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

function refusal(check: CredentialCheck): string {
  assert.equal(check.ok, false, 'token was accepted');
  return check.ok ? '' : `${check.kind}: ${check.reason}`;
}

before(async () => {
  server = await startKeyServer({ algs: ['ES256', 'RS256'] });
});

beforeEach(() => {
  server.mode = 'ok';
  server.hits.clear();
  clock.now = Date.now();
});

afterEach(() => {
  for (const v of open.splice(0)) v.close();
});

after(() => server.close());

describe('jwt verifier', () => {
  it('accepts a valid token, then answers it synchronously from the cache', async () => {
    const v = await activated();
    const token = await sign({ scope: 'read write' });
    assert.equal(v.cached(token), undefined, 'nothing cached before the first verification');
    const first = v.verify(token);
    assert.ok(first instanceof Promise);
    const check = await first;
    assert.equal(v.cached(token), check, 'cached() answers a verified token without other work');
    assert.ok(check.ok);
    assert.equal(check.claims.sub, 'alice');
    assert.equal(check.expiresAt, (nowSeconds() + 3600) * 1000);
    assert.ok(Object.isFrozen(check.claims));
    const second = v.verify(token);
    assert.ok(!(second instanceof Promise), 'a cache hit is synchronous');
    assert.equal(second, check);
    // RS256 too, and a token without kid (tried against the keys of its algorithm).
    assert.ok((await v.verify(await sign({}, {}, server.keys[1]))).ok);
    assert.ok((await v.verify(await sign({}, { kid: undefined }))).ok);
  });

  it('does nothing until activated, and nothing offline', async () => {
    const v = verifier();
    assert.equal(v.ready(), true, 'not used by a jwt policy: does not hold readiness back');
    assert.match(refusal(await v.verify(await sign())), /^unavailable/);
    const offline = verifier({}, { start: false });
    offline.activate();
    assert.equal(offline.ready(), true);
    assert.equal(server.hits.size, 0);
  });

  it('refuses bad configuration on activation', () => {
    assert.throws(
      () => verifier({ issuer: 'corp', jwksUri: undefined }).activate(),
      /jwksUri is not set and issuer corp is not an http\(s\) URL/,
    );
    assert.throws(
      () => verifier({ keySet: { refreshInterval: '10ms' } }).activate(),
      /refreshInterval must be at least 1s/,
    );
  });

  it('answers unavailable while no keys could be fetched, without waiting long', async () => {
    server.mode = 'down';
    const v = verifier();
    v.activate();
    assert.equal(v.ready(), false);
    assert.equal(refusal(await v.verify(await sign())), 'unavailable: signing keys not loaded yet');
    server.mode = 'ok';
    await until(() => v.ready(), 'keys after the outage');
    assert.ok((await v.verify(await sign())).ok);
  });

  it('checks exp, nbf and iat with the clock skew', async () => {
    const v = await activated({ clockSkew: '30s' });
    const now = nowSeconds();
    assert.ok((await v.verify(await sign({ exp: now - 10 }))).ok, 'expired within the skew');
    assert.equal(refusal(await v.verify(await sign({ exp: now - 31 }))), 'invalid: token expired');
    assert.equal(
      refusal(await v.verify(await sign({ exp: undefined }))),
      'invalid: exp missing or not a number',
    );
    assert.equal(
      refusal(await v.verify(await sign({ exp: '9999999999' }))),
      'invalid: exp missing or not a number',
    );
    const infinite = await signRaw(`{"iss":"${server.issuer}","aud":"api","exp":1e400}`);
    assert.equal(refusal(await v.verify(infinite)), 'invalid: exp missing or not a number');
    assert.ok((await v.verify(await sign({ nbf: now + 20 }))).ok);
    assert.equal(refusal(await v.verify(await sign({ nbf: now + 40 }))), 'invalid: token not yet valid');
    assert.equal(
      refusal(await v.verify(await sign({ iat: now + 40 }))),
      'invalid: token issued in the future',
    );
    assert.equal(refusal(await v.verify(await sign({ iat: 'yesterday' }))), 'invalid: iat is not a number');
  });

  it('drops a cached token at its exp', async () => {
    const v = await activated();
    const token = await sign({ exp: nowSeconds() + 60 });
    assert.ok((await v.verify(token)).ok);
    assert.ok(!(v.verify(token) instanceof Promise));
    clock.now += 61_000;
    const later = v.verify(token);
    assert.ok(later instanceof Promise, 'not answered from the cache past exp');
    assert.ok((await later).ok, 'still within the clock skew');
    assert.ok(v.verify(token) instanceof Promise, 'a token within the skew only is not cached');
    clock.now += 30_000;
    assert.equal(refusal(await v.verify(token)), 'invalid: token expired');
  });

  it('checks issuer, audience, sub, required claims and typ', async () => {
    const v = await activated({ requiredClaims: ['tenant'] });
    assert.equal(
      refusal(await v.verify(await sign({ iss: 'https://evil.test' }))),
      'invalid: issuer not accepted',
    );
    assert.equal(refusal(await v.verify(await sign({ aud: 'other' }))), 'invalid: audience not accepted');
    assert.equal(refusal(await v.verify(await sign({ aud: undefined }))), 'invalid: audience not accepted');
    assert.equal(
      refusal(await v.verify(await sign({ aud: [1] }))),
      'invalid: aud is not a string or array of strings',
    );
    assert.equal(
      refusal(await v.verify(await sign({ sub: 7, tenant: 'a' }))),
      'invalid: sub is not a string',
    );
    assert.equal(refusal(await v.verify(await sign())), 'invalid: claim tenant missing');
    assert.ok((await v.verify(await sign({ aud: ['other', 'api'], tenant: 'a' }))).ok);

    const typed = await activated({ typ: 'at+jwt' });
    assert.ok((await typed.verify(await sign({}, { typ: 'application/AT+JWT' }))).ok);
    assert.equal(
      refusal(await typed.verify(await sign({}, { typ: 'JWT' }))),
      'invalid: token type not accepted',
    );
    assert.equal(refusal(await typed.verify(await sign())), 'invalid: token type not accepted');
  });

  it('parses strictly and never lets the token choose the algorithm', async () => {
    const v = await activated({ algorithms: ['ES256'] });
    const token = await sign();
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const sync = (t: string) => {
      const check = v.verify(t);
      assert.ok(!(check instanceof Promise), 'header problems are answered without waiting');
      return refusal(check);
    };
    assert.equal(sync(`${header}.${payload}`), 'invalid: malformed token');
    assert.equal(sync(`${token}.x`), 'invalid: malformed token');
    assert.equal(sync(`${header}.${payload}.`), 'invalid: malformed token');
    assert.equal(sync(`${header}.${payload}.${signature}=`), 'invalid: malformed token');
    assert.equal(sync(`${b64('{"alg":')}.${payload}.${signature}`), 'invalid: malformed token header');
    assert.equal(sync(`${b64([])}.${payload}.${signature}`), 'invalid: malformed token header');
    assert.equal(
      sync(`${b64({ alg: 'none' })}.${payload}.${signature}`),
      'invalid: unsigned tokens are not accepted',
    );
    assert.equal(
      sync(`${b64({ alg: 'RS256' })}.${payload}.${signature}`),
      'invalid: signature algorithm not accepted',
    );
    assert.equal(
      sync(`${b64({ alg: 'ES256', crit: ['exp'], exp: 1 })}.${payload}.${signature}`),
      'invalid: critical header extensions are not supported',
    );
    assert.equal(
      sync(`${b64({ alg: 'ES256', b64: false })}.${payload}.${signature}`),
      'invalid: unencoded payloads are not supported',
    );
    assert.equal(
      sync(`${b64({ alg: 'ES256', kid: 5 })}.${payload}.${signature}`),
      'invalid: malformed token header',
    );

    // Tampered: another payload under the original signature.
    const forged = b64({ iss: server.issuer, aud: 'api', sub: 'root', exp: nowSeconds() + 60 });
    assert.equal(refusal(await v.verify(`${header}.${forged}.${signature}`)), 'invalid: signature invalid');
    assert.equal(
      refusal(await v.verify(`${header}.${payload}.${signature.slice(0, -4)}AAAA`)),
      'invalid: signature invalid',
    );
    const notJson = await signRaw('not json');
    assert.equal(refusal(await v.verify(notJson)), 'invalid: malformed token payload');
  });

  it('refuses HS256 signed with the provider’s public key (algorithm confusion)', async () => {
    const v = await activated({ algorithms: ['RS256', 'ES256'] });
    const rsa = server.keys[1]!;
    const pem = createPublicKey({ key: rsa.publicJwk as never, format: 'jwk' }).export({
      type: 'spki',
      format: 'pem',
    });
    const claims = { iss: server.issuer, aud: 'api', exp: nowSeconds() + 60 };
    for (const secret of [pem, JSON.stringify(rsa.publicJwk)]) {
      const input = `${b64({ alg: 'HS256', kid: rsa.kid })}.${b64(claims)}`;
      const mac = createHmac('sha256', secret).update(input).digest('base64url');
      assert.equal(
        refusal(v.verify(`${input}.${mac}`) as CredentialCheck),
        'invalid: signature algorithm not accepted',
      );
    }
    // An allowed algorithm with a key of another type: never tried.
    const wrongType = `${b64({ alg: 'RS256', kid: server.keys[0]!.kid })}.${b64(claims)}.${b64('x'.repeat(256))}`;
    assert.equal(refusal(await v.verify(wrongType)), 'invalid: no signing key for this algorithm');
  });

  it('ignores keys offered by the token (jwk, jku, x5u)', async () => {
    const v = await activated();
    const attacker = await newTestKey('ES256', 'attacker');
    const jku = `${server.url}/attacker-jwks`;
    const withJwk = await sign({}, { kid: undefined, jwk: attacker.publicJwk }, attacker);
    assert.equal(refusal(await v.verify(withJwk)), 'invalid: signature invalid');
    clock.now += 10_000; // let the unknown kid cause a refetch
    const withJku = await sign({}, { jku, x5u: jku, jwk: attacker.publicJwk }, attacker);
    assert.equal(refusal(await v.verify(withJku)), 'invalid: signing key not found');
    assert.equal(server.hits.get('/attacker-jwks'), undefined);
    assert.equal(server.hits.get('/jwks'), 2, 'the provider’s own key set was fetched again, once');
  });

  it('picks up a rotated key through a refetch on its unknown kid, emptying the cache', async () => {
    const v = await activated();
    const before = await sign();
    assert.ok((await v.verify(before)).ok);
    assert.ok(!(v.verify(before) instanceof Promise));
    const rotated = await server.addKey('ES256');
    try {
      clock.now += 10_000;
      const check = await v.verify(await sign({}, {}, rotated));
      assert.ok(check.ok, 'the new kid verifies');
      assert.equal(server.hits.get('/jwks'), 2);
      const again = v.verify(before);
      assert.ok(again instanceof Promise, 'the cache was emptied when the keys changed');
      assert.ok((await again).ok, 'the old key is still published');
    } finally {
      server.keys.pop();
    }
  });

  it('refetches for unknown kids at most once per minRefetchInterval, shared', async () => {
    const v = await activated({ keySet: { minRefetchInterval: '10s' } });
    const burst = () =>
      Promise.all(Array.from({ length: 20 }, (_, i) => sign({}, { kid: `unknown-${i}` }))).then((tokens) =>
        Promise.all(tokens.map((t) => v.verify(t))),
      );
    assert.ok((await burst()).every((c) => !c.ok && c.reason === 'signing key not found'));
    assert.equal(server.hits.get('/jwks'), 1, 'the startup fetch is recent: rate-limited');
    clock.now += 10_000;
    assert.ok((await burst()).every((c) => !c.ok && c.reason === 'signing key not found'));
    assert.equal(server.hits.get('/jwks'), 2, 'twenty requests, one fetch');
    assert.ok((await burst()).every((c) => !c.ok));
    assert.equal(server.hits.get('/jwks'), 2);
  });

  it('shares the verification of one token between concurrent requests', async () => {
    const v = await activated({ verifiedTokenCache: { maxEntries: 0 } });
    const token = await sign();
    const a = v.verify(token);
    const b = v.verify(token);
    assert.equal(a, b);
    assert.ok((await a).ok);
    assert.ok(v.verify(token) instanceof Promise, 'cache turned off');
  });

  it('stops answering, even from the cache, when the keys are older than the grace period', async () => {
    const v = await activated({ keySet: { gracePeriod: '1h', refreshInterval: '1s' } });
    const token = await sign({ exp: nowSeconds() + 7200 });
    assert.ok((await v.verify(token)).ok);
    server.mode = 'down';
    clock.now += 3_600_001;
    assert.equal(
      refusal(v.verify(token) as CredentialCheck),
      'unavailable: signing keys could not be refreshed within the grace period',
    );
    assert.equal(v.ready(), false);
    server.mode = 'ok';
    await until(() => v.ready(), 'keys after the outage');
    assert.ok((await v.verify(token)).ok);
  });
});
