import { parseArgs } from 'node:util';
import { type ConfigError, formatConfigError } from '../config/errors.ts';
import { type LoadedResource, loadConfig } from '../config/load.ts';
import {
  type AdminAnswer,
  AdminError,
  adminClient,
  adminFlags,
  parseFieldPath,
  refusalMessage,
} from './admin-client.ts';

export interface AppliedResult {
  kind: string;
  namespace: string;
  name: string;
  action: 'created' | 'updated' | 'unchanged';
  resourceVersion: string | null;
  diffText: string[];
}

/** What `apply` and `diff` share: local parse (nothing sent on an error), then POST /api/v1/apply. */
export async function sendApply(
  args: string[],
  dryRunFlag: boolean,
  command: 'apply' | 'diff',
): Promise<{ code: number } | { results: AppliedResult[]; dryRun: boolean }> {
  const { values } = parseArgs({
    args,
    options: {
      ...adminFlags,
      filename: { type: 'string', short: 'f', multiple: true },
      namespace: { type: 'string', short: 'n' },
      'dry-run': { type: 'boolean', default: false },
    },
  });
  if (!values.filename?.length) {
    process.stderr.write(
      `usage: gatehouse ${command} -f <file|dir>... [-n <namespace>]${command === 'apply' ? ' [--dry-run]' : ''} [--server <url>] [--token <t>] [--ca <file>]\n`,
    );
    return { code: 2 };
  }
  const loaded = loadConfig(values.filename);
  if (loaded.errors.length > 0) {
    printErrors(loaded.errors);
    return { code: 1 };
  }
  const resources = loaded.resources.filter((r) => {
    if (r.kind !== 'ControlPlane') return true;
    process.stderr.write(
      `controlplane/${r.metadata.name} skipped: it configures the control plane process and is not stored\n`,
    );
    return false;
  });
  if (resources.length === 0) {
    process.stderr.write('nothing to apply\n');
    return { code: 1 };
  }
  // -n puts resources that name no namespace (the loader's default) into that one.
  if (values.namespace !== undefined)
    for (const r of resources)
      if (r.metadata.namespace === 'default') r.metadata.namespace = values.namespace;
  let client: ReturnType<typeof adminClient>;
  try {
    client = adminClient(values);
  } catch (err) {
    if (!(err instanceof AdminError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return { code: 1 };
  }
  const dryRun = dryRunFlag || values['dry-run'] === true;
  try {
    const answer = await client.request('POST', `/api/v1/apply${dryRun ? '?dryRun=true' : ''}`, {
      resources: resources.map(({ source: _source, ...r }) => r),
    });
    if (answer.status === 422 && Array.isArray(answer.body?.errors)) {
      printErrors(mapBack(answer, resources));
      return { code: 1 };
    }
    if (answer.status !== 200) {
      process.stderr.write(`${refusalMessage(answer, client.server, client.hasToken)}\n`);
      return { code: 1 };
    }
    return { results: (answer.body?.results ?? []) as AppliedResult[], dryRun };
  } catch (err) {
    if (err instanceof AdminError) {
      process.stderr.write(`${err.message}\n`);
      return { code: 1 };
    }
    throw err;
  } finally {
    await client.close();
  }
}

function printErrors(errors: readonly ConfigError[]): void {
  const unique = [...new Set(errors.map(formatConfigError))];
  process.stderr.write(`${unique.join('\n')}\n${unique.length} problem(s) found\n`);
}

/**
 * The control plane names each problem by kind, namespace, name and field path: pointed back at
 * the file and line the resource came from, the output reads like `gatehouse validate`'s.
 */
function mapBack(answer: AdminAnswer, resources: readonly LoadedResource[]): ConfigError[] {
  const errors = answer.body?.errors as Array<Record<string, string>>;
  return errors.map((e) => {
    const path = e.path ?? '';
    const message = e.message ?? '';
    const local = resources.find(
      (r) => r.kind === e.kind && r.metadata.namespace === e.namespace && r.metadata.name === e.name,
    );
    if (!local)
      return {
        file: e.kind ? `${e.kind} ${e.namespace}/${e.name} (in the control plane)` : '(control plane)',
        line: 0,
        column: 0,
        path,
        message,
      };
    return { file: local.source.file, ...local.source.locate(parseFieldPath(path)), path, message };
  });
}

/** `gatehouse apply -f <file|dir>... [--dry-run] [-n ns]`: one line per resource; exit 1 on refusal. */
export async function runApply(args: string[]): Promise<number> {
  const outcome = await sendApply(args, false, 'apply');
  if ('code' in outcome) return outcome.code;
  const suffix = outcome.dryRun ? ' (dry run)' : '';
  for (const r of outcome.results) {
    const action = r.action === 'updated' ? 'configured' : r.action;
    process.stdout.write(`${r.kind.toLowerCase()}/${r.name} ${action}${suffix}\n`);
  }
  return 0;
}
