import { runAnalytics, runAnalyticsIngest } from './analytics.ts';
import { runBootstrapToken } from './bootstrap-token.ts';
import { runApply } from './apply.ts';
import { runAudit } from './audit.ts';
import { runControlPlane } from './control-plane.ts';
import { runDelete } from './delete.ts';
import { runDev } from './dev.ts';
import { runDiff } from './diff.ts';
import { runExplain } from './explain.ts';
import { runGateway } from './gateway.ts';
import { runGet } from './get.ts';
import { runHashKey } from './hash-key.ts';
import { runSchema } from './schema.ts';
import { runToken } from './token.ts';
import { runValidate } from './validate.ts';

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

const commands: Record<string, Command> = {
  gateway: runGateway,
  validate: runValidate,
  explain: runExplain,
  schema: runSchema,
  'hash-key': runHashKey,
  dev: runDev,
  token: runToken,
  'control-plane': runControlPlane,
  apply: runApply,
  diff: runDiff,
  get: runGet,
  delete: runDelete,
  audit: runAudit,
  'bootstrap-token': runBootstrapToken,
  'analytics-ingest': runAnalyticsIngest,
  analytics: runAnalytics,
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(usage);
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`gatehouse: unknown command ${JSON.stringify(name)}\n\n${usage}`);
    return 2;
  }
  try {
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
