import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { basename } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { type CertificateIdentity, peerIdentity } from '../../src/identity/certificate.ts';
import { makeCA, type Pem, type TestCA, tmpDir } from './certs.ts';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const ORDERS = 'spiffe://corp.test/ns/default/sa/orders';

let dir: string;
let ca: TestCA;
let server: Pem;
let client: Pem;
let expired: Pem;
let setupMs: number;

before(() => {
  dir = tmpDir('gatehouse-certs-');
  const t0 = performance.now();
  ca = makeCA(dir, 'Corp Root');
  server = ca.issue({ cn: 'localhost', dns: ['localhost'], ips: ['127.0.0.1'], server: true });
  client = ca.issue({ cn: 'orders', o: 'Corp', dns: ['orders.corp.test'], uris: [ORDERS], client: true });
  expired = ca.issue({ cn: 'stale', dns: ['stale.corp.test'], client: true, notBefore: 'expired' });
  setupMs = performance.now() - t0;
});

after(() => rmSync(dir, { recursive: true, force: true }));

const x509 = (p: Pem) => new X509Certificate(p.cert);

function opensslText(certPath: string, ext: string): string {
  return execFileSync('openssl', ['x509', '-in', certPath, '-noout', '-ext', ext], { encoding: 'utf8' });
}

describe('test certificates', () => {
  it('makes a CA and three leaves quickly', (t) => {
    t.diagnostic(`makeCA + 3 issues: ${setupMs.toFixed(1)} ms`);
    assert.ok(setupMs < 5000, `took ${setupMs} ms`);
  });

  it('makes a self-signed EC P-256 CA with CA:true and keyCertSign', () => {
    const c = x509(ca);
    assert.equal(ca.name, 'Corp Root');
    assert.equal(c.ca, true);
    assert.ok(c.checkIssued(c));
    assert.ok(c.verify(c.publicKey));
    assert.equal(c.publicKey.asymmetricKeyType, 'ec');
    assert.equal(c.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.ok(c.checkPrivateKey(createPrivateKey(ca.key)));
    const text = opensslText(ca.certPath, 'basicConstraints,keyUsage');
    assert.match(text, /CA:TRUE/);
    assert.match(text, /Certificate Sign/);
    assert.ok(c.validToDate.getTime() > Date.now());
  });

  it('issues a server certificate for localhost / 127.0.0.1 signed by the CA', () => {
    const c = x509(server);
    const caCert = x509(ca);
    assert.equal(c.ca, false);
    assert.ok(c.checkIssued(caCert));
    assert.ok(c.verify(caCert.publicKey));
    assert.ok(!c.verify(x509(client).publicKey));
    assert.ok(c.checkPrivateKey(createPrivateKey(server.key)));
    assert.equal(c.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(c.checkHost('localhost'), 'localhost');
    assert.equal(c.checkIP('127.0.0.1'), '127.0.0.1');
    assert.deepEqual(c.keyUsage, [SERVER_AUTH]);
    assert.ok(c.validFromDate.getTime() <= Date.now() && c.validToDate.getTime() > Date.now());
    assert.match(opensslText(server.certPath, 'basicConstraints'), /CA:FALSE/);
  });

  it('issues a client certificate with a SPIFFE URI SAN', () => {
    const c = x509(client);
    assert.ok(c.checkIssued(x509(ca)));
    assert.ok(c.verify(x509(ca).publicKey));
    assert.deepEqual(c.keyUsage, [CLIENT_AUTH]);
    assert.equal(c.subjectAltName, `DNS:orders.corp.test, URI:${ORDERS}`);
    assert.equal(c.subject, 'O=Corp\nCN=orders');
  });

  it('issues an already-expired certificate', () => {
    const c = x509(expired);
    assert.ok(c.checkIssued(x509(ca)));
    assert.ok(c.verify(x509(ca).publicKey));
    assert.ok(c.validToDate.getTime() < Date.now(), `validTo ${c.validTo} is not in the past`);
    assert.ok(c.validFromDate.getTime() < c.validToDate.getTime());
    assert.ok(c.checkPrivateKey(createPrivateKey(expired.key)));
    assert.deepEqual(c.keyUsage, [CLIENT_AUTH]);
    assert.equal(c.subjectAltName, 'DNS:stale.corp.test');
  });

  it('uses unique serials and file names derived from the cn', () => {
    const again = ca.issue({ cn: 'orders', client: true, server: true });
    const serials = [ca, server, client, expired, again].map((p) => x509(p).serialNumber);
    assert.equal(new Set(serials).size, serials.length);
    assert.equal(basename(client.certPath), 'orders.crt');
    assert.equal(basename(client.keyPath), 'orders.key');
    assert.equal(basename(again.certPath), 'orders-2.crt');
    assert.ok(existsSync(again.certPath) && existsSync(again.keyPath));
    assert.deepEqual(x509(again).keyUsage?.sort(), [SERVER_AUTH, CLIENT_AUTH]);
    assert.ok(x509(again).serialNumber !== x509(client).serialNumber);
  });

  it('keeps different CAs apart', () => {
    const other = makeCA(dir, 'Other Root');
    const leaf = other.issue({ cn: 'intruder', client: true });
    assert.ok(x509(leaf).checkIssued(x509(other)));
    assert.ok(!x509(leaf).checkIssued(x509(ca)));
    assert.ok(!x509(leaf).verify(x509(ca).publicKey));
  });
});

interface Handshake {
  authorized: boolean;
  authorizationError: string | null;
  identity: CertificateIdentity | null;
}

/** One TLS connection over 127.0.0.1; reports what the server side saw. */
async function handshake(clientPem: Pem | null): Promise<Handshake> {
  const seen = Promise.withResolvers<Handshake>();
  const srv = tls.createServer(
    { key: server.key, cert: server.cert, ca: [ca.cert], requestCert: true, rejectUnauthorized: false },
    (socket) => {
      seen.resolve({
        authorized: socket.authorized,
        authorizationError: socket.authorizationError ? String(socket.authorizationError) : null,
        identity: peerIdentity(socket),
      });
      socket.end();
    },
  );
  srv.on('tlsClientError', (err) => seen.reject(err));
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as { port: number };
  const conn = tls.connect({
    host: '127.0.0.1',
    port,
    servername: 'localhost',
    ca: [ca.cert],
    ...(clientPem ? { cert: clientPem.cert, key: clientPem.key } : {}),
  });
  conn.on('error', (err) => seen.reject(err));
  try {
    const result = await seen.promise;
    // The client verified the server certificate (localhost, signed by the CA).
    assert.equal(conn.authorized, true, String(conn.authorizationError));
    return result;
  } finally {
    conn.destroy();
    await new Promise((resolve) => srv.close(resolve));
  }
}

describe('TLS handshake with test certificates', () => {
  it('exposes the verified client identity on the server side', async () => {
    const seen = await handshake(client);
    assert.equal(seen.authorized, true, String(seen.authorizationError));
    assert.ok(seen.identity);
    assert.equal(seen.identity.spiffeId, ORDERS);
    assert.deepEqual(seen.identity.uris, [ORDERS]);
    assert.deepEqual(seen.identity.dnsNames, ['orders.corp.test']);
    assert.equal(seen.identity.commonName, 'orders');
    assert.equal(seen.identity.subject, 'CN=orders,O=Corp');
    assert.equal(seen.identity.issuer, 'CN=Corp Root,O=Gatehouse Test');
    assert.equal(seen.identity.fingerprint256, x509(client).fingerprint256);
    assert.equal(seen.identity.serialNumber, x509(client).serialNumber);
  });

  it('gives no identity for a client certificate from a different CA', async () => {
    const other = makeCA(dir, 'Rogue Root');
    const rogue = other.issue({ cn: 'orders', uris: [ORDERS], client: true });
    const seen = await handshake(rogue);
    assert.equal(seen.authorized, false);
    assert.ok(seen.authorizationError);
    assert.equal(seen.identity, null);
  });

  it('gives no identity for an expired client certificate', async () => {
    const seen = await handshake(expired);
    assert.equal(seen.authorized, false);
    assert.equal(seen.authorizationError, 'CERT_HAS_EXPIRED');
    assert.equal(seen.identity, null);
  });

  it('gives no identity when the client presents no certificate', async () => {
    const seen = await handshake(null);
    assert.equal(seen.authorized, false);
    assert.equal(seen.identity, null);
  });
});
