import { createHash } from 'node:crypto';
import type { IdentityProviderSpec } from '../config/schemas/identity-provider.ts';
import { createIntrospector } from './introspection.ts';
import { createJwtVerifier } from './jwt-verifier.ts';
import type { ProviderDeps, ProviderRuntime } from './types.ts';

/**
 * Live identity providers, keyed by resource and spec. Like upstream pools they outlive plans: a
 * reload that leaves a provider unchanged keeps its warm key set and caches; a changed or removed
 * one is closed once no plan uses it.
 */
export class ProviderRegistry {
  readonly #deps: ProviderDeps;
  readonly #live = new Map<string, ProviderRuntime>();

  constructor(deps: ProviderDeps) {
    this.#deps = deps;
  }

  /** The runtime for `namespace/name` with this spec; created on first use. Throws TypeError on a bad spec. */
  resolve(id: string, spec: IdentityProviderSpec): ProviderRuntime {
    const key = `${id}|${createHash('sha256').update(JSON.stringify(spec)).digest('hex')}`;
    let runtime = this.#live.get(key);
    if (!runtime) {
      const jwt = createJwtVerifier(id, spec, this.#deps);
      let introspector = null;
      try {
        introspector = spec.introspection ? createIntrospector(id, spec, this.#deps) : null;
      } catch (err) {
        jwt.close();
        throw err;
      }
      runtime = Object.freeze({ id, spec, jwt, introspector });
      this.#live.set(key, runtime);
    }
    return runtime;
  }

  /** Closes providers not in `keep` (the runtimes the current plan uses). */
  retainOnly(keep: Iterable<ProviderRuntime>): void {
    const used = new Set(keep);
    for (const [key, runtime] of this.#live) {
      if (used.has(runtime)) continue;
      this.#live.delete(key);
      runtime.jwt.close();
      runtime.introspector?.close();
    }
  }

  closeAll(): void {
    this.retainOnly([]);
  }
}
