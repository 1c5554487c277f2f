import type { ResourceStore } from '../store/types.ts';
import type { GatewayIdentity, SubsystemSecurityMode } from './types.ts';

/**
 * Collection `gateways`: one record per registered gateway, keyed by its id. Other parts of the
 * control plane (distribution: served version, last contact) may add fields: write with
 * recordUpdate and spread the current value. Deleting the record revokes the gateway: no renewal,
 * no token, and its credentials fail at the next call (within the authenticator's 5 s cache).
 */
export const gatewaysCollection = 'gateways';

export interface CertificateRef {
  serialNumber: string;
  notAfter: string;
}

export interface GatewayRecord extends GatewayIdentity {
  /** SPKI PEM of the key the gateway registered (or last renewed) with; verifies its client assertions. */
  publicKey: string;
  registeredAt: string;
  mode: SubsystemSecurityMode;
  bootstrapTokenId: string;
  /** mtls: the current certificate, and the one it replaced (accepted until it expires). */
  certificate?: CertificateRef;
  previousCertificate?: CertificateRef;
  renewedAt?: string;
}

export function identityOf(record: GatewayRecord): GatewayIdentity {
  return { id: record.id, name: record.name, namespace: record.namespace, labels: { ...record.labels } };
}

const cacheTtlMs = 5000;
const maxCached = 10_000;

/**
 * Reads gateway records with a short cache, so an authenticated call costs no store read most of
 * the time, and a deleted gateway is refused within `cacheTtlMs` on every control plane.
 */
export class GatewayRecords {
  readonly #store: ResourceStore;
  readonly #now: () => number;
  readonly #cache = new Map<string, { record: GatewayRecord | null; at: number }>();

  constructor(store: ResourceStore, now: () => number) {
    this.#store = store;
    this.#now = now;
  }

  async get(id: string): Promise<GatewayRecord | null> {
    const hit = this.#cache.get(id);
    if (hit && this.#now() - hit.at < cacheTtlMs) return hit.record;
    const record = await this.#store.recordGet<GatewayRecord>(gatewaysCollection, id);
    if (this.#cache.size >= maxCached) this.#cache.clear();
    this.#cache.set(id, { record, at: this.#now() });
    return record;
  }

  forget(id: string): void {
    this.#cache.delete(id);
  }

  /** Deletes the gateway's record: it can no longer renew, get tokens or authenticate. */
  async revoke(id: string): Promise<boolean> {
    const deleted = await this.#store.recordDelete(gatewaysCollection, id);
    this.#cache.delete(id);
    return deleted;
  }
}
