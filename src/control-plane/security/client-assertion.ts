import { createHash } from 'node:crypto';
import { decodeJwt, importSPKI, jwtVerify } from 'jose';
import type { ResourceStore } from '../store/types.ts';
import type { GatewayRecord, GatewayRecords } from './gateway-records.ts';

/**
 * RFC 7523-style client authentication for `POST /v1/token`: the gateway signs a short JWT with
 * the private key it registered (iss = sub = its id, aud = the token endpoint, exp at most 5 min
 * away, a jti used once). The control plane verifies it with the registered public key, so no
 * shared secret exists anywhere.
 */
export const clientAssertionType = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
export const maxAssertionLifetimeSec = 300;
const clockSkewSec = 30;

/** Collection of jtis seen, kept until their assertion expires (shared by every control plane). */
export const assertionJtiCollection = 'client-assertion-jtis';

export class ClientAssertionError extends Error {}

export async function verifyClientAssertion(
  assertion: string,
  deps: { records: GatewayRecords; store: ResourceStore; now: () => number; tokenEndpoint: string },
): Promise<GatewayRecord> {
  let claimedId: unknown;
  try {
    claimedId = decodeJwt(assertion).iss;
  } catch {
    throw new ClientAssertionError('not a JWT');
  }
  if (typeof claimedId !== 'string') throw new ClientAssertionError('no iss');
  const record = await deps.records.get(claimedId);
  if (!record) throw new ClientAssertionError('no registered gateway with this id');
  let payload: Record<string, unknown>;
  try {
    const key = await importSPKI(record.publicKey, 'ES256');
    ({ payload } = await jwtVerify(assertion, key, {
      algorithms: ['ES256'],
      issuer: record.id,
      subject: record.id,
      audience: deps.tokenEndpoint,
      clockTolerance: clockSkewSec,
      currentDate: new Date(deps.now()),
      requiredClaims: ['exp', 'iat', 'jti'],
    }));
  } catch (err) {
    throw new ClientAssertionError((err as Error).message);
  }
  const nowSec = Math.floor(deps.now() / 1000);
  const exp = payload.exp as number;
  const iat = payload.iat as number;
  if (exp - iat > maxAssertionLifetimeSec || exp - nowSec > maxAssertionLifetimeSec + clockSkewSec)
    throw new ClientAssertionError(`lifetime longer than ${maxAssertionLifetimeSec}s`);
  const jti = payload.jti;
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > 200)
    throw new ClientAssertionError('bad jti');
  // Single use within its lifetime: the first to store the jti wins.
  const id = createHash('sha256').update(`${record.id}\0${jti}`).digest('hex');
  let fresh = false;
  await deps.store.recordUpdate<{ expiresAt: number }>(assertionJtiCollection, id, (current) => {
    fresh = current === null;
    return fresh ? { expiresAt: (exp + clockSkewSec) * 1000 } : undefined;
  });
  if (!fresh) throw new ClientAssertionError('jti already used');
  return record;
}

/** Deletes jtis whose assertions have expired. */
export async function pruneAssertionJtis(store: ResourceStore, now: number): Promise<void> {
  for (const { id, value } of await store.recordList<{ expiresAt: number }>(assertionJtiCollection))
    if (value.expiresAt <= now) await store.recordDelete(assertionJtiCollection, id);
}
