import { LRUCache } from 'lru-cache';
import type { Adapter, AdapterFactory, AdapterPayload } from 'oidc-provider';

/**
 * Where the demo identity provider keeps its stateful artefacts: in memory, bounded (least recently
 * used dropped first), each until it expires. The demo only issues JWT access tokens by
 * client_credentials, which are not stored, so this holds next to nothing; it is passed explicitly
 * because oidc-provider's own default prints a warning to replace it, which would alarm newcomers
 * running the quickstart.
 */
export function demoIdpStore(maxEntries = 10_000): AdapterFactory {
  const store = new LRUCache<string, AdapterPayload>({ max: maxEntries });
  const findWhere = (model: string, match: (p: AdapterPayload) => boolean) => {
    for (const [key, payload] of store.entries())
      if (key.startsWith(`${model}:`) && match(payload)) return payload;
    return undefined;
  };
  return (model: string): Adapter => ({
    async upsert(id, payload, expiresIn) {
      store.set(`${model}:${id}`, payload, expiresIn ? { ttl: expiresIn * 1000 } : undefined);
    },
    async find(id) {
      return store.get(`${model}:${id}`);
    },
    async findByUid(uid) {
      return findWhere(model, (p) => p.uid === uid);
    },
    async findByUserCode(userCode) {
      return findWhere(model, (p) => p.userCode === userCode);
    },
    async consume(id) {
      const payload = store.get(`${model}:${id}`);
      if (payload) payload.consumed = Math.floor(Date.now() / 1000);
    },
    async destroy(id) {
      store.delete(`${model}:${id}`);
    },
    async revokeByGrantId(grantId) {
      const revoked = [...store.entries()].filter(([, p]) => p.grantId === grantId).map(([key]) => key);
      for (const key of revoked) store.delete(key);
    },
  });
}
