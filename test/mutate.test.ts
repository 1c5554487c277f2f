// The mutate stage over real gateway processes: header templates and internal tokens as the
// upstream sees them, and the gateway's key set as a verifier (jose) fetches it.

import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { hashApiKey } from '../src/identity/consumers.ts';
import { httpRequest } from './helpers/http.ts';
import {
  freePort,
  type RunningProcess,
  startGateway,
  tempConfigDir,
  writeConfig,
} from './helpers/process.ts';
import { type EchoUpstream, type SeenRequest, startEchoUpstream } from './helpers/upstream.ts';

const partnerKey = 'partner-key-0123456789';

let upstream: EchoUpstream;
before(async () => {
  upstream = await startEchoUpstream();
});
after(async () => {
  await upstream.close();
});

function config(opts: { port: number; admin: number; tokens: string }): string {
  return `
apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, address: 127.0.0.1, port: ${opts.port} }]
  admin: { port: ${opts.admin} }
  tokens: ${opts.tokens}
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: echo }
spec: { targets: [{ url: ${upstream.url} }] }
---
apiVersion: gatehouse.dev/v1
kind: Consumer
metadata: { name: partner-a }
spec:
  apiKeys: [{ sha256: ${hashApiKey(partnerKey)}, name: main }]
  groups: [partners]
  metadata: { tenant: acme, note: "line one\\r\\nX-Injected: yes" }
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: shop }
spec:
  gateway: edge
  upstream: echo
  rules:
    - path: /static
      authenticate: [{ noAuth: {} }]
      mutate:
        headers: { X-Static: literal, X-User-Id: "{{ identity.sub }}", X-Tenant: "{{ claims.tenant }}" }
    - path: /me
      authenticate: [{ apiKey: {} }]
      mutate:
        headers:
          X-User-Id: "{{ identity.sub }}"
          X-Consumer: "{{ consumer.name }}"
          X-Tenant: "{{ claims.tenant }}"
          X-Note: "{{ claims.note }}"
    - path: /orders
      authenticate: [{ apiKey: {} }]
      mutate:
        token: { audience: orders, claims: [tenant], lifetime: 60s }
        headers: { X-Token-Copy: "{{ token }}" }
    - path: /public
      authenticate: [{ noAuth: {} }]
      mutate: { token: { audience: public } }
`;
}

interface Gateway {
  proc: RunningProcess;
  port: number;
  admin: number;
  configPath: string;
}

async function startMutateGateway(tokens: string, dir = tempConfigDir()): Promise<Gateway> {
  const port = await freePort();
  const admin = await freePort();
  const configPath = writeConfig(dir, 'gateway.yaml', config({ port, admin, tokens }));
  const proc = await startGateway([configPath], ['--no-watch']);
  return { proc, port, admin, configPath };
}

/** What the upstream saw for the request with this id (the gateway sets X-Request-Id). */
function seenBy(requestId: string | string[] | undefined): SeenRequest {
  const seen = upstream.requests.find((r) => r.headers['x-request-id'] === requestId);
  assert.ok(seen, `upstream saw request ${String(requestId)}`);
  return seen;
}

function headerCount(seen: SeenRequest, name: string): number {
  let n = 0;
  for (let i = 0; i < seen.rawHeaders.length; i += 2) if (seen.rawHeaders[i]!.toLowerCase() === name) n++;
  return n;
}

async function jwksKids(admin: number): Promise<string[]> {
  const res = await httpRequest(admin, '/.well-known/jwks.json');
  assert.equal(res.status, 200);
  return res.json<{ keys: Array<{ kid: string }> }>().keys.map((k) => k.kid);
}

/** Verifies like an upstream would: against the key set fetched from the admin port. */
function verifyAgainstAdmin(admin: number, jwt: string, audience: string) {
  const jwks = createRemoteJWKSet(new URL(`http://127.0.0.1:${admin}/.well-known/jwks.json`));
  return jwtVerify(jwt, jwks, { issuer: 'gatehouse://edge', audience, algorithms: ['ES256'] });
}

describe('mutate: headers and tokens (keys in a directory)', () => {
  let gw: Gateway;
  let dir: string;
  before(async () => {
    dir = tempConfigDir();
    gw = await startMutateGateway('{ keys: { dir: keys }, publishOn: public }', dir);
  });
  after(async () => {
    await gw.proc.stop();
  });

  test('header templates reach the upstream; client copies are stripped, also when a template is empty', async () => {
    const res = await httpRequest(gw.port, '/static', {
      headers: { 'x-static': 'spoofed', 'x-user-id': 'admin', 'X-Tenant': 'other' },
    });
    assert.equal(res.status, 200);
    const seen = seenBy(res.headers['x-request-id']);
    assert.equal(seen.headers['x-static'], 'literal');
    assert.equal(headerCount(seen, 'x-static'), 1);
    // noAuth: no subject and no claims, so these are not set, and the client's copies are gone.
    assert.equal(seen.headers['x-user-id'], undefined);
    assert.equal(seen.headers['x-tenant'], undefined);
  });

  test('identity of an API key caller as headers; CR/LF injection neutralised', async () => {
    const res = await httpRequest(gw.port, '/me', {
      headers: { 'x-api-key': partnerKey, 'x-user-id': 'admin', 'x-consumer': 'someone-else' },
    });
    assert.equal(res.status, 200);
    const seen = seenBy(res.headers['x-request-id']);
    assert.equal(seen.headers['x-user-id'], 'partner-a');
    assert.equal(seen.headers['x-consumer'], 'partner-a');
    assert.equal(seen.headers['x-tenant'], 'acme');
    assert.equal(seen.headers['x-note'], 'line oneX-Injected: yes');
    assert.equal(seen.headers['x-injected'], undefined);
    assert.equal(headerCount(seen, 'x-user-id'), 1);
    assert.equal(seen.headers['x-api-key'], undefined, 'the API key is not forwarded');
  });

  test('the minted token replaces the client Authorization and verifies against the admin JWKS', async () => {
    const res = await httpRequest(gw.port, '/orders', {
      headers: { 'x-api-key': partnerKey, authorization: 'Bearer client-credential' },
    });
    assert.equal(res.status, 200);
    const seen = seenBy(res.headers['x-request-id']);
    assert.equal(headerCount(seen, 'authorization'), 1);
    const authorization = seen.headers.authorization ?? '';
    assert.match(authorization, /^Bearer /);
    const jwt = authorization.slice('Bearer '.length);
    assert.equal(seen.headers['x-token-copy'], jwt, 'headers run after token and can use it');

    const { payload, protectedHeader } = await verifyAgainstAdmin(gw.admin, jwt, 'orders');
    assert.equal(payload.iss, 'gatehouse://edge');
    assert.equal(payload.aud, 'orders');
    assert.equal(payload.sub, 'partner-a');
    assert.equal(payload.consumer, 'partner-a');
    assert.equal(payload.tenant, 'acme');
    assert.equal(payload.exp! - payload.iat!, 60);
    assert.equal(typeof payload.jti, 'string');
    assert.deepEqual(await jwksKids(gw.admin), [protectedHeader.kid]);
  });

  test('the same identity gets the same cached token on a second request', async () => {
    const tokens: string[] = [];
    for (let i = 0; i < 2; i++) {
      const res = await httpRequest(gw.port, '/orders', { headers: { 'x-api-key': partnerKey } });
      assert.equal(res.status, 200);
      tokens.push(seenBy(res.headers['x-request-id']).headers.authorization ?? '');
    }
    assert.match(tokens[0]!, /^Bearer /);
    assert.equal(tokens[1], tokens[0]);
  });

  test('anonymous callers get a token without sub', async () => {
    const res = await httpRequest(gw.port, '/public');
    const jwt = (seenBy(res.headers['x-request-id']).headers.authorization ?? '').slice('Bearer '.length);
    const { payload } = await verifyAgainstAdmin(gw.admin, jwt, 'public');
    assert.equal('sub' in payload, false);
  });

  test('publishOn: the listener answers /.well-known/jwks.json itself, with public parts only', async () => {
    const before = upstream.requests.length;
    const onListener = await httpRequest(gw.port, '/.well-known/jwks.json');
    assert.equal(onListener.status, 200);
    assert.equal(upstream.requests.length, before, 'answered by the gateway, not routed');
    const onAdmin = await httpRequest(gw.admin, '/.well-known/jwks.json');
    assert.equal(onListener.body, onAdmin.body);
    const [key] = onAdmin.json<{ keys: Array<Record<string, string>> }>().keys;
    assert.deepEqual(Object.keys(key!).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    assert.equal(key!.alg, 'ES256');
    assert.equal(key!.use, 'sig');
  });

  test('a reload keeps the issuer: same keys, same cached token', async () => {
    const token = async () => {
      const res = await httpRequest(gw.port, '/orders', { headers: { 'x-api-key': partnerKey } });
      assert.equal(res.status, 200);
      return seenBy(res.headers['x-request-id']).headers.authorization;
    };
    const before = await token();
    const reloads = gw.proc.logs().filter((l) => l.msg === 'config reloaded').length;
    gw.proc.child.kill('SIGHUP');
    for (
      let i = 0;
      i < 200 && gw.proc.logs().filter((l) => l.msg === 'config reloaded').length === reloads;
      i++
    )
      await new Promise((r) => setTimeout(r, 50));
    assert.equal(gw.proc.logs().filter((l) => l.msg === 'config reloaded').length, reloads + 1);
    assert.equal(await token(), before);
  });

  test('keys are persisted: a restart with the same directory keeps the same kid', async () => {
    const kids = await jwksKids(gw.admin);
    const files = readdirSync(join(dir, 'keys'));
    assert.deepEqual(files, [`${kids[0]}.jwk.json`]);
    assert.equal(statSync(join(dir, 'keys', files[0]!)).mode & 0o777, 0o600);
    await gw.proc.stop();
    gw.proc = await startGateway([gw.configPath], ['--no-watch']);
    assert.deepEqual(await jwksKids(gw.admin), kids);
    const res = await httpRequest(gw.port, '/orders', { headers: { 'x-api-key': partnerKey } });
    const jwt = (seenBy(res.headers['x-request-id']).headers.authorization ?? '').slice('Bearer '.length);
    assert.equal(decodeProtectedHeader(jwt).kid, kids[0]);
  });
});

describe('mutate: key rotation', () => {
  let gw: Gateway;
  before(async () => {
    // A short interval is how rotation is exercised: a new key every 2s, old ones published for 1h.
    gw = await startMutateGateway('{ rotation: { interval: 2s, overlap: 1h } }');
  });
  after(async () => {
    await gw.proc.stop();
  });

  test('after a rotation the JWKS has both keys and a new token uses the new kid', async () => {
    const first = await httpRequest(gw.port, '/orders', { headers: { 'x-api-key': partnerKey } });
    const oldJwt = (seenBy(first.headers['x-request-id']).headers.authorization ?? '').slice(
      'Bearer '.length,
    );
    const oldKid = decodeProtectedHeader(oldJwt).kid!;
    // The signing key is listed first: wait until a newer one has taken over.
    let kids = await jwksKids(gw.admin);
    for (let i = 0; i < 240 && kids[0] === oldKid; i++) {
      await new Promise((r) => setTimeout(r, 250));
      kids = await jwksKids(gw.admin);
    }
    assert.notEqual(kids[0], oldKid, 'a rotation happened');
    assert.ok(kids.includes(oldKid), 'the replaced key stays published during the overlap');

    const next = await httpRequest(gw.port, '/orders', { headers: { 'x-api-key': partnerKey } });
    const newJwt = (seenBy(next.headers['x-request-id']).headers.authorization ?? '').slice('Bearer '.length);
    const newKid = decodeProtectedHeader(newJwt).kid!;
    assert.notEqual(newKid, oldKid, 'the cached token of the old key is not handed out');
    // Both verify against the published set: the old one thanks to the overlap.
    await verifyAgainstAdmin(gw.admin, oldJwt, 'orders');
    await verifyAgainstAdmin(gw.admin, newJwt, 'orders');
  });

  test('the listener without publishOn routes /.well-known/jwks.json like any path', async () => {
    const res = await httpRequest(gw.port, '/.well-known/jwks.json');
    assert.equal(res.status, 404);
  });
});
