// examples/edge-mesh end to end: a real OpenID provider for the end user, the example's edge and
// mesh gateways as two real processes (ports rewritten, nothing else), and an echo service behind
// the mesh. The mesh must take only what the edge minted for it.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createRemoteJWKSet, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { httpRequest } from './helpers/http.ts';
import { startTestIdp, type TestIdp } from './helpers/idp.ts';
import {
  freePort,
  type RunningProcess,
  repoRoot,
  runCli,
  startGateway,
  tempConfigDir,
  writeConfig,
} from './helpers/process.ts';
import { type EchoUpstream, startEchoUpstream } from './helpers/upstream.ts';

const example = join(repoRoot, 'examples/edge-mesh');

/** The example file with each `from` (which must still be there) replaced by `to`. */
function rewritten(file: string, replacements: Array<[string, string]>): string {
  let text = readFileSync(join(example, file), 'utf8');
  for (const [from, to] of replacements) {
    assert.ok(text.includes(from), `${file} still contains ${from}`);
    text = text.replaceAll(from, to);
  }
  return text;
}

interface Echoed {
  url: string;
  headers: Record<string, string | undefined>;
}

describe('examples/edge-mesh: edge re-signs, mesh trusts only the edge', () => {
  let idp: TestIdp;
  let service: EchoUpstream;
  let edge: RunningProcess;
  let mesh: RunningProcess;
  let edgePort: number;
  let edgeAdmin: number;
  let meshPort: number;

  before(async () => {
    idp = await startTestIdp({ scopes: ['demo.read', 'demo.write'] });
    service = await startEchoUpstream();
    [edgePort, edgeAdmin, meshPort] = [await freePort(), await freePort(), await freePort()];
    const meshAdmin = await freePort();
    const dir = tempConfigDir();
    const edgeYaml = rewritten('edge.yaml', [
      ['port: 8081', `port: ${edgePort}`],
      ['port: 9911', `port: ${edgeAdmin}`],
      ['http://127.0.0.1:8082', `http://127.0.0.1:${meshPort}`],
      ['http://127.0.0.1:7002', idp.issuer],
      ['urn:gatehouse:demo-api', idp.jwtResource],
    ]);
    const meshYaml = rewritten('mesh.yaml', [
      ['port: 8082', `port: ${meshPort}`],
      ['port: 9912', `port: ${meshAdmin}`],
      ['http://127.0.0.1:9911/', `http://127.0.0.1:${edgeAdmin}/`],
      ['http://127.0.0.1:7001', service.url],
    ]);
    // Each gateway loads only its own file; the edge first, as the mesh fetches its keys.
    edge = await startGateway([writeConfig(dir, 'edge.yaml', edgeYaml)], ['--no-watch']);
    mesh = await startGateway([writeConfig(dir, 'mesh.yaml', meshYaml)], ['--no-watch']);
  });
  after(async () => {
    await Promise.all([mesh?.stop(), edge?.stop()]);
    await service?.close();
    await idp?.close();
  });

  test('the example files validate as they are', async () => {
    for (const file of ['edge.yaml', 'mesh.yaml']) {
      const proc = runCli(['validate', join(example, file)]);
      assert.equal((await proc.exited).code, 0, proc.stderr());
    }
  });

  test('user token → edge → mesh → service: 200, and the service sees only the edge’s token', async () => {
    const userToken = await idp.token({ scope: 'demo.read' });
    const res = await httpRequest(edgePort, '/orders/42', {
      headers: { authorization: `Bearer ${userToken}` },
    });
    assert.equal(res.status, 200, res.body);
    const seen = res.json<Echoed>();
    assert.equal(seen.url, '/orders/42');
    assert.ok(!res.body.includes(userToken), 'the user’s token does not cross the edge');

    const authorization = seen.headers.authorization ?? '';
    assert.match(authorization, /^Bearer /);
    const edgeToken = authorization.slice('Bearer '.length);
    const edgeKeys = createRemoteJWKSet(new URL(`http://127.0.0.1:${edgeAdmin}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(edgeToken, edgeKeys, {
      issuer: 'gatehouse://edge',
      audience: 'orders',
      algorithms: ['ES256'],
    });
    assert.equal(payload.sub, idp.clients.app.id, 'the end user’s subject, carried by the edge');
    assert.equal(payload.scope, 'demo.read');
    assert.equal(payload.exp! - payload.iat!, 60);
    // The mesh read the same identity from the edge token.
    assert.equal(seen.headers['x-user-id'], idp.clients.app.id);
    assert.equal(seen.headers['x-scopes'], 'demo.read');
  });

  test('the edge refuses users without a token or without the scope', async () => {
    assert.equal((await httpRequest(edgePort, '/orders/42')).status, 401);
    const writer = await idp.token({ scope: 'demo.write' });
    const res = await httpRequest(edgePort, '/orders/42', { headers: { authorization: `Bearer ${writer}` } });
    assert.equal(res.status, 403);
    assert.equal(res.json().code, 'insufficient_scope');
  });

  test('the same user token sent straight to the mesh: 401', async () => {
    const before = service.requests.length;
    const userToken = await idp.token({ scope: 'demo.read' });
    const res = await httpRequest(meshPort, '/orders/42', {
      headers: { authorization: `Bearer ${userToken}` },
    });
    assert.equal(res.status, 401);
    assert.equal(res.json().code, 'invalid_token');
    assert.match(String(res.headers['www-authenticate']), /^Bearer error="invalid_token"/);
    assert.equal(service.requests.length, before, 'nothing reached the service');
  });

  test('no token at the mesh: 401', async () => {
    const res = await httpRequest(meshPort, '/orders/42');
    assert.equal(res.status, 401);
    assert.equal(res.json().code, 'unauthenticated');
  });

  test('a token signed by another key, with the edge’s iss, aud and even its kid: 401', async () => {
    const before = service.requests.length;
    const jwks = await httpRequest(edgeAdmin, '/.well-known/jwks.json');
    const edgeKid = jwks.json<{ keys: Array<{ kid: string }> }>().keys[0]!.kid;
    const { privateKey } = await generateKeyPair('ES256');
    for (const kid of [edgeKid, 'forged-key']) {
      const forged = await new SignJWT({ scope: 'demo.read' })
        .setProtectedHeader({ alg: 'ES256', kid })
        .setIssuer('gatehouse://edge')
        .setAudience('orders')
        .setSubject(idp.clients.app.id)
        .setJti(randomUUID())
        .setIssuedAt()
        .setExpirationTime('60s')
        .sign(privateKey);
      const res = await httpRequest(meshPort, '/orders/42', {
        headers: { authorization: `Bearer ${forged}` },
      });
      assert.equal(res.status, 401, `kid ${kid}`);
      assert.equal(res.json().code, 'invalid_token');
    }
    assert.equal(service.requests.length, before, 'nothing reached the service');
  });
});
