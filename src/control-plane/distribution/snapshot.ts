import { createHash } from 'node:crypto';
import type { GatewayIdentity } from '../security/types.ts';
import { canonicalJson } from '../store/canonical-json.ts';
import type { StoredResource } from '../store/types.ts';
import { type SnapshotResource, selectSnapshotResources } from './selection.ts';

/**
 * The configuration of one gateway at one store revision: the payload of every stream event and of
 * the one-shot config answer. `version` is the store revision at which the content last changed for
 * this gateway (a write elsewhere does not bump it); `hash` identifies the content itself.
 */
export interface Snapshot {
  version: number;
  hash: string;
  resources: SnapshotResource[];
}

/** sha256 of the canonical JSON of the resources (key order does not matter, resource order does). */
export function snapshotHash(resources: readonly SnapshotResource[]): string {
  return createHash('sha256').update(canonicalJson(resources)).digest('hex');
}

/**
 * The snapshot for `identity` from the resources of its namespace read at `revision`. When the
 * content equals `previous`, the previous version is kept, so that identical content is never
 * presented as a new version.
 */
export function computeSnapshot(
  namespaceResources: readonly StoredResource[],
  revision: number,
  identity: GatewayIdentity,
  previous?: { version: number; hash: string },
): Snapshot {
  const resources = selectSnapshotResources(namespaceResources, identity);
  const hash = snapshotHash(resources);
  const version = previous && previous.hash === hash ? previous.version : revision;
  return { version, hash, resources };
}
