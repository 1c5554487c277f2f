import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fakeCertificate, fakeContext } from '../../../../test/helpers/fake-context.ts';
import type { PolicyDeps } from '../../types.ts';
import { mtls } from './policy.ts';

const policy = mtls.compile({}, {} as PolicyDeps);

describe('mtls', () => {
  test('steps aside without a verified client certificate', () => {
    const ctx = fakeContext();
    assert.deepEqual(policy.handle(ctx), { kind: 'skip' });
    assert.equal(ctx.identity, null);
  });

  test('names the caller by the SPIFFE id first', () => {
    const cert = fakeCertificate({ commonName: 'orders', spiffeId: 'spiffe://corp.test/ns/shop/sa/orders' });
    const ctx = fakeContext({ peerCertificate: cert });
    assert.deepEqual(policy.handle(ctx), { kind: 'continue' });
    assert.deepEqual(ctx.identity, {
      method: 'mtls',
      subject: 'spiffe://corp.test/ns/shop/sa/orders',
      certificate: cert,
    });
  });

  test('falls back to the subject CN, then to the first DNS name', () => {
    const byCn = fakeContext({ peerCertificate: fakeCertificate({ commonName: 'billing' }) });
    policy.handle(byCn);
    assert.equal(byCn.identity?.subject, 'billing');
    const byDns = fakeContext({ peerCertificate: fakeCertificate({ dnsNames: ['svc.corp.test'] }) });
    policy.handle(byDns);
    assert.equal(byDns.identity?.subject, 'svc.corp.test');
  });

  test('refuses a verified certificate that names no one', () => {
    const verdict = policy.handle(fakeContext({ peerCertificate: fakeCertificate() }));
    assert.equal(verdict instanceof Promise ? null : verdict.kind, 'respond');
  });
});
