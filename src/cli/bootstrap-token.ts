import { parseArgs } from 'node:util';
import { AdminError, adminClient, refusalMessage, table } from './admin-client.ts';

const usage = `usage:
  gatehouse bootstrap-token create --gateway <name> [-n <namespace>] [--label k=v]... [--ttl 1h] [--uses 1]
  gatehouse bootstrap-token list
  gatehouse bootstrap-token revoke <id>
options for every subcommand:
  --server <url>   the control plane (default $GATEHOUSE_SERVER, else http://127.0.0.1:9400)
  --token <token>  an admin token (default $GATEHOUSE_TOKEN)
  --ca <pem>       the CA that signed the control plane's TLS certificate
`;

interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

/**
 * `gatehouse bootstrap-token`: create (the token is printed once), list and revoke the one-time
 * tokens gateways register with. Talks to the admin API; needs the admin role.
 */
export async function runBootstrapToken(args: string[], io: Io = process): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      server: { type: 'string' },
      token: { type: 'string' },
      ca: { type: 'string' },
      gateway: { type: 'string' },
      namespace: { type: 'string', short: 'n' },
      label: { type: 'string', multiple: true },
      ttl: { type: 'string' },
      uses: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const [sub, ...rest] = positionals;
  const fail = (message: string) => {
    io.stderr.write(`gatehouse bootstrap-token: ${message}\n${usage}`);
    return 2;
  };
  const token = values.token ?? io.env.GATEHOUSE_TOKEN;
  if (!token) return fail('an admin token is needed: --token or GATEHOUSE_TOKEN');
  let client: ReturnType<typeof adminClient>;
  try {
    client = adminClient({ server: values.server, token, ca: values.ca }, io.env);
  } catch (err) {
    if (err instanceof AdminError) return fail(err.message);
    throw err;
  }
  const server = client.server;
  const call = async (
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    body?: unknown,
  ): Promise<{ ok: true; value: unknown } | { ok: false; message: string }> => {
    try {
      const answer = await client.request(method, path, body);
      if (answer.status >= 200 && answer.status < 300) return { ok: true, value: answer.body };
      return { ok: false, message: refusalMessage(answer, server, true) };
    } catch (err) {
      if (err instanceof AdminError) return { ok: false, message: err.message };
      throw err;
    }
  };
  try {
    return await subcommand();
  } finally {
    await client.close();
  }

  async function subcommand(): Promise<number> {
    if (sub === 'create') {
      if (rest.length > 0) return fail(`unexpected ${rest.join(' ')}`);
      if (!values.gateway) return fail('--gateway <name> is required');
      const labels: Record<string, string> = {};
      for (const l of values.label ?? []) {
        const eq = l.indexOf('=');
        if (eq <= 0) return fail(`--label ${l}: expected key=value`);
        labels[l.slice(0, eq)] = l.slice(eq + 1);
      }
      let uses: number | undefined;
      if (values.uses !== undefined) {
        uses = Number(values.uses);
        if (!Number.isInteger(uses)) return fail(`--uses ${values.uses}: expected a whole number`);
      }
      const answer = await call('POST', '/api/v1/bootstrap-tokens', {
        gateway: values.gateway,
        ...(values.namespace === undefined ? {} : { namespace: values.namespace }),
        labels,
        ...(values.ttl === undefined ? {} : { ttl: values.ttl }),
        ...(uses === undefined ? {} : { uses }),
      });
      if (!answer.ok) return report(io, answer.message);
      const v = answer.value as Record<string, unknown>;
      if (values.json) io.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
      else io.stdout.write(`${v.token}\n`);
      io.stderr.write(
        `bootstrap token ${v.id} for gateway ${v.namespace}/${v.gateway}: ${v.uses} use(s), expires ${v.expiresAt}.\n` +
          'It is shown only this once. Start the gateway with:\n' +
          `  gatehouse gateway --control-plane ${server} --token <token>\n`,
      );
      return 0;
    }
    if (sub === 'list') {
      if (rest.length > 0) return fail(`unexpected ${rest.join(' ')}`);
      const answer = await call('GET', '/api/v1/bootstrap-tokens');
      if (!answer.ok) return report(io, answer.message);
      const items = ((answer.value as { items?: unknown[] }).items ?? []) as Array<Record<string, unknown>>;
      if (values.json) {
        io.stdout.write(`${JSON.stringify(items, null, 2)}\n`);
        return 0;
      }
      const rows = [['ID', 'GATEWAY', 'STATUS', 'USED', 'EXPIRES', 'LABELS']];
      for (const t of items)
        rows.push([
          String(t.id),
          `${t.namespace}/${t.gateway}`,
          String(t.status),
          `${t.used}/${t.uses}`,
          String(t.expiresAt),
          Object.entries((t.labels ?? {}) as Record<string, string>)
            .map(([k, v]) => `${k}=${v}`)
            .join(','),
        ]);
      io.stdout.write(`${table(rows)}\n`);
      return 0;
    }
    if (sub === 'revoke') {
      if (rest.length !== 1) return fail('revoke takes exactly one token id');
      const answer = await call('DELETE', `/api/v1/bootstrap-tokens/${encodeURIComponent(rest[0]!)}`);
      if (!answer.ok) return report(io, answer.message);
      io.stdout.write(`revoked ${rest[0]}\n`);
      return 0;
    }
    return fail(sub === undefined ? 'a subcommand is needed' : `unknown subcommand ${JSON.stringify(sub)}`);
  }
}

function report(io: Io, message: string): number {
  io.stderr.write(`gatehouse bootstrap-token: ${message}\n`);
  return 1;
}
