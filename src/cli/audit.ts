import { parseArgs } from 'node:util';
import { diffLines, type FieldChange } from '../control-plane/api/diff.ts';
import { adminFlags, refusalMessage, table, withAdminClient } from './admin-client.ts';

interface Entry {
  revision: number;
  at: string;
  actor: string;
  action: string;
  key: { kind: string; namespace: string; name: string };
  diff: FieldChange[];
}

/** `gatehouse audit [--kind K] [--name N] [-n ns] [--after REV] [--diff]`: who changed what, when. */
export async function runAudit(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...adminFlags,
      kind: { type: 'string' },
      name: { type: 'string' },
      namespace: { type: 'string', short: 'n' },
      after: { type: 'string' },
      limit: { type: 'string' },
      diff: { type: 'boolean', default: false },
      output: { type: 'string', short: 'o' },
    },
  });
  const query = new URLSearchParams();
  if (values.kind) query.set('kind', values.kind);
  if (values.name) query.set('name', values.name);
  if (values.namespace) query.set('namespace', values.namespace);
  if (values.after) query.set('after', values.after);
  if (values.limit) query.set('limit', values.limit);
  return withAdminClient(values, async (client) => {
    const answer = await client.request('GET', `/api/v1/audit${query.size > 0 ? `?${query}` : ''}`);
    if (answer.status !== 200) {
      process.stderr.write(`${refusalMessage(answer, client.server, client.hasToken)}\n`);
      return 1;
    }
    const items = (answer.body?.items ?? []) as Entry[];
    if (values.output === 'json') {
      process.stdout.write(`${JSON.stringify(answer.body, null, 2)}\n`);
      return 0;
    }
    const rows = [['REVISION', 'TIME', 'ACTOR', 'ACTION', 'KIND', 'NAMESPACE', 'NAME']];
    for (const e of items)
      rows.push([String(e.revision), e.at, e.actor, e.action, e.key.kind, e.key.namespace, e.key.name]);
    if (!values.diff) process.stdout.write(`${table(rows)}\n`);
    else
      for (const [i, e] of items.entries()) {
        process.stdout.write(`${table([rows[0]!, rows[i + 1]!]).split('\n')[1]}\n`);
        for (const line of diffLines(e.diff)) process.stdout.write(`    ${line}\n`);
      }
    if (answer.body?.next != null) process.stderr.write(`more: --after ${answer.body.next}\n`);
    return 0;
  });
}
