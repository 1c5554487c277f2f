import Type from 'typebox';
import type { CertificateIdentity } from '../../../identity/certificate.ts';
import { CONTINUE, type PolicyFactory, respond, SKIP } from '../../types.ts';

/** Who a certificate names: its SPIFFE id, else its subject CN, else its first DNS name. */
export function certificateSubject(cert: CertificateIdentity): string | null {
  return cert.spiffeId ?? cert.commonName ?? cert.dnsNames[0] ?? null;
}

/** The verified client certificate of an mTLS listener: `- mtls: {}`. */
export const mtls: PolicyFactory<Record<string, never>> = {
  name: 'mtls',
  stage: 'authenticate',
  schema: Type.Object(
    {},
    {
      additionalProperties: false,
      description:
        'The client certificate verified by the listener (`tls.clientAuth`). The subject is its SPIFFE id, ' +
        'else its subject CN, else its first DNS name. No verified certificate: steps aside.',
    },
  ),
  compile() {
    return {
      name: 'mtls',
      handle(ctx) {
        const certificate = ctx.peerCertificate;
        // Only certificates the TLS layer verified reach the context; anything else is absent.
        if (certificate === null) return SKIP;
        const subject = certificateSubject(certificate);
        if (subject === null)
          return respond('client_certificate_invalid', 'the client certificate names no subject');
        ctx.identity = { method: 'mtls', subject, certificate };
        return CONTINUE;
      },
    };
  },
};
