import { parseArgs } from 'node:util';
import { formatConfigError } from '../config/errors.ts';
import { loadConfig } from '../config/load.ts';
import { compilePlan } from '../plan/compile.ts';

/** `gatehouse validate <file|dir>...`: loads and compiles every Gateway's plan; 0 when all is valid. */
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
    if (gateways.length === 0) {
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
