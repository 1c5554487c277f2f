import { parseArgs } from 'node:util';
import { formatConfigError } from '../config/errors.ts';
import { loadConfig } from '../config/load.ts';
import { defaultPeer, describeInput, type Explanation, explain } from '../gateway/explain.ts';
import { compilePlan } from '../plan/compile.ts';

const usage = `usage: gatehouse explain --config <file|dir>... [--gateway <name>] [-H 'Name: value']...
                         [--listener <name>] [--peer <ip>] [--json] <METHOD> <URL>

Explains, offline, what the gateway would do with a request: the canonical request (or why it is
refused), the rule it matches, each policy's verdict and the outcome. Identity providers are not
contacted: key sets and introspection answer "unavailable" (use POST /explain on the admin port of
a running gateway for live answers). Rate-limit policies are not run.
  URL          http(s)://host/path?query, or /path?query with -H 'Host: …'
  --listener   listener it arrives on (default: the first whose protocol is the URL's scheme)
  --peer       address it comes from (default: ${defaultPeer}, not a trusted proxy)
Exit status: 0 it would be forwarded, 1 it would be refused, 2 usage error or invalid configuration.
`;

/** `gatehouse explain`: loads and compiles the config offline and explains one request. */
export async function runExplain(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c', multiple: true },
      gateway: { type: 'string' },
      header: { type: 'string', short: 'H', multiple: true },
      listener: { type: 'string' },
      peer: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  if (!values.config?.length || positionals.length !== 2) {
    process.stderr.write(usage);
    return 2;
  }
  const [method, url] = positionals as [string, string];
  const headers: Array<[string, string]> = [];
  for (const line of values.header ?? []) {
    const colon = line.indexOf(':');
    if (colon <= 0) {
      process.stderr.write(`gatehouse explain: -H expects 'Name: value', got ${JSON.stringify(line)}\n`);
      return 2;
    }
    headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
  }

  const loaded = loadConfig(values.config);
  const compiled =
    loaded.errors.length === 0 ? compilePlan(loaded.resources, { gatewayName: values.gateway }) : null;
  if (!compiled?.ok) {
    const errors = compiled ? compiled.errors : loaded.errors;
    process.stderr.write(
      `${errors.map(formatConfigError).join('\n')}\nconfiguration is invalid: nothing to explain\n`,
    );
    return 2;
  }
  const plan = compiled.plan;
  try {
    const described = describeInput(plan, {
      method,
      url,
      headers,
      listener: values.listener,
      peer: values.peer,
    });
    if (!described.ok) {
      process.stderr.write(`gatehouse explain: ${described.message}\n`);
      return 2;
    }
    const explanation = await explain(plan, described.request, { live: false, timeoutMs: 10_000 });
    process.stdout.write(
      values.json ? `${JSON.stringify(explanation, null, 2)}\n` : formatExplanation(explanation),
    );
    return explanation.outcome.decision === 'forward' ? 0 : 1;
  } finally {
    for (const provider of plan.providers.values()) {
      provider.jwt.close();
      provider.introspector?.close();
    }
  }
}

/** The explanation for a person reading a terminal. */
export function formatExplanation(e: Explanation): string {
  const lines: string[] = [];
  const r = e.request;
  const where = `${r.protocol}://${r.host ?? '(no host)'}${r.target}`;
  lines.push(`${r.method} ${where}`);
  lines.push(
    `  gateway ${e.gateway}, plan ${e.planVersion}, ${e.live ? 'live' : 'offline (no identity provider contacted)'}`,
  );
  lines.push(
    `  on listener ${r.listener} from ${r.peer} (${r.trustedPeer ? 'a trusted proxy' : 'not a trusted proxy'})`,
  );
  lines.push('');
  if (e.canonical) {
    const c = e.canonical;
    lines.push(`canonical  ${c.method} ${c.host} ${c.path}${c.query ? `?${c.query}` : ''}`);
  }
  if (e.rejected?.code === 'route_not_found') {
    lines.push(`route      no route (404): ${e.rejected.detail}`);
  } else if (e.rejected) {
    lines.push(`rejected   ${e.rejected.status} ${e.rejected.code}: ${e.rejected.detail}`);
  }
  if (e.route) {
    const params = Object.entries(e.route.params)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    lines.push(`route      ${e.route.id}  ${e.route.template}${params ? `  (${params})` : ''}`);
    lines.push(`           upstream ${e.route.upstream}`);
  }
  if (e.policies.length > 0) {
    lines.push('policies');
    const width = Math.max(...e.policies.map((p) => p.policy.length));
    for (const p of e.policies) {
      let verdict: string = p.verdict;
      if (p.verdict === 'respond')
        verdict = `respond ${p.status} ${p.code}${p.detail ? `: ${p.detail}` : ''}`;
      if (p.verdict !== 'respond' && p.note) verdict += `  (${p.note})`;
      lines.push(`  ${p.stage.padEnd(12)} ${p.policy.padEnd(width)}  ${verdict}`);
      if (p.verdict === 'respond' && p.note)
        lines.push(`  ${''.padEnd(12)} ${''.padEnd(width)}  (${p.note})`);
    }
  }
  if (e.identity) {
    const id = e.identity;
    const parts = [`${id.method}`, `subject ${id.subject ?? '(anonymous)'}`];
    if (id.provider) parts.push(`provider ${id.provider}`);
    if (id.consumer)
      parts.push(`consumer ${id.consumer}${id.groups?.length ? ` [${id.groups.join(', ')}]` : ''}`);
    if (id.scopes?.length) parts.push(`scopes ${id.scopes.join(' ')}`);
    if (id.certificate) parts.push(`certificate ${id.certificate}`);
    lines.push(`identity   ${parts.join(', ')}`);
  }
  const o = e.outcome;
  if (o.decision === 'forward') {
    lines.push(`outcome    FORWARD to ${o.url}`);
    lines.push('           upstream headers set:');
    for (const [name, value] of Object.entries(o.set)) lines.push(`             ${name}: ${value}`);
    if (o.removed.length > 0) lines.push(`           removed: ${o.removed.join(', ')}`);
  } else if (o.decision === 'answer') {
    lines.push(`outcome    ANSWERED BY THE GATEWAY ${o.status}`);
    for (const [name, value] of Object.entries(o.headers)) lines.push(`             ${name}: ${value}`);
  } else {
    lines.push(`outcome    DENY ${o.status} ${o.code}${o.detail ? `: ${o.detail}` : ''}`);
    for (const [name, value] of Object.entries(o.headers ?? {})) lines.push(`             ${name}: ${value}`);
  }
  return `${lines.join('\n')}\n`;
}
