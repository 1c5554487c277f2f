import type { IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';
import { identityFromClaims } from './claims.ts';
import type { GatewayRecord, GatewayRecords } from './gateway-records.ts';
import { identityOf } from './gateway-records.ts';
import type { JwtKeyRing } from './keys.ts';
import { parseGatewaySpiffeId } from './spiffe.ts';
import { audiences, type GatewayAuthenticator, type GatewayIdentity } from './types.ts';

const clientAuthOid = '1.3.6.1.5.5.7.3.2';

/** Why a gateway credential was refused (a metrics label: keep the set small and fixed). */
export type GatewayRefusal = 'no_credential' | 'invalid_credential' | 'unregistered';
type OnRefused = (reason: GatewayRefusal) => void;
const ignore: OnRefused = () => {};

/**
 * mtls mode: the client certificate the TLS listener verified against this control plane's CA
 * (the listener's only `ca`), with the gateway's SPIFFE id as URI SAN, whose record still exists
 * and names this certificate (or the one it replaced, until that expires). Anything else: null.
 */
export function certificateAuthenticator(
  records: GatewayRecords,
  now: () => number,
  onRefused: OnRefused = ignore,
): GatewayAuthenticator {
  const parsed = new WeakMap<TLSSocket, { id: string; serial: string } | null>();
  const refuse = (reason: GatewayRefusal) => {
    onRefused(reason);
    return null;
  };
  return {
    async authenticate(req) {
      const socket = req.socket;
      if (!(socket instanceof TLSSocket)) return refuse('no_credential');
      if (!socket.authorized)
        return refuse(
          Object.keys(socket.getPeerCertificate() ?? {}).length === 0
            ? 'no_credential'
            : 'invalid_credential',
        );
      let peer = parsed.get(socket);
      if (peer === undefined) {
        peer = readPeer(socket);
        parsed.set(socket, peer);
      }
      if (peer === null) return refuse('invalid_credential');
      const record = await records.get(peer.id);
      if (!record || !namesCertificate(record, peer.serial, now())) return refuse('unregistered');
      return identityOf(record);
    },
  };
}

function readPeer(socket: TLSSocket): { id: string; serial: string } | null {
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return null;
  if (!Array.isArray(cert.ext_key_usage) || !cert.ext_key_usage.includes(clientAuthOid)) return null;
  const uris = (cert.subjectaltname ?? '')
    .split(', ')
    .filter((n) => n.startsWith('URI:'))
    .map((n) => n.slice(4));
  if (uris.length !== 1) return null;
  const spiffe = parseGatewaySpiffeId(uris[0]!);
  if (!spiffe) return null;
  return { id: spiffe.id, serial: normaliseSerial(cert.serialNumber) };
}

function namesCertificate(record: GatewayRecord, serial: string, now: number): boolean {
  if (record.certificate && normaliseSerial(record.certificate.serialNumber) === serial) return true;
  const previous = record.previousCertificate;
  return (
    previous !== undefined &&
    normaliseSerial(previous.serialNumber) === serial &&
    Date.parse(previous.notAfter) > now
  );
}

function normaliseSerial(serial: string): string {
  return serial.replace(/:/g, '').replace(/^0+/, '').toUpperCase();
}

/**
 * jwt mode: `Authorization: Bearer <JWT>` signed by this control plane's key ring (ES256 only),
 * issued by it, for audience `gatehouse:control-plane`, not expired, of a gateway whose record
 * still exists.
 */
export function bearerAuthenticator(
  keyRing: JwtKeyRing,
  records: GatewayRecords,
  issuer: string,
  onRefused: OnRefused = ignore,
  clockSkewSec = 30,
): GatewayAuthenticator {
  const refuse = (reason: GatewayRefusal) => {
    onRefused(reason);
    return null;
  };
  return {
    async authenticate(req: IncomingMessage): Promise<GatewayIdentity | null> {
      const header = req.headers.authorization;
      if (typeof header !== 'string') return refuse('no_credential');
      const m = /^Bearer ([A-Za-z0-9_.-]{1,8192})$/i.exec(header.trim());
      if (!m) return refuse('invalid_credential');
      let payload: Record<string, unknown>;
      try {
        ({ payload } = await keyRing.verify(m[1]!, {
          issuer,
          audience: audiences.controlPlane,
          algorithms: ['ES256'],
          clockTolerance: clockSkewSec,
          requiredClaims: ['exp', 'iat', 'sub'],
        }));
      } catch {
        return refuse('invalid_credential');
      }
      const claimed = identityFromClaims(payload);
      if (!claimed) return refuse('invalid_credential');
      const record = await records.get(claimed.id);
      return record ? identityOf(record) : refuse('unregistered');
    },
  };
}
