import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fakeCertificate, fakeContext } from '../../../../test/helpers/fake-context.ts';
import type { CertificateIdentity } from '../../../identity/certificate.ts';
import type { PolicyDeps } from '../../types.ts';
import { certificates } from './policy.ts';

describe('authorize.certificates', () => {
  const policy = certificates.compile(
    [{ spiffeId: 'spiffe://corp.test/ns/*/sa/orders' }, { dnsName: '*.ops.corp.test' }],
    {} as PolicyDeps,
  );
  const decide = (peerCertificate: CertificateIdentity | null, method = 'jwt') => {
    const verdict = policy.handle(fakeContext({ peerCertificate, identity: { method, subject: 's' } }));
    assert.ok(!(verdict instanceof Promise));
    return verdict.kind === 'respond' ? `${verdict.code}: ${verdict.detail}` : verdict.kind;
  };

  test('the client certificate must match one entry', () => {
    assert.equal(decide(fakeCertificate({ spiffeId: 'spiffe://corp.test/ns/shop/sa/orders' })), 'continue');
    assert.equal(decide(fakeCertificate({ dnsNames: ['a.ops.corp.test'] })), 'continue');
    assert.match(decide(fakeCertificate({ dnsNames: ['a.b.ops.corp.test'] })), /^forbidden: .*not one/);
  });

  test('no client certificate, or no authenticated caller, is refused', () => {
    assert.match(decide(null), /^forbidden: .*requires a verified client certificate/);
    assert.match(decide(fakeCertificate({ dnsNames: ['a.ops.corp.test'] }), 'noAuth'), /^forbidden/);
  });
});
