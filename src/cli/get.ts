import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { kindNamed, pluralOf } from '../control-plane/api/kinds.ts';
import { adminFlags, age, refusalMessage, table, withAdminClient } from './admin-client.ts';

const usage =
  'usage: gatehouse get <kind> [name] [-n <namespace>] [-l <selector>] [-o yaml|json] [--server <url>] [--token <t>]\n';

interface Item {
  kind: string;
  metadata: { name: string; namespace: string; resourceVersion: string; creationTimestamp: string };
}

/** `gatehouse get <kind> [name]`: a table NAMESPACE NAME VERSION AGE, or the resources as YAML / JSON. */
export async function runGet(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...adminFlags,
      namespace: { type: 'string', short: 'n' },
      selector: { type: 'string', short: 'l' },
      output: { type: 'string', short: 'o' },
    },
  });
  const [kindName, name, ...extra] = positionals;
  if (kindName === undefined || extra.length > 0) {
    process.stderr.write(usage);
    return 2;
  }
  const kind = kindNamed(kindName);
  if (!kind) {
    process.stderr.write(
      `unknown kind ${JSON.stringify(kindName)}: use gateways, upstreams, apirules, identityproviders, consumers or policies\n`,
    );
    return 2;
  }
  if (values.output !== undefined && values.output !== 'yaml' && values.output !== 'json') {
    process.stderr.write('-o must be yaml or json\n');
    return 2;
  }
  const selector = values.selector ? `labelSelector=${encodeURIComponent(values.selector)}` : '';
  let path: string;
  if (name !== undefined)
    path = `/api/v1/namespaces/${encodeURIComponent(values.namespace ?? 'default')}/${pluralOf(kind)}/${encodeURIComponent(name)}`;
  else if (values.namespace !== undefined)
    path = `/api/v1/namespaces/${encodeURIComponent(values.namespace)}/${pluralOf(kind)}${selector ? `?${selector}` : ''}`;
  else path = `/api/v1/resources?kind=${kind}${selector ? `&${selector}` : ''}`;

  return withAdminClient(values, async (client) => {
    const answer = await client.request('GET', path);
    if (answer.status !== 200) {
      process.stderr.write(`${refusalMessage(answer, client.server, client.hasToken)}\n`);
      return 1;
    }
    const items = (name !== undefined ? [answer.body] : ((answer.body?.items ?? []) as unknown[])) as Item[];
    if (values.output === 'json')
      process.stdout.write(
        `${JSON.stringify(name !== undefined ? answer.body : answer.body?.items, null, 2)}\n`,
      );
    else if (values.output === 'yaml') process.stdout.write(items.map((i) => stringify(i)).join('---\n'));
    else if (items.length === 0) process.stderr.write(`no ${pluralOf(kind)} found\n`);
    else {
      const rows = [['NAMESPACE', 'NAME', 'VERSION', 'AGE']];
      for (const i of items)
        rows.push([
          i.metadata.namespace,
          i.metadata.name,
          i.metadata.resourceVersion,
          age(i.metadata.creationTimestamp),
        ]);
      process.stdout.write(`${table(rows)}\n`);
    }
    return 0;
  });
}
