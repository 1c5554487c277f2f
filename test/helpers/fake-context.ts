// A RequestContext built by hand for unit tests of policies: no listener, no plan, no routing.
// Only what policies read is meaningful; `plan` and `rule` are empty stand-ins.

import { X509Certificate } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Identity, RequestContext } from '../../src/gateway/context.ts';
import { type CertificateIdentity, certificateIdentity } from '../../src/identity/certificate.ts';
import type { CompiledRule, Plan } from '../../src/plan/types.ts';

export interface FakeRequest {
  method?: string;
  path?: string;
  /** Raw query string without `?`. */
  query?: string;
  params?: Record<string, string>;
  /** Lowercase names, as Node gives them. */
  headers?: IncomingHttpHeaders;
  peerCertificate?: CertificateIdentity | null;
  identity?: Identity | null;
}

export function fakeContext(request: FakeRequest = {}): RequestContext {
  return {
    id: 'test-request',
    plan: {} as Plan,
    rule: {} as CompiledRule,
    method: request.method ?? 'GET',
    host: 'api.test',
    path: request.path ?? '/',
    query: request.query ?? '',
    params: request.params ?? {},
    headers: request.headers ?? {},
    client: { address: '127.0.0.1', peerAddress: '127.0.0.1', trustedPeer: false },
    listener: { name: 'test', protocol: request.peerCertificate ? 'https' : 'http' },
    peerCertificate: request.peerCertificate ?? null,
    identity: request.identity ?? null,
    upstreamHeaders: null,
    traceparent: undefined,
  };
}

/** The identity of a PEM certificate, as the listener would put it on the context. */
export function certificateFromPem(pem: string): CertificateIdentity {
  return certificateIdentity(new X509Certificate(pem));
}

/** A certificate identity written by hand: only the names a test cares about. */
export function fakeCertificate(names: Partial<CertificateIdentity> = {}): CertificateIdentity {
  return {
    subject: names.commonName ? `CN=${names.commonName}` : '',
    commonName: null,
    dnsNames: [],
    uris: names.spiffeId ? [names.spiffeId] : [],
    spiffeId: null,
    ips: [],
    emails: [],
    serialNumber: '01',
    fingerprint256: 'AA:BB',
    notAfter: '2099-01-01T00:00:00.000Z',
    issuer: 'CN=Test CA',
    ...names,
  };
}
