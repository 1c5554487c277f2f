import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { openSqliteStore } from '../store/sqlite.ts';
import { loadOrCreateCa } from './ca.ts';

describe('the control plane CA', async () => {
  const store = await openSqliteStore({ path: ':memory:' });
  after(() => store.close());

  test('created once even when two control planes race; kept in the store', async () => {
    const [a, b] = await Promise.all([loadOrCreateCa(store, Date.now), loadOrCreateCa(store, Date.now)]);
    assert.equal(a.certificatePem, b.certificatePem);
    const again = await loadOrCreateCa(store, Date.now);
    assert.equal(again.certificatePem, a.certificatePem);
    const ca = new X509Certificate(a.certificatePem);
    assert.equal(ca.ca, true);
  });

  test('a gateway certificate: SPIFFE URI SAN, clientAuth, its lifetime, signed by the CA', async () => {
    const ca = await loadOrCreateCa(store, Date.now);
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const issued = await ca.issueGatewayCertificate({
      identity: { id: 'gw_1', name: 'edge', namespace: 'shop', labels: {} },
      publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }) as string,
      lifetimeMs: 3_600_000,
    });
    const cert = new X509Certificate(issued.certificatePem);
    assert.equal(cert.subjectAltName, 'URI:spiffe://gatehouse/ns/shop/gateway/edge/gw_1');
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.equal(cert.ca, false);
    assert.ok(cert.verify(new X509Certificate(ca.certificatePem).publicKey));
    assert.equal(cert.serialNumber, issued.serialNumber);
    assert.ok(cert.publicKey.equals(publicKey));
    const lifetime = Date.parse(cert.validTo) - Date.parse(cert.validFrom);
    assert.ok(lifetime >= 3_600_000 && lifetime <= 3_600_000 + 6 * 60_000, String(lifetime));
  });

  test('only EC P-256 public keys are certified', async () => {
    const ca = await loadOrCreateCa(store, Date.now);
    const identity = { id: 'gw_1', name: 'edge', namespace: 'shop', labels: {} };
    for (const key of [
      generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey,
      generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey,
    ])
      await assert.rejects(
        ca.issueGatewayCertificate({
          identity,
          publicKeyPem: key.export({ type: 'spki', format: 'pem' }) as string,
          lifetimeMs: 1000,
        }),
        /P-256/,
      );
    await assert.rejects(
      ca.issueGatewayCertificate({ identity, publicKeyPem: 'nope', lifetimeMs: 1000 }),
      /PEM/,
    );
  });

  test('a server certificate for the listener: DNS and IP SANs, serverAuth, a fresh key', async () => {
    const ca = await loadOrCreateCa(store, Date.now);
    const { cert, key } = await ca.serverCredentials(['cp.example.test', '127.0.0.1']);
    const x = new X509Certificate(cert);
    assert.equal(x.subjectAltName, 'DNS:cp.example.test, IP Address:127.0.0.1');
    assert.deepEqual(x.keyUsage, ['1.3.6.1.5.5.7.3.1']);
    assert.ok(x.checkHost('cp.example.test'));
    assert.match(key, /BEGIN PRIVATE KEY/);
  });
});
