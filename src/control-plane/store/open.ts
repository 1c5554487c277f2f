import { openPostgresStore } from './postgres.ts';
import { openSqliteStore } from './sqlite.ts';
import type { ResourceStore } from './types.ts';

export type StoreSpec =
  | { backend: 'sqlite'; path: string }
  | { backend: 'postgres'; url: string; schema?: string };

/** Opens the store a control plane is configured with. */
export async function openStore(spec: StoreSpec): Promise<ResourceStore> {
  if (spec.backend === 'sqlite') return openSqliteStore({ path: spec.path });
  if (spec.backend === 'postgres') {
    return openPostgresStore({
      url: spec.url,
      ...(spec.schema !== undefined ? { schema: spec.schema } : {}),
    });
  }
  throw new TypeError(`unknown store backend ${JSON.stringify((spec as { backend: unknown }).backend)}`);
}
