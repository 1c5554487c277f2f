// Subsystem security end to end, over loopback with real TLS: bootstrap tokens, registration,
// mtls (the control plane's CA, client certificates, renewal) and jwt mode through a real nginx
// terminating TLS, plus two control planes sharing one PostgreSQL.
//

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { importJWK, SignJWT } from 'jose';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import {
  type ControlPlaneServerConfig,
  controlPlaneContext,
  startControlPlane,
} from '../src/control-plane/server.ts';
import {
  ControlPlaneCallError,
  loadGatewayCredentials,
  registerGateway,
} from '../src/control-plane/security/client.ts';
import { gatewaysCollection } from '../src/control-plane/security/gateway-records.ts';
import type { StoredKeyRing } from '../src/control-plane/security/key-ring-state.ts';
import { keyRingRecordId, securityCollection } from '../src/control-plane/security/keys.ts';
import { createSecurityModule, type SecurityModule } from '../src/control-plane/security/module.ts';
import type { SecuritySpec } from '../src/control-plane/security/schema.ts';
import { audiences } from '../src/control-plane/security/types.ts';
import { createSubsystemJwtVerifier } from '../src/control-plane/security/verifier.ts';
import { openPostgresStore } from '../src/control-plane/store/postgres.ts';
import { openSqliteStore } from '../src/control-plane/store/sqlite.ts';
import type { ResourceStore } from '../src/control-plane/store/types.ts';
import { makeCA, type TestCA, tmpDir } from './helpers/certs.ts';
import { dropSchemas, sharedPostgres, testPgUrl, uniqueSchema } from './helpers/postgres.ts';
import { cliPath, freePort, repoRoot } from './helpers/process.ts';
import { type RunningNginx, skipWithoutNginx, startTlsNginx } from './helpers/nginx.ts';

const adminToken = `admin-${randomBytes(8).toString('hex')}`;
const silent = pino({ level: 'silent' });
const temporaryDirs: string[] = [];
after(() => {
  for (const dir of temporaryDirs) rmSync(dir, { recursive: true, force: true });
});
function tempDir(prefix: string): string {
  const dir = tmpDir(prefix);
  temporaryDirs.push(dir);
  return dir;
}

// ---------------------------------------------------------------------------------------------
// A control plane: the real server (startControlPlane) with the security module, over a real store.

interface SecuredControlPlane {
  module: SecurityModule;
  store: ResourceStore;
  url: string;
  port: number;
  close(): Promise<void>;
}

async function startSecuredControlPlane(options: {
  spec: Partial<SecuritySpec>;
  store?: ResourceStore;
  /** The URL gateways use, when it is not this server's own (behind nginx). */
  publicUrl?: (port: number) => string;
}): Promise<SecuredControlPlane> {
  const store = options.store ?? (await openSqliteStore({ path: ':memory:' }));
  const port = await freePort();
  const tls = options.spec.mode !== 'jwt';
  const ownUrl = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const config: ControlPlaneServerConfig = {
    listen: { address: '127.0.0.1', port },
    publicUrl: options.publicUrl?.(port) ?? ownUrl,
    dataDir: tempDir('gh-cp-'),
    operators: {
      tokens: [
        {
          name: 'test-admin',
          sha256: createHash('sha256').update(adminToken).digest('hex'),
          roles: [{ namespace: '*', role: 'admin' }],
        },
      ],
    },
  };
  const context = controlPlaneContext(config, store, silent, tls);
  const module = await createSecurityModule(context, options.spec);
  const tlsOptions = module.tlsOptions();
  const running = await startControlPlane({
    config,
    store,
    logger: silent,
    modules: [module],
    context,
    ...(tlsOptions ? { tls: tlsOptions } : {}),
  });
  return {
    module,
    store,
    url: running.url,
    port,
    async close() {
      await running.close();
      if (!options.store) await store.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Calls

interface Answer {
  status: number;
  body: Record<string, unknown>;
  text: string;
}

async function call(
  url: string,
  options: {
    method?: 'GET' | 'POST' | 'DELETE';
    body?: unknown;
    headers?: Record<string, string>;
    tls?: { ca?: string; cert?: string; key?: string };
  } = {},
): Promise<Answer> {
  const dispatcher = new Agent({ connect: { ...options.tls } });
  try {
    const res = await request(url, {
      method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
      dispatcher,
      headers: {
        ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
        ...options.headers,
      },
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.body.text();
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {}
    return { status: res.statusCode, body, text };
  } finally {
    await dispatcher.close();
  }
}

async function createToken(
  cp: { url: string },
  body: Record<string, unknown>,
  tls?: { ca?: string },
): Promise<{ token: string; id: string }> {
  const res = await call(`${cp.url}/api/v1/bootstrap-tokens`, {
    body,
    headers: { authorization: `Bearer ${adminToken}` },
    ...(tls ? { tls } : {}),
  });
  assert.equal(res.status, 201, res.text);
  return { token: res.body.token as string, id: res.body.id as string };
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ControlPlaneCallError, String(err));
    assert.equal(err.code, code, err.message);
    return true;
  });
}

function writeFile(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

// ---------------------------------------------------------------------------------------------

describe('mtls: the control plane CA issues, verifies and renews gateway certificates', () => {
  let cp: SecuredControlPlane;
  let caFile: string;
  let ca: { ca: string };
  let otherCa: TestCA;

  before(async () => {
    cp = await startSecuredControlPlane({ spec: { mode: 'mtls', certificateLifetime: '1h' } });
    const dir = tempDir('gh-mtls-');
    caFile = writeFile(dir, 'cp-ca.pem', cp.module.caCertificate);
    ca = { ca: cp.module.caCertificate };
    otherCa = makeCA(dir, 'other');
  });
  after(() => cp.close());

  test('the control plane serves its CA, and its TLS certificate chains to it', async () => {
    const res = await call(`${cp.url}/v1/ca.pem`, { tls: ca });
    assert.equal(res.status, 200);
    assert.equal(res.text, cp.module.caCertificate);
    // Without the CA the control plane's certificate is not trusted.
    await assert.rejects(call(`${cp.url}/v1/ca.pem`), /certificate/);
  });

  test('a gateway registers, gets a client certificate for its identity, and calls with it', async () => {
    const { token } = await createToken(
      cp,
      { gateway: 'edge', namespace: 'shop', labels: { zone: 'eu' } },
      ca,
    );
    const dataDir = tempDir('gh-gw-');
    const creds = await registerGateway({ controlPlaneUrl: cp.url, bootstrapToken: token, dataDir, caFile });
    after(() => creds.close());
    assert.equal(creds.mode, 'mtls');
    assert.deepEqual(
      { name: creds.identity.name, namespace: creds.identity.namespace, labels: creds.identity.labels },
      { name: 'edge', namespace: 'shop', labels: { zone: 'eu' } },
    );
    assert.deepEqual(await creds.headers(audiences.controlPlane), {}, 'mtls needs no bearer token');

    const material = creds.tls();
    const cert = new X509Certificate(material.cert!);
    assert.equal(cert.subjectAltName, `URI:spiffe://gatehouse/ns/shop/gateway/edge/${creds.identity.id}`);
    assert.ok(cert.verify(new X509Certificate(cp.module.caCertificate).publicKey), 'signed by the CA');
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.2'], 'clientAuth');
    assert.equal(statSync(join(dataDir, 'identity', 'key.pem')).mode & 0o777, 0o600);

    const res = await call(`${cp.url}/v1/identity`, { tls: material });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body.identity, creds.identity);

    // The record the control plane keeps names the certificate.
    const record = await cp.store.recordGet<Record<string, unknown>>(gatewaysCollection, creds.identity.id);
    assert.equal(
      (record?.certificate as { serialNumber?: string } | undefined)?.serialNumber,
      cert.serialNumber,
    );
  });

  test('no client certificate, or one from another CA with the same identity: 401', async () => {
    const { token } = await createToken(cp, { gateway: 'edge' }, ca);
    const creds = await registerGateway({
      controlPlaneUrl: cp.url,
      bootstrapToken: token,
      dataDir: tempDir('gh-gw-'),
      caFile,
    });
    after(() => creds.close());
    assert.equal((await call(`${cp.url}/v1/identity`, { tls: ca })).status, 401);
    const forged = otherCa.issue({
      cn: 'edge',
      client: true,
      uris: [`spiffe://gatehouse/ns/default/gateway/edge/${creds.identity.id}`],
    });
    let status: number | string;
    try {
      status = (await call(`${cp.url}/v1/identity`, { tls: { ...ca, cert: forged.cert, key: forged.key } }))
        .status;
    } catch (err) {
      status = `refused at TLS: ${(err as Error).message}`;
    }
    assert.ok(status === 401 || String(status).startsWith('refused at TLS'), String(status));
    // The real one still passes: the refusal was about the certificate.
    assert.equal((await call(`${cp.url}/v1/identity`, { tls: creds.tls() })).status, 200);
  });

  test('renewal: a new key and certificate, written to disk, accepted by the control plane', async () => {
    const { token } = await createToken(cp, { gateway: 'edge' }, ca);
    const dataDir = tempDir('gh-gw-');
    const creds = await registerGateway({ controlPlaneUrl: cp.url, bootstrapToken: token, dataDir, caFile });
    after(() => creds.close());
    const before = creds.tls();
    let changed = 0;
    creds.onChange(() => changed++);
    await creds.renew();
    const renewed = creds.tls();
    assert.equal(changed, 1);
    assert.notEqual(renewed.cert, before.cert);
    assert.notEqual(renewed.key, before.key);
    assert.notEqual(
      new X509Certificate(renewed.cert!).serialNumber,
      new X509Certificate(before.cert!).serialNumber,
    );
    assert.equal((await call(`${cp.url}/v1/identity`, { tls: renewed })).status, 200);

    // What a restart finds on disk, with no network call.
    const loaded = await loadGatewayCredentials(dataDir, { renew: false });
    assert.ok(loaded);
    assert.equal(loaded.tls().cert, renewed.cert);
    assert.equal(loaded.tls().key, renewed.key);
    assert.deepEqual(loaded.identity, creds.identity);
  });

  test('a deleted gateway: refused at once, and cannot renew', async () => {
    const { token } = await createToken(cp, { gateway: 'edge' }, ca);
    const creds = await registerGateway({
      controlPlaneUrl: cp.url,
      bootstrapToken: token,
      dataDir: tempDir('gh-gw-'),
      caFile,
    });
    after(() => creds.close());
    assert.equal((await call(`${cp.url}/v1/identity`, { tls: creds.tls() })).status, 200);
    assert.equal(await cp.module.revokeGateway(creds.identity.id), true);
    assert.equal((await call(`${cp.url}/v1/identity`, { tls: creds.tls() })).status, 401);
    await rejectsWith(creds.renew(), 'unauthenticated');
  });
});

describe('mtls: renewal runs on its own before the certificate expires', () => {
  let cp: SecuredControlPlane;
  before(async () => {
    cp = await startSecuredControlPlane({ spec: { mode: 'mtls', certificateLifetime: '3s' } });
  });
  after(() => cp.close());

  test('after two thirds of the lifetime the gateway holds a new certificate that works', async () => {
    const dir = tempDir('gh-renew-');
    const caFile = writeFile(dir, 'ca.pem', cp.module.caCertificate);
    const { token } = await createToken(cp, { gateway: 'edge' }, { ca: cp.module.caCertificate });
    const creds = await registerGateway({
      controlPlaneUrl: cp.url,
      bootstrapToken: token,
      dataDir: dir,
      caFile,
    });
    after(() => creds.close());
    const first = creds.tls().cert;
    const firstNotAfter = creds.certificateNotAfter()!;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no renewal within 15 s')), 15_000);
      creds.onChange(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    assert.notEqual(creds.tls().cert, first);
    assert.ok(creds.certificateNotAfter()! > firstNotAfter);
    assert.equal((await call(`${cp.url}/v1/identity`, { tls: creds.tls() })).status, 200);
    assert.equal(readFileSync(join(dir, 'identity', 'cert.pem'), 'utf8'), creds.tls().cert);
  });
});

describe('bootstrap tokens', () => {
  let cp: SecuredControlPlane;
  before(async () => {
    cp = await startSecuredControlPlane({ spec: { mode: 'jwt' } });
  });
  after(() => cp.close());

  const register = (token: string) =>
    registerGateway({
      controlPlaneUrl: cp.url,
      bootstrapToken: token,
      dataDir: tempDir('gh-gw-'),
      renew: false,
    });

  test('the admin API needs an operator', async () => {
    const res = await call(`${cp.url}/api/v1/bootstrap-tokens`, { body: { gateway: 'edge' } });
    assert.equal(res.status, 401);
    assert.equal((await call(`${cp.url}/api/v1/bootstrap-tokens`)).status, 401);
  });

  test('a token with one use registers one gateway; the second use is refused', async () => {
    const { token } = await createToken(cp, { gateway: 'edge' });
    assert.match(token, /^ghb_[A-Za-z0-9_-]{43}$/);
    const creds = await register(token);
    creds.close();
    await rejectsWith(register(token), 'bootstrap_token_invalid');
  });

  test('a revoked token is refused; the list shows it revoked and never a secret', async () => {
    const { token, id } = await createToken(cp, { gateway: 'edge', uses: 3 });
    const revoked = await call(`${cp.url}/api/v1/bootstrap-tokens/${id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${adminToken}` },
    });
    assert.equal(revoked.status, 200, revoked.text);
    await rejectsWith(register(token), 'bootstrap_token_invalid');
    const list = await call(`${cp.url}/api/v1/bootstrap-tokens`, {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    const listed = (list.body.items as Array<Record<string, unknown>>).find((t) => t.id === id);
    assert.equal(listed?.status, 'revoked');
    assert.ok(!list.text.includes(token));
    assert.ok(!list.text.includes(createHash('sha256').update(token).digest('hex')));
    const unknown = await call(`${cp.url}/api/v1/bootstrap-tokens/bt_nope`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${adminToken}` },
    });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.code, 'bootstrap_token_not_found');
  });

  test('an expired token is refused', async () => {
    const { token } = await createToken(cp, { gateway: 'edge', ttl: '1s' });
    await new Promise((r) => setTimeout(r, 1200));
    await rejectsWith(register(token), 'bootstrap_token_invalid');
  });

  test('an unknown or malformed token is refused', async () => {
    await rejectsWith(register(`ghb_${randomBytes(32).toString('base64url')}`), 'bootstrap_token_invalid');
    await rejectsWith(register('not-a-token'), 'bootstrap_token_invalid');
  });

  test('two registrations racing for a single-use token: exactly one succeeds', async () => {
    const { token } = await createToken(cp, { gateway: 'race' });
    const before = (await cp.store.recordList(gatewaysCollection)).length;
    const results = await Promise.allSettled([register(token), register(token)]);
    const ok = results.filter((r) => r.status === 'fulfilled');
    assert.equal(ok.length, 1, JSON.stringify(results.map((r) => r.status)));
    for (const r of results) if (r.status === 'fulfilled') r.value.close();
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    assert.equal((refused.reason as ControlPlaneCallError).code, 'bootstrap_token_invalid');
    assert.equal((await cp.store.recordList(gatewaysCollection)).length, before + 1);
  });

  test('bad input is refused with 400 and spends no use of the token', async () => {
    const { token } = await createToken(cp, { gateway: 'edge' });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({
      type: 'spki',
      format: 'pem',
    });
    const res = await call(`${cp.url}/v1/register`, { body: { token, publicKey: rsa } });
    assert.equal(res.status, 400);
    assert.match(String(res.body.detail), /P-256/);
    const bad = await call(`${cp.url}/api/v1/bootstrap-tokens`, {
      body: { gateway: 'Edge!', ttl: 'soon', extra: 1 },
      headers: { authorization: `Bearer ${adminToken}` },
    });
    assert.equal(bad.status, 400);
    assert.match(String(bad.body.detail), /gateway/);
    assert.match(String(bad.body.detail), /ttl/);
    (await register(token)).close();
  });

  test('gatehouse bootstrap-token create / list / revoke', async () => {
    const run = (args: string[]) =>
      runCliToEnd(['bootstrap-token', ...args, '--server', cp.url, '--token', adminToken]);
    const created = await run([
      'create',
      '--gateway',
      'cli-gw',
      '-n',
      'shop',
      '--label',
      'tier=edge',
      '--uses',
      '2',
    ]);
    assert.equal(created.code, 0, created.stderr);
    const token = created.stdout.trim();
    assert.match(token, /^ghb_/);
    assert.match(created.stderr, /shown only this once/);
    const listed = await run(['list', '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    const item = (JSON.parse(listed.stdout) as Array<Record<string, unknown>>).find(
      (t) => t.gateway === 'cli-gw',
    )!;
    assert.deepEqual(
      [item.namespace, item.labels, item.uses, item.status],
      ['shop', { tier: 'edge' }, 2, 'active'],
    );
    const revoked = await run(['revoke', String(item.id)]);
    assert.equal(revoked.code, 0, revoked.stderr);
    await rejectsWith(register(token), 'bootstrap_token_invalid');
    const refused = await runCliToEnd(['bootstrap-token', 'list', '--server', cp.url, '--token', 'wrong']);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /^gatehouse bootstrap-token: not authenticated: the control plane at .* does not accept this token/,
    );
    const usage = await run(['create']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--gateway <name> is required/);
  });
});

function runCliToEnd(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// jwt mode through nginx terminating TLS

const skipNginx = skipWithoutNginx();

describe('jwt: short-lived JWTs through nginx terminating TLS', { skip: skipNginx }, () => {
  let cp: SecuredControlPlane;
  let nginx: RunningNginx;
  let lbCa: TestCA;
  let lbCaFile: string;
  let publicUrl: string;

  before(async () => {
    const dir = tempDir('gh-jwt-');
    lbCa = makeCA(dir, 'load-balancer');
    lbCaFile = lbCa.certPath;
    const nginxPort = await freePort();
    publicUrl = `https://127.0.0.1:${nginxPort}`;
    cp = await startSecuredControlPlane({
      spec: { mode: 'jwt', tokenLifetime: '5m' },
      publicUrl: () => publicUrl,
    });
    nginx = await startTlsNginx({
      prefix: tempDir('gh-nginx-'),
      listenPort: nginxPort,
      upstreamPort: cp.port,
      cert: lbCa.issue({ cn: '127.0.0.1', ips: ['127.0.0.1'], dns: ['localhost'] }),
    });
  });
  after(async () => {
    await nginx?.stop();
    await cp?.close();
  });

  async function registered() {
    const { token } = await createToken(
      { url: publicUrl },
      { gateway: 'edge', namespace: 'shop' },
      { ca: lbCa.cert },
    );
    const dataDir = tempDir('gh-gw-');
    const creds = await registerGateway({
      controlPlaneUrl: publicUrl,
      bootstrapToken: token,
      dataDir,
      caFile: lbCaFile,
    });
    after(() => creds.close());
    return { creds, dataDir };
  }
  const whoami = (headers: Record<string, string>) =>
    call(`${publicUrl}/v1/identity`, { headers, tls: { ca: lbCa.cert } });

  /** A token signed with the control plane's real current key, with the claims given. */
  async function signedByControlPlane(claims: Record<string, unknown>, expSec: number, iatSec: number) {
    const ring = await cp.store.recordGet<StoredKeyRing>(securityCollection, keyRingRecordId);
    const key = ring!.keys.at(-1)!;
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
      .setIssuedAt(iatSec)
      .setExpirationTime(expSec)
      .sign(await importJWK(key.privateJwk, 'ES256'));
  }

  test('a gateway registers through nginx and calls with a short-lived JWT', async () => {
    const { creds } = await registered();
    assert.equal(creds.mode, 'jwt');
    assert.equal(creds.tls().cert, undefined, 'no client certificate in jwt mode');
    const headers = await creds.headers(audiences.controlPlane);
    assert.match(headers.authorization!, /^Bearer ey/);
    const res = await whoami(headers);
    assert.equal(res.status, 200, `${res.text}\n${nginx.output()}`);
    assert.deepEqual(res.body.identity, creds.identity);
    // Cached: the same token until it nears expiry.
    assert.deepEqual(await creds.headers(audiences.analytics), headers);
  });

  test('analytics-side verifier: the JWKS through nginx verifies it; forged, expired, wrong audience do not', async () => {
    const { creds } = await registered();
    const verifier = createSubsystemJwtVerifier({
      jwksUrl: creds.jwksUri,
      issuer: creds.issuer,
      audience: audiences.analytics,
      ca: lbCa.cert,
      fetchTimeoutMs: 3000,
    });
    after(() => verifier.close());
    assert.equal(creds.jwksUri, `${publicUrl}/.well-known/jwks.json`);
    const token = (await creds.headers(audiences.analytics)).authorization!.slice(7);
    assert.deepEqual(await verifier.verify(token), creds.identity);

    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: creds.issuer,
      sub: creds.identity.id,
      aud: [audiences.controlPlane, audiences.analytics],
      gateway: { name: 'edge', namespace: 'shop', labels: {} },
    };
    const codeOf = (p: Promise<unknown>) =>
      p.then(
        () => 'accepted',
        (err: { code: string }) => err.code,
      );
    assert.equal(await codeOf(verifier.verify(await forged(claims, token))), 'token_invalid');
    assert.equal(
      await codeOf(verifier.verify(await signedByControlPlane(claims, now - 120, now - 420))),
      'token_expired',
    );
    assert.equal(
      await codeOf(
        verifier.verify(await signedByControlPlane({ ...claims, aud: 'gatehouse:other' }, now + 60, now)),
      ),
      'token_invalid',
    );
    assert.equal(await codeOf(verifier.verify('not.a.jwt')), 'token_malformed');
    const unreachable = createSubsystemJwtVerifier({
      jwksUrl: `http://127.0.0.1:${await freePort()}/.well-known/jwks.json`,
      issuer: creds.issuer,
      audience: audiences.analytics,
      fetchTimeoutMs: 2000,
    });
    after(() => unreachable.close());
    assert.equal(await codeOf(unreachable.verify(token)), 'keys_unavailable');
  });

  test('the control plane refuses a forged, an expired, a wrong-audience and an HS256 token with 401', async () => {
    const { creds } = await registered();
    const good = (await creds.headers(audiences.controlPlane)).authorization!.slice(7);
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: creds.issuer,
      sub: creds.identity.id,
      aud: [audiences.controlPlane, audiences.analytics],
      gateway: { name: 'edge', namespace: 'shop', labels: {} },
    };
    const attempts: Record<string, string> = {
      forged: await forged(claims, good),
      expired: await signedByControlPlane(claims, now - 120, now - 420),
      'wrong audience': await signedByControlPlane({ ...claims, aud: audiences.analytics }, now + 60, now),
      'wrong issuer': await signedByControlPlane({ ...claims, iss: 'https://elsewhere' }, now + 60, now),
      hs256: await new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuedAt(now)
        .setExpirationTime(now + 60)
        .sign(randomBytes(32)),
    };
    for (const [what, token] of Object.entries(attempts)) {
      const res = await whoami({ authorization: `Bearer ${token}` });
      assert.equal(res.status, 401, `${what}: ${res.text}`);
    }
    assert.equal((await whoami({ authorization: `Bearer ${good}` })).status, 200, 'the genuine token passes');
  });

  test('client assertions: signed by the registered key, used once', async () => {
    const { creds, dataDir } = await registered();
    const key = readFileSync(join(dataDir, 'identity', 'key.pem'), 'utf8');
    const now = Math.floor(Date.now() / 1000);
    const { createPrivateKey } = await import('node:crypto');
    const assertion = async (privateKey: ReturnType<typeof createPrivateKey>, lifetime = 60) =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'ES256' })
        .setIssuer(creds.identity.id)
        .setSubject(creds.identity.id)
        .setAudience(`${publicUrl}/v1/token`)
        .setIssuedAt(now)
        .setExpirationTime(now + lifetime)
        .setJti(randomBytes(8).toString('hex'))
        .sign(privateKey);
    const ask = (a: string) =>
      call(`${publicUrl}/v1/token`, {
        body: {
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: a,
        },
        tls: { ca: lbCa.cert },
      });
    const once = await assertion(createPrivateKey(key));
    assert.equal((await ask(once)).status, 200);
    const replay = await ask(once);
    assert.equal(replay.status, 401);
    assert.equal(replay.body.code, 'client_assertion_invalid');
    const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    assert.equal((await ask(await assertion(stranger))).status, 401, 'signed by another key');
    assert.equal((await ask(await assertion(createPrivateKey(key), 3600))).status, 401, 'lives too long');
  });

  test('a deleted gateway: its valid JWT is refused at the next call and it gets no new token', async () => {
    const { creds, dataDir } = await registered();
    const headers = await creds.headers(audiences.controlPlane);
    assert.equal((await whoami(headers)).status, 200);
    // Deleted by another control plane (straight in the store): refused once the 5 s cache lapses.
    await cp.store.recordDelete(gatewaysCollection, creds.identity.id);
    let status = 200;
    for (let i = 0; i < 40 && status === 200; i++) {
      await new Promise((r) => setTimeout(r, 250));
      status = (await whoami(headers)).status;
    }
    assert.equal(status, 401);
    const restarted = await loadGatewayCredentials(dataDir);
    assert.ok(restarted);
    after(() => restarted.close());
    await rejectsWith(restarted.headers(audiences.controlPlane), 'client_assertion_invalid');
  });
});

/** Same header (kid) and claims as `genuine`, signed with a key the control plane never had. */
async function forged(claims: Record<string, unknown>, genuine: string): Promise<string> {
  const header = JSON.parse(Buffer.from(genuine.split('.')[0]!, 'base64url').toString()) as { kid: string };
  const now = Math.floor(Date.now() / 1000);
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: header.kid, typ: 'JWT' })
    .setIssuedAt(now)
    .setExpirationTime(now + 60)
    .sign(privateKey);
}

// ---------------------------------------------------------------------------------------------

const pg = await sharedPostgres();

describe('two control planes on one PostgreSQL', { skip: pg.ok ? false : pg.skip }, () => {
  const schema = uniqueSchema('security');
  const stores: ResourceStore[] = [];
  let a: SecuredControlPlane;
  let b: SecuredControlPlane;

  before(async () => {
    const [storeA, storeB] = await Promise.all([
      openPostgresStore({ url: testPgUrl, schema, poolSize: 3 }),
      openPostgresStore({ url: testPgUrl, schema, poolSize: 3 }),
    ]);
    stores.push(storeA!, storeB!);
    // Started together: they race to create the CA and the first signing key. One public URL
    // (the load balancer in front of both), so one issuer.
    const publicUrl = () => 'https://cp.ha.test';
    [a, b] = await Promise.all([
      startSecuredControlPlane({ spec: { mode: 'jwt' }, store: storeA, publicUrl }),
      startSecuredControlPlane({ spec: { mode: 'jwt' }, store: storeB, publicUrl }),
    ]);
  });
  after(async () => {
    await a?.close();
    await b?.close();
    for (const s of stores) await s.close();
    await dropSchemas([schema]);
  });

  test('they share one CA and one signing key', async () => {
    assert.equal(a.module.caCertificate, b.module.caCertificate);
    const kids = (cp: SecuredControlPlane) => cp.module.keyRing.jwks().keys.map((k) => k.kid);
    assert.deepEqual(kids(a), kids(b));
    assert.equal(kids(a).length, 1);
  });

  test('one single-use token, registrations at both at once: exactly one succeeds', async () => {
    const { token } = await createToken(a, { gateway: 'ha' });
    const attempt = (cp: SecuredControlPlane) =>
      registerGateway({ controlPlaneUrl: cp.url, bootstrapToken: token, dataDir: tempDir('gh-gw-') });
    const results = await Promise.allSettled([attempt(a), attempt(b)]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results));
    for (const r of results) if (r.status === 'fulfilled') r.value.close();
  });

  test('a token from one control plane is accepted by the other', async () => {
    const { token } = await createToken(a, { gateway: 'ha' });
    const creds = await registerGateway({
      controlPlaneUrl: a.url,
      bootstrapToken: token,
      dataDir: tempDir('gh-gw-'),
    });
    after(() => creds.close());
    const res = await call(`${b.url}/v1/identity`, { headers: await creds.headers(audiences.controlPlane) });
    assert.equal(res.status, 200, res.text);
    assert.equal((res.body.identity as { id: string }).id, creds.identity.id);
  });
});
