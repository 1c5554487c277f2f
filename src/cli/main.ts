const usage = `gatehouse <command> [options]

Commands:
  gateway --config <file|dir>... [--gateway <name>] [--no-watch]
                         run a gateway in local mode from YAML files
  gateway --control-plane <url> --data-dir <dir> [--token <bootstrap>] [--ca <file>]
                         run a gateway in connected mode: config from the control plane, the last
                         good snapshot kept in --data-dir (--token only to register the first time)
  validate <file|dir>... check configuration; prints every problem with file:line:column
  explain --config <path>... [-H 'Name: value']... [--json] <METHOD> <URL>
                         what the gateway would do with a request, offline: route, each policy's
                         verdict, outcome (exit 0 forwarded, 1 refused)
  schema [--kind <Kind>] print the JSON Schema of the resources (for editor completion)
  hash-key [--generate]  print the sha256 of an API key read from stdin, for a Consumer;
                         --generate: make a random key and print it once with its sha256
  dev [--config <path>] [--upstream-port <n>] [--idp-port <n>]
                         run the quickstart: a demo identity provider, a demo upstream and a
                         gateway on examples/quickstart
  token [--scope <scopes>]... [--idp <issuer>]
                         print a demo access token (JWT) from the identity provider of \`dev\`
  bootstrap-token create --gateway <name> [-n <ns>] [--label k=v]... [--ttl 1h] [--uses 1] | list | revoke <id>
                         one-time tokens gateways register with at the control plane (admin API)
  analytics-ingest --data-dir <dir> [--spec <file>] [--port <n>] [--query-token-env NAME]
                         analytics ingestion and its query API alone (docs/analytics.md)
  analytics [requests|top] --url <url> [--token-env NAME] [--from -1h] [--interval 1m] [--group-by ...]
                         request counts, error rates, latency percentiles, top consumers/routes
  control-plane --config <file|dir>... [--name <name>]
                         run the control plane (admin API) from a ControlPlane resource
  apply -f <file|dir>... [-n <ns>] [--dry-run]
                         create or update resources in the control plane; prints what changed
  diff -f <file|dir>... [-n <ns>]
                         what apply would change (exit 0 same, 1 different, 2 refused)
  get <kind> [name] [-n <ns>] [-l <selector>] [-o yaml|json]
                         resources in the control plane
  delete <kind> <name> [-n <ns>] | delete -f <file|dir>...
                         delete resources from the control plane
  audit [--kind <k>] [--name <n>] [-n <ns>] [--after <rev>] [--diff]
                         the control plane's audit log
                         (control-plane clients: --server <url> (GATEHOUSE_SERVER), --token <t>
                         (GATEHOUSE_TOKEN), --ca <file> for https)
  help                   this text
`;

type Command = (args: string[]) => Promise<number>;

// Loaded on use: a `gatehouse get` need not load the gateway, the control plane and oidc-provider.
const commands: Record<string, () => Promise<Command>> = {
  gateway: () => import('./gateway.ts').then((m) => m.runGateway),
  validate: () => import('./validate.ts').then((m) => m.runValidate),
  explain: () => import('./explain.ts').then((m) => m.runExplain),
  schema: () => import('./schema.ts').then((m) => m.runSchema),
  'hash-key': () => import('./hash-key.ts').then((m) => m.runHashKey),
  dev: () => import('./dev.ts').then((m) => m.runDev),
  token: () => import('./token.ts').then((m) => m.runToken),
  'control-plane': () => import('./control-plane.ts').then((m) => m.runControlPlane),
  apply: () => import('./apply.ts').then((m) => m.runApply),
  diff: () => import('./diff.ts').then((m) => m.runDiff),
  get: () => import('./get.ts').then((m) => m.runGet),
  delete: () => import('./delete.ts').then((m) => m.runDelete),
  audit: () => import('./audit.ts').then((m) => m.runAudit),
  'bootstrap-token': () => import('./bootstrap-token.ts').then((m) => m.runBootstrapToken),
  'analytics-ingest': () => import('./analytics.ts').then((m) => m.runAnalyticsIngest),
  analytics: () => import('./analytics.ts').then((m) => m.runAnalytics),
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(usage);
    return name === undefined ? 2 : 0;
  }
  const load = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!load) {
    process.stderr.write(`gatehouse: unknown command ${JSON.stringify(name)}\n\n${usage}`);
    return 2;
  }
  try {
    const command = await load();
    return await command(rest);
  } catch (err) {
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`gatehouse ${name}: ${(err as Error).message}\n`);
      return 2;
    }
    throw err;
  }
}

/** Runs the CLI as a process: exit code from the command; -1 means a server keeps running. */
export function run(): void {
  main(process.argv.slice(2)).then(
    (code) => {
      if (code !== -1) process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`gatehouse: ${(err as Error).stack ?? err}\n`);
      process.exitCode = 1;
    },
  );
}

if (import.meta.main) run();
