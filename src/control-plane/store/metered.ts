import type { ResourceStore } from './types.ts';

/**
 * The store with every resource write counted by result (ok, unchanged, the refusal's reason,
 * error when it throws). Every write path of every module goes through `ctx.store`, so counting
 * here misses none; the records of the control plane's own state are not resource writes.
 */
export function meteredStore(store: ResourceStore, count: (result: string) => void): ResourceStore {
  return {
    backend: store.backend,
    get: (key) => store.get(key),
    list: (query) => store.list(query),
    async write(ops, context) {
      try {
        const result = await store.write(ops, context);
        count(result.ok ? (result.changes.length > 0 ? 'ok' : 'unchanged') : result.reason);
        return result;
      } catch (err) {
        count('error');
        throw err;
      }
    },
    changes: (query) => store.changes(query),
    revision: () => store.revision(),
    onChange: (listener) => store.onChange(listener),
    recordGet: (collection, id) => store.recordGet(collection, id),
    recordList: (collection) => store.recordList(collection),
    recordPut: (collection, id, value) => store.recordPut(collection, id, value),
    recordDelete: (collection, id) => store.recordDelete(collection, id),
    recordUpdate: (collection, id, update) => store.recordUpdate(collection, id, update),
    close: () => store.close(),
  };
}
