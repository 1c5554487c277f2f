import { parseArgs } from 'node:util';
import { formatConfigError } from '../config/errors.ts';
import { loadConfig } from '../config/load.ts';
import { resolveControlPlane } from '../control-plane/options.ts';
import { compilePlan } from '../plan/compile.ts';

/**
 * `gatehouse validate <file|dir>...`: loads and compiles every Gateway's plan and resolves every
 * ControlPlane; 0 when all is valid.
 */
export async function runValidate(args: string[]): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  if (positionals.length === 0) {
    process.stderr.write('usage: gatehouse validate <file|dir>...\n');
    return 2;
  }
  const loaded = loadConfig(positionals);
  const errors = [...loaded.errors];
  if (errors.length === 0) {
    const gateways = loaded.resources.filter((r) => r.kind === 'Gateway').map((r) => r.metadata.name);
    const controlPlanes = loaded.resources.filter((r) => r.kind === 'ControlPlane');
    for (const cp of controlPlanes) {
      const resolved = resolveControlPlane(loaded.resources, process.env, cp.metadata.name);
      if (!resolved.ok) errors.push(...resolved.errors);
    }
    // Without a Gateway the compiler says so — unless the files only configure a control plane.
    const gatewayResources = loaded.resources.filter(
      (r) => r.kind !== 'ControlPlane' && r.kind !== 'IdentityProvider',
    );
    if (gateways.length === 0 && (controlPlanes.length === 0 || gatewayResources.length > 0)) {
      const result = compilePlan(loaded.resources);
      if (!result.ok) errors.push(...result.errors);
    }
    for (const gatewayName of gateways) {
      const result = compilePlan(loaded.resources, { gatewayName });
      if (!result.ok) errors.push(...result.errors);
    }
  }
  const unique = [...new Set(errors.map(formatConfigError))];
  if (unique.length > 0) {
    process.stderr.write(`${unique.join('\n')}\n${unique.length} problem(s) found\n`);
    return 1;
  }
  process.stdout.write(`ok: ${loaded.resources.length} resource(s) in ${loaded.files.length} file(s)\n`);
  return 0;
}
