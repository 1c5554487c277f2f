// HTTPS listeners end to end: a real `gatehouse gateway` process on loopback, certificates made
// by the test with openssl, real TLS clients. Covers SNI certificate selection, client
// certificates (require / optional), certificate rotation on SIGHUP and config validation.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';
import { join, relative } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { certificateIdentity } from '../src/identity/certificate.ts';
import { makeCA, type Pem, type TestCA, tmpDir } from './helpers/certs.ts';
import { freePort, type RunningProcess, runCli, startGateway, writeConfig } from './helpers/process.ts';
import { startEchoUpstream } from './helpers/upstream.ts';

type ClientAuthMode = 'none' | 'optional' | 'require';

interface Fixture {
  dir: string;
  ca: TestCA;
  /** A CA the gateway does not trust. */
  rogue: TestCA;
  /** Server certificates, in config order: the default one first. */
  defaultCert: Pem;
  aCert: Pem;
  bCert: Pem;
  clientCert: Pem;
  rogueClientCert: Pem;
  expiredClientCert: Pem;
  proc: RunningProcess;
  port: number;
}

/** Certificates, an echo upstream and a gateway with one https listener; all cleaned up after `t`. */
async function setup(t: TestContext, mode: ClientAuthMode): Promise<Fixture> {
  // Undone last-in first-out: the gateway stops before its upstream and its files go.
  const cleanups: Array<() => unknown> = [];
  t.after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
  const dir = tmpDir('gatehouse-tls-');
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  // Certificates live in a subdirectory; the config names them relative to itself.
  const certs = join(dir, 'certs');
  mkdirSync(certs);
  const ca = makeCA(certs, 'Gatehouse TLS Test Root');
  const rogue = makeCA(certs, 'Rogue Root');
  const defaultCert = ca.issue({ cn: 'default.test', dns: ['default.test'], ips: ['127.0.0.1'] });
  const aCert = ca.issue({ cn: 'a.test', dns: ['a.test'] });
  const bCert = ca.issue({ cn: 'wildcard b.test', dns: ['*.b.test'] });
  const clientCert = ca.issue({ cn: 'orders', client: true });
  const rogueClientCert = rogue.issue({ cn: 'orders', client: true });
  const expiredClientCert = ca.issue({ cn: 'stale', client: true, notBefore: 'expired' });

  const upstream = await startEchoUpstream();
  cleanups.push(() => upstream.close());
  const port = await freePort();
  const rel = (p: string) => JSON.stringify(relative(dir, p));
  const clientAuth =
    mode === 'none' ? '' : `\n        clientAuth: { mode: ${mode}, caCerts: ${rel(ca.certPath)} }`;
  const config = writeConfig(
    dir,
    'gateway.yaml',
    `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: tls }
spec:
  listeners:
    - name: secure
      address: 127.0.0.1
      port: ${port}
      protocol: https
      tls:
        certificates:
          - { cert: ${rel(defaultCert.certPath)}, key: ${rel(defaultCert.keyPath)} }
          - { cert: ${rel(aCert.certPath)}, key: ${rel(aCert.keyPath)} }
          - { cert: ${rel(bCert.certPath)}, key: ${rel(bCert.keyPath)} }${clientAuth}
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: echo }
spec:
  targets: [{ url: ${JSON.stringify(upstream.url)} }]
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: echo }
spec:
  gateway: tls
  upstream: echo
  rules:
    - path: /echo/{**}
      authenticate: [{ noAuth: {} }]
`,
  );
  // --no-watch: only the SIGHUP of the rotation test reloads.
  const proc = await startGateway([config], ['--no-watch']);
  cleanups.push(() => proc.stop());
  return {
    dir,
    ca,
    rogue,
    defaultCert,
    aCert,
    bCert,
    clientCert,
    rogueClientCert,
    expiredClientCert,
    proc,
    port,
  };
}

interface Attempt {
  /** Set when an HTTP response arrived. */
  response?: {
    status: number;
    headers: IncomingHttpHeaders;
    body: string;
    /** The server certificate of the connection, read on the client side. */
    cert: X509Certificate | undefined;
  };
  /** Set when the connection failed (handshake refused, reset) before any response. */
  error?: NodeJS.ErrnoException;
}

interface RequestOptions {
  /** SNI sent; omitted: none (the client connects to an IP address). */
  servername?: string;
  /** Certificate authority the client trusts. */
  ca: string;
  /** Client certificate to present. */
  client?: Pem;
  /** Accept a server certificate whose names do not match `servername` (still chain-verified). */
  anyName?: boolean;
}

/** One GET over a fresh TLS connection (no agent, no session reuse) to 127.0.0.1. */
function get(port: number, opts: RequestOptions): Promise<Attempt> {
  return new Promise((resolve) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path: '/echo/hello',
      method: 'GET',
      headers: { host: opts.servername ?? '127.0.0.1', connection: 'close' },
      // '' sends no SNI; name checks then use the IP address against the IP SANs.
      servername: opts.servername ?? '',
      ca: opts.ca,
      ...(opts.client ? { cert: opts.client.cert, key: opts.client.key } : {}),
      ...(opts.anyName ? { checkServerIdentity: () => undefined } : {}),
      agent: false,
    });
    req.on('response', (res) => {
      const cert = (res.socket as TLSSocket).getPeerX509Certificate();
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolve({
          response: {
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
            cert,
          },
        });
      });
      res.on('error', (error) => resolve({ error }));
    });
    req.on('error', (error) => resolve({ error }));
    req.end();
  });
}

function assertProxied(attempt: Attempt, what: string): NonNullable<Attempt['response']> {
  assert.equal(attempt.error, undefined, `${what}: ${attempt.error?.message}`);
  const res = attempt.response!;
  assert.equal(res.status, 200, `${what}: ${res.body}`);
  // The echo upstream answers with what it received.
  assert.equal((JSON.parse(res.body) as { url: string }).url, '/echo/hello', what);
  return res;
}

function assertRefused(attempt: Attempt, what: string): void {
  assert.equal(attempt.response, undefined, `${what}: got HTTP ${attempt.response?.status}`);
  assert.ok(attempt.error, what);
}

function assertServedBy(res: NonNullable<Attempt['response']>, pem: Pem, what: string): void {
  assert.ok(res.cert, `${what}: no peer certificate`);
  const expected = certificateIdentity(new X509Certificate(pem.cert));
  const seen = certificateIdentity(res.cert);
  assert.equal(seen.subject, expected.subject, what);
  assert.deepEqual(seen.dnsNames, expected.dnsNames, what);
  assert.equal(seen.serialNumber, expected.serialNumber, what);
}

describe('https listener', () => {
  it('serves the certificate matching the SNI name and proxies the request', async (t) => {
    const f = await setup(t, 'none');
    const ca = f.ca.cert;

    const a = assertProxied(await get(f.port, { servername: 'a.test', ca }), 'SNI a.test');
    assertServedBy(a, f.aCert, 'SNI a.test');
    assert.deepEqual(certificateIdentity(a.cert!).dnsNames, ['a.test']);

    const b = assertProxied(await get(f.port, { servername: 'x.b.test', ca }), 'SNI x.b.test');
    assertServedBy(b, f.bCert, 'SNI x.b.test');
    assert.deepEqual(certificateIdentity(b.cert!).dnsNames, ['*.b.test']);

    // Names are matched case-insensitively.
    const upper = assertProxied(await get(f.port, { servername: 'A.TEST', ca }), 'SNI A.TEST');
    assertServedBy(upper, f.aCert, 'SNI A.TEST');

    // The wildcard covers one label only: neither b.test itself nor y.x.b.test.
    for (const name of ['unknown.test', 'b.test', 'y.x.b.test']) {
      const res = assertProxied(await get(f.port, { servername: name, ca, anyName: true }), `SNI ${name}`);
      assertServedBy(res, f.defaultCert, `SNI ${name}`);
    }
    // Without anyName the client rejects the default certificate for an unknown name.
    const strict = await get(f.port, { servername: 'unknown.test', ca });
    assertRefused(strict, 'SNI unknown.test, name checked');
    assert.equal(strict.error?.code, 'ERR_TLS_CERT_ALTNAME_INVALID');

    const none = assertProxied(await get(f.port, { ca }), 'no SNI');
    assertServedBy(none, f.defaultCert, 'no SNI');

    // A client that does not trust the test CA refuses the gateway.
    assertRefused(await get(f.port, { servername: 'a.test', ca: f.rogue.cert }), 'untrusted server CA');
  });

  it('clientAuth require: refuses the handshake without a certificate that verifies', async (t) => {
    const f = await setup(t, 'require');
    const ca = f.ca.cert;
    // a.test is served from a context chosen by SNI, the no-SNI case from the server's own one.
    for (const servername of ['a.test', undefined]) {
      const where = `SNI ${servername ?? '(none)'}`;
      assertRefused(await get(f.port, { servername, ca }), `${where}, no client cert`);
      assertRefused(
        await get(f.port, { servername, ca, client: f.rogueClientCert }),
        `${where}, client cert from another CA`,
      );
      assertRefused(
        await get(f.port, { servername, ca, client: f.expiredClientCert }),
        `${where}, expired client cert`,
      );
      const ok = assertProxied(await get(f.port, { servername, ca, client: f.clientCert }), where);
      assertServedBy(ok, servername ? f.aCert : f.defaultCert, where);
    }
    assert.equal(f.proc.child.exitCode, null, 'the gateway is still running');
  });

  it('clientAuth optional: no certificate passes, one that does not verify gets 403', async (t) => {
    const f = await setup(t, 'optional');
    const ca = f.ca.cert;
    for (const servername of ['a.test', undefined]) {
      const where = `SNI ${servername ?? '(none)'}`;
      assertProxied(await get(f.port, { servername, ca }), `${where}, no client cert`);
      assertProxied(
        await get(f.port, { servername, ca, client: f.clientCert }),
        `${where}, valid client cert`,
      );
      for (const [what, client] of [
        ['client cert from another CA', f.rogueClientCert],
        ['expired client cert', f.expiredClientCert],
      ] as const) {
        const attempt = await get(f.port, { servername, ca, client });
        assert.equal(attempt.error, undefined, `${where}, ${what}: ${attempt.error?.message}`);
        const res = attempt.response!;
        assert.equal(res.status, 403, `${where}, ${what}`);
        assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
        const body = JSON.parse(res.body) as { code: string; status: number };
        assert.equal(body.code, 'client_certificate_invalid', `${where}, ${what}`);
        assert.equal(body.status, 403);
      }
    }
  });

  it('rotates certificates on SIGHUP without a restart', async (t) => {
    const f = await setup(t, 'none');
    const ca = f.ca.cert;
    const pid = f.proc.child.pid;
    const before = assertProxied(await get(f.port, { servername: 'a.test', ca }), 'before');
    assertServedBy(before, f.aCert, 'before');
    const beforeDefault = assertProxied(await get(f.port, { ca }), 'before, no SNI');
    assertServedBy(beforeDefault, f.defaultCert, 'before, no SNI');

    // New certificates (new keys, new serials) written over the files the config names.
    const nextA = f.ca.issue({ cn: 'a.test', dns: ['a.test'] });
    const nextDefault = f.ca.issue({ cn: 'default.test', dns: ['default.test'], ips: ['127.0.0.1'] });
    for (const [next, current] of [
      [nextA, f.aCert],
      [nextDefault, f.defaultCert],
    ] as const) {
      assert.notEqual(
        certificateIdentity(new X509Certificate(next.cert)).serialNumber,
        certificateIdentity(new X509Certificate(current.cert)).serialNumber,
      );
      writeFileSync(current.keyPath, next.key);
      writeFileSync(current.certPath, next.cert);
    }
    assert.equal(readFileSync(f.aCert.certPath, 'utf8'), nextA.cert);

    f.proc.child.kill('SIGHUP');
    const line = await f.proc.waitFor(/"msg":"config reloaded"/);
    const reloaded = JSON.parse(line) as { from: string; to: string };
    // Only file contents changed: the plan version (a hash of the resources) stays the same, and
    // the reload still applies.
    assert.equal(reloaded.to, reloaded.from);

    const after = assertProxied(await get(f.port, { servername: 'a.test', ca }), 'after');
    assertServedBy(after, { ...f.aCert, cert: nextA.cert }, 'after');
    const afterDefault = assertProxied(await get(f.port, { ca }), 'after, no SNI');
    assertServedBy(afterDefault, { ...f.defaultCert, cert: nextDefault.cert }, 'after, no SNI');
    // The wildcard certificate did not change.
    const b = assertProxied(await get(f.port, { servername: 'x.b.test', ca }), 'after, x.b.test');
    assertServedBy(b, f.bCert, 'after, x.b.test');

    assert.equal(f.proc.child.pid, pid);
    assert.equal(f.proc.child.exitCode, null, 'no restart');
    assert.doesNotMatch(f.proc.stdout(), /config rejected/);

    // A broken certificate file is refused on reload; the rotated certificate keeps serving.
    writeFileSync(f.aCert.certPath, 'not a certificate\n');
    f.proc.child.kill('SIGHUP');
    const rejected = await f.proc.waitFor(/"msg":"config rejected/);
    assert.match(rejected, /spec\.listeners\[0\]\.tls\.certificates\[1\]/);
    const kept = assertProxied(await get(f.port, { servername: 'a.test', ca }), 'after a rejected reload');
    assertServedBy(kept, { ...f.aCert, cert: nextA.cert }, 'after a rejected reload');
  });
});

describe('gatehouse validate', () => {
  it('reports an https listener without tls and a missing certificate file with file:line and path', async (t) => {
    const dir = tmpDir('gatehouse-tls-validate-');
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'present.key'), 'not read: the cert is missing\n');
    const yaml = `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata:
  name: broken
spec:
  listeners:
    - name: no-tls
      port: 8443
      protocol: https
    - name: missing-cert
      port: 8444
      protocol: https
      tls:
        certificates:
          - cert: missing.crt
            key: present.key
`;
    const file = writeConfig(dir, 'gateway.yaml', yaml);
    const lines = yaml.split('\n');
    const lineOf = (text: string) => lines.findIndex((l) => l.includes(text)) + 1;

    const proc = runCli(['validate', dir]);
    t.after(() => proc.stop());
    const { code } = await proc.exited;
    const stderr = proc.stderr();
    assert.equal(code, 1, stderr);
    // tls is absent: the location falls back to the listener itself.
    assert.match(
      stderr,
      new RegExp(
        `^${regexEscape(file)}:${lineOf('- name: no-tls')}:\\d+: spec\\.listeners\\[0\\]\\.tls: required for protocol https$`,
        'm',
      ),
    );
    assert.match(
      stderr,
      new RegExp(
        `^${regexEscape(file)}:${lineOf('cert: missing.crt')}:\\d+: spec\\.listeners\\[1\\]\\.tls\\.certificates\\[0\\]\\.cert: cannot read .*missing\\.crt.*ENOENT`,
        'm',
      ),
    );
    assert.match(stderr, /^2 problem\(s\) found$/m);
    assert.equal(proc.stdout(), '');
  });
});

function regexEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
