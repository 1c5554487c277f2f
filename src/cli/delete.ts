import { parseArgs } from 'node:util';
import { formatConfigError } from '../config/errors.ts';
import { loadConfig } from '../config/load.ts';
import type { Kind } from '../config/schemas/index.ts';
import { kindNamed, pluralOf } from '../control-plane/api/kinds.ts';
import { adminFlags, refusalMessage, withAdminClient } from './admin-client.ts';

const usage =
  'usage: gatehouse delete <kind> <name> [-n <namespace>] | delete -f <file|dir>... [--server <url>] [--token <t>]\n';

/** `gatehouse delete <kind> <name>` or `delete -f <files>`: one line per resource deleted. */
export async function runDelete(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...adminFlags,
      namespace: { type: 'string', short: 'n' },
      filename: { type: 'string', short: 'f', multiple: true },
    },
  });
  const targets: Array<{ kind: Kind; namespace: string; name: string }> = [];
  if (values.filename?.length) {
    if (positionals.length > 0) {
      process.stderr.write(usage);
      return 2;
    }
    const loaded = loadConfig(values.filename);
    if (loaded.errors.length > 0) {
      process.stderr.write(
        `${loaded.errors.map(formatConfigError).join('\n')}\n${loaded.errors.length} problem(s) found\n`,
      );
      return 1;
    }
    for (const r of loaded.resources) {
      if (r.kind === 'ControlPlane') continue;
      const namespace =
        values.namespace !== undefined && r.metadata.namespace === 'default'
          ? values.namespace
          : r.metadata.namespace;
      targets.push({ kind: r.kind, namespace, name: r.metadata.name });
    }
  } else {
    const [kindName, name, ...extra] = positionals;
    const kind = kindName === undefined ? null : kindNamed(kindName);
    if (kind === null || name === undefined || extra.length > 0) {
      process.stderr.write(
        kindName !== undefined && kind === null ? `unknown kind ${JSON.stringify(kindName)}\n` : usage,
      );
      return 2;
    }
    targets.push({ kind, namespace: values.namespace ?? 'default', name });
  }
  return withAdminClient(values, async (client) => {
    let failed = false;
    for (const t of targets) {
      const answer = await client.request(
        'DELETE',
        `/api/v1/namespaces/${encodeURIComponent(t.namespace)}/${pluralOf(t.kind)}/${encodeURIComponent(t.name)}`,
      );
      if (answer.status === 200) process.stdout.write(`${t.kind.toLowerCase()}/${t.name} deleted\n`);
      else {
        failed = true;
        process.stderr.write(
          `${t.kind.toLowerCase()}/${t.name}: ${refusalMessage(answer, client.server, client.hasToken)}\n`,
        );
        if (answer.status === 401 || answer.status === 403) break;
      }
    }
    return failed ? 1 : 0;
  });
}
