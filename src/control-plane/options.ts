import { dirname, isAbsolute, join, resolve } from 'node:path';
import { type ConfigError, formatFieldPath } from '../config/errors.ts';
import type { LoadedResource } from '../config/load.ts';
import type { ControlPlaneSpec } from '../config/schemas/control-plane.ts';
import type { IdentityProviderSpec } from '../config/schemas/identity-provider.ts';
import type { ControlPlaneServerConfig } from './server.ts';
import type { StoreSpec } from './store/open.ts';

export interface ResolvedControlPlane {
  /** `namespace/name` of the ControlPlane resource. */
  id: string;
  spec: ControlPlaneSpec;
  server: ControlPlaneServerConfig;
  store: StoreSpec;
}

/**
 * The ControlPlane resource of loaded config files made into what the process runs with: paths
 * resolved against the file that holds it, the store's URL read from the environment when asked,
 * the operators' IdentityProvider looked up among the same files. Errors name file and line.
 */
export function resolveControlPlane(
  resources: readonly LoadedResource[],
  env: Readonly<Record<string, string | undefined>>,
  name?: string,
): { ok: true; value: ResolvedControlPlane } | { ok: false; errors: ConfigError[] } {
  const candidates = resources.filter((r) => r.kind === 'ControlPlane');
  const chosen = name ? candidates.filter((r) => r.metadata.name === name) : candidates;
  const first = resources[0]?.source.file ?? '(config)';
  const whole = (message: string): ConfigError => ({ file: first, line: 1, column: 1, path: '', message });
  if (chosen.length === 0)
    return {
      ok: false,
      errors: [
        whole(name ? `no ControlPlane named ${name}` : 'the configuration holds no ControlPlane resource'),
      ],
    };
  if (chosen.length > 1)
    return {
      ok: false,
      errors: [
        whole(
          `several ControlPlanes (${chosen.map((r) => r.metadata.name).join(', ')}): choose one with --name`,
        ),
      ],
    };
  const resource = chosen[0]!;
  const spec = resource.spec as unknown as ControlPlaneSpec;
  const errors: ConfigError[] = [];
  const fail = (path: Array<string | number>, message: string) =>
    errors.push({
      file: resource.source.file,
      ...resource.source.locate(path),
      path: formatFieldPath(path),
      message,
    });
  const base = dirname(resolve(resource.source.file));
  const at = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const dataDir = at(spec.dataDir);

  let store: StoreSpec;
  if (spec.store.backend === 'sqlite') {
    store = {
      backend: 'sqlite',
      path: spec.store.path ? at(spec.store.path) : join(dataDir, 'control-plane.db'),
    };
  } else {
    let url = '';
    if (typeof spec.store.url === 'string') url = spec.store.url;
    else {
      const value = env[spec.store.url.env];
      if (value === undefined || value === '')
        fail(['spec', 'store', 'url', 'env'], `environment variable ${spec.store.url.env} is not set`);
      else url = value;
    }
    store = {
      backend: 'postgres',
      url,
      ...(spec.store.schema !== undefined ? { schema: spec.store.schema } : {}),
    };
  }

  let jwt: ControlPlaneServerConfig['operators']['jwt'];
  if (spec.operators.jwt) {
    const providerName = spec.operators.jwt.provider;
    const provider = resources.find(
      (r) =>
        r.kind === 'IdentityProvider' &&
        r.metadata.name === providerName &&
        r.metadata.namespace === resource.metadata.namespace,
    );
    if (!provider)
      fail(
        ['spec', 'operators', 'jwt', 'provider'],
        `no IdentityProvider named ${providerName} in namespace ${resource.metadata.namespace} in the config files`,
      );
    else
      jwt = {
        providerId: `${provider.metadata.namespace}/${provider.metadata.name}`,
        provider: provider.spec as unknown as IdentityProviderSpec,
        subjectClaim: spec.operators.jwt.subjectClaim,
        rolesClaim: spec.operators.jwt.rolesClaim,
      };
  }
  const names = new Set<string>();
  spec.operators.tokens.forEach((t, i) => {
    if (names.has(t.name))
      fail(['spec', 'operators', 'tokens', i, 'name'], `operator ${t.name} is listed twice`);
    names.add(t.name);
  });
  if (spec.operators.tokens.length === 0 && !spec.operators.jwt)
    fail(['spec', 'operators'], 'no operator could use the admin API: give tokens or jwt');
  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    value: {
      id: `${resource.metadata.namespace}/${resource.metadata.name}`,
      spec,
      store,
      server: {
        listen: { address: spec.listen.address, port: spec.listen.port },
        ...(spec.publicUrl !== undefined ? { publicUrl: spec.publicUrl } : {}),
        dataDir,
        operators: { tokens: spec.operators.tokens, ...(jwt ? { jwt } : {}) },
        // Absent when the spec was built without defaults (tests): the server's default applies.
        ...(spec.metrics?.access !== undefined ? { metricsAccess: spec.metrics.access } : {}),
      },
    },
  };
}
