// Consumers: known callers identified by an API key. Only SHA-256 hashes of keys are configured;
// a presented key is hashed and looked up in a map prepared once per plan.
//
// Why SHA-256 and not a slow password hash: API keys are long random strings (see
// `gatehouse hash-key --generate`), so a fast hash does not make guessing them practical, and it
// keeps the check cheap enough to run on every request.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { LoadedResource } from '../config/load.ts';
import type { ConsumerSpec } from '../config/schemas/consumer.ts';

/** A consumer as an identity carries it (`identity.consumer`): shared by every request, frozen. */
export interface ConsumerRecord {
  readonly name: string;
  readonly groups: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
}

/** The consumers of one namespace, prepared for lookups on the request path. */
export interface ConsumerIndex {
  /** Number of consumers. */
  readonly size: number;
  byName(name: string): ConsumerRecord | undefined;
  /**
   * The consumer owning the presented key, with the key's label; undefined for an unknown key.
   * The stored and computed digests are compared in constant time.
   */
  findByKey(presented: string): { readonly consumer: ConsumerRecord; readonly keyName: string } | undefined;
}

interface KeyEntry {
  readonly digest: Buffer;
  readonly consumer: ConsumerRecord;
  readonly keyName: string;
}

/** SHA-256 of a key as lowercase hex: what `Consumer.spec.apiKeys[].sha256` holds. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

function buildIndex(consumers: Map<string, ConsumerRecord>, keys: Map<string, KeyEntry>): ConsumerIndex {
  return Object.freeze({
    size: consumers.size,
    byName: (name: string) => consumers.get(name),
    findByKey(presented: string) {
      const digest = createHash('sha256').update(presented, 'utf8').digest();
      // The map lookup is by the hash, which an attacker cannot steer towards a stored one; the
      // final comparison is constant-time all the same.
      const entry = keys.get(digest.toString('hex'));
      if (entry === undefined || !timingSafeEqual(entry.digest, digest)) return undefined;
      return { consumer: entry.consumer, keyName: entry.keyName };
    },
  });
}

export const emptyConsumerIndex: ConsumerIndex = buildIndex(new Map(), new Map());

/**
 * Builds the consumer index of every namespace. A key hash used twice in a namespace (by two
 * consumers or twice by one) is reported at the second use, naming the first.
 */
export function compileConsumers(
  resources: readonly LoadedResource[],
  fail: (r: LoadedResource, path: Array<string | number>, message: string) => void,
): ReadonlyMap<string, ConsumerIndex> {
  const byNamespace = new Map<
    string,
    {
      consumers: Map<string, ConsumerRecord>;
      keys: Map<string, KeyEntry>;
      owners: Map<string, { r: LoadedResource; index: number }>;
    }
  >();
  for (const r of resources) {
    if (r.kind !== 'Consumer') continue;
    const { namespace, name } = r.metadata;
    let ns = byNamespace.get(namespace);
    if (!ns) {
      ns = { consumers: new Map(), keys: new Map(), owners: new Map() };
      byNamespace.set(namespace, ns);
    }
    if (ns.consumers.has(name)) continue; // a duplicate name is reported by the unique-name check
    const spec = r.spec as unknown as ConsumerSpec;
    const consumer: ConsumerRecord = Object.freeze({
      name,
      groups: Object.freeze([...spec.groups]),
      metadata: Object.freeze({ ...spec.metadata }),
    });
    ns.consumers.set(name, consumer);
    spec.apiKeys.forEach((key, index) => {
      const hex = key.sha256.toLowerCase();
      const first = ns.owners.get(hex);
      if (first) {
        const firstKey = (first.r.spec as unknown as ConsumerSpec).apiKeys[first.index]!;
        const where = `${first.r.source.file}:${first.r.source.locate(['spec', 'apiKeys', first.index]).line}`;
        fail(
          r,
          ['spec', 'apiKeys', index, 'sha256'],
          `API key ${JSON.stringify(key.name)} of Consumer ${namespace}/${name} has the same hash as key ` +
            `${JSON.stringify(firstKey.name)} of Consumer ${namespace}/${first.r.metadata.name} (${where}); ` +
            'a key must identify one consumer',
        );
        return;
      }
      ns.owners.set(hex, { r, index });
      ns.keys.set(hex, Object.freeze({ digest: Buffer.from(hex, 'hex'), consumer, keyName: key.name }));
    });
  }
  const out = new Map<string, ConsumerIndex>();
  for (const [namespace, ns] of byNamespace) out.set(namespace, buildIndex(ns.consumers, ns.keys));
  return out;
}
