import { createPublicKey, randomBytes, webcrypto } from 'node:crypto';
// @peculiar/x509 loads tsyringe, which needs a Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { ResourceStore } from '../store/types.ts';
import { securityCollection } from './keys.ts';
import { gatewaySpiffeId } from './spiffe.ts';
import type { GatewayIdentity } from './types.ts';

x509.cryptoProvider.set(webcrypto as never);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export const caRecordId = 'ca';

/** The CA as kept in the store: shared by every control plane on one database. */
interface StoredCa {
  certificatePem: string;
  /** PKCS#8 PEM. Stays in the store; only the certificate is handed out. */
  privateKeyPem: string;
  createdAt: string;
}

export interface IssuedCertificate {
  certificatePem: string;
  /** Upper-case hex without leading zeros, as Node's getPeerCertificate() gives it. */
  serialNumber: string;
  notBefore: string;
  notAfter: string;
}

export interface ControlPlaneCa {
  readonly certificatePem: string;
  /** A client certificate for a registered gateway: SAN URI spiffe://gatehouse/ns/<ns>/gateway/<name>/<id>, clientAuth. */
  issueGatewayCertificate(options: {
    identity: GatewayIdentity;
    publicKeyPem: string;
    lifetimeMs: number;
  }): Promise<IssuedCertificate>;
  /** A server certificate and fresh key for the control plane's own TLS listener. */
  serverCredentials(
    hostnames: readonly string[],
    lifetimeMs?: number,
  ): Promise<{ cert: string; key: string }>;
}

const ecdsa = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const caLifetimeMs = 10 * 365 * 86_400_000;
const maxBackdateMs = 5 * 60_000;
const subtle = webcrypto.subtle;

/**
 * Loads the control plane's CA from the store, or creates it. Two control planes starting at once
 * on one database each make a candidate, and recordUpdate keeps the first one stored: both then
 * use that one.
 */
export async function loadOrCreateCa(store: ResourceStore, now: () => number): Promise<ControlPlaneCa> {
  let stored = await store.recordGet<StoredCa>(securityCollection, caRecordId);
  if (!stored) {
    const candidate = await createCa(now());
    stored = await store.recordUpdate<StoredCa>(securityCollection, caRecordId, (current) =>
      current === null ? candidate : undefined,
    );
  }
  if (!stored) throw new Error('the CA record could not be stored');
  return openCa(stored, now);
}

async function createCa(now: number): Promise<StoredCa> {
  const keys = (await subtle.generateKey(ecdsa, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=Gatehouse control plane CA ${randomBytes(4).toString('hex')}, O=Gatehouse`,
    notBefore: new Date(now - maxBackdateMs),
    notAfter: new Date(now + caLifetimeMs),
    keys,
    signingAlgorithm: ecdsa,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = await subtle.exportKey('pkcs8', keys.privateKey);
  return {
    certificatePem: cert.toString('pem'),
    privateKeyPem: toPem('PRIVATE KEY', pkcs8),
    createdAt: new Date(now).toISOString(),
  };
}

async function openCa(stored: StoredCa, now: () => number): Promise<ControlPlaneCa> {
  const caCert = new x509.X509Certificate(stored.certificatePem);
  const signingKey = await subtle.importKey('pkcs8', fromPem(stored.privateKeyPem), ecdsa, false, ['sign']);
  const caPublicKey = await caCert.publicKey.export();
  const authorityKeyId = await x509.AuthorityKeyIdentifierExtension.create(caPublicKey);

  async function issue(
    subject: string,
    publicKey: CryptoKey,
    lifetimeMs: number,
    extensions: x509.Extension[],
  ): Promise<IssuedCertificate> {
    const start = now();
    // Backdated for peers whose clock runs behind, by a small part of a short lifetime only.
    const backdateMs = Math.min(maxBackdateMs, Math.floor(lifetimeMs / 10));
    const serialNumber = randomSerial();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber,
      subject,
      issuer: caCert.subject,
      notBefore: new Date(start - backdateMs),
      notAfter: new Date(start + lifetimeMs),
      signingAlgorithm: ecdsa,
      publicKey,
      signingKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        authorityKeyId,
        await x509.SubjectKeyIdentifierExtension.create(publicKey),
        ...extensions,
      ],
    });
    return {
      certificatePem: cert.toString('pem'),
      serialNumber: serialNumber.replace(/^0+/, '').toUpperCase(),
      notBefore: cert.notBefore.toISOString(),
      notAfter: cert.notAfter.toISOString(),
    };
  }

  return {
    certificatePem: stored.certificatePem,
    async issueGatewayCertificate({ identity, publicKeyPem, lifetimeMs }) {
      const publicKey = await importP256PublicKey(publicKeyPem);
      return issue(`CN=${identity.name}`, publicKey, lifetimeMs, [
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: gatewaySpiffeId(identity) }], false),
      ]);
    },
    async serverCredentials(hostnames, lifetimeMs = 365 * 86_400_000) {
      if (hostnames.length === 0) throw new TypeError('a server certificate needs at least one hostname');
      const keys = (await subtle.generateKey(ecdsa, true, ['sign', 'verify'])) as CryptoKeyPair;
      const names = hostnames.map((h) => ({ type: isIp(h) ? ('ip' as const) : ('dns' as const), value: h }));
      const issued = await issue(`CN=${hostnames[0]}`, keys.publicKey, lifetimeMs, [
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension(names, false),
      ]);
      const key = toPem('PRIVATE KEY', await subtle.exportKey('pkcs8', keys.privateKey));
      return { cert: issued.certificatePem, key };
    },
  };
}

/** An SPKI PEM of an EC P-256 key, as a WebCrypto key; TypeError for anything else. */
export async function importP256PublicKey(pem: string): Promise<CryptoKey> {
  let key: ReturnType<typeof createPublicKey>;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch {
    throw new TypeError('publicKey is not a PEM public key');
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
    throw new TypeError('publicKey must be an EC P-256 key');
  const der = key.export({ type: 'spki', format: 'der' });
  return subtle.importKey('spki', der, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']);
}

/** 16 random bytes, positive and without a leading zero byte (hex, as @peculiar/x509 takes it). */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x10;
  return b.toString('hex');
}

function isIp(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(':');
}

function toPem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function fromPem(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}
