import { runDev } from './dev.ts';
import { runExplain } from './explain.ts';
import { runGateway } from './gateway.ts';
import { runHashKey } from './hash-key.ts';
import { runSchema } from './schema.ts';
import { runToken } from './token.ts';
import { runValidate } from './validate.ts';

const usage = `gatehouse <command> [options]

Commands:
  gateway --config <file|dir>... [--gateway <name>] [--no-watch]
                         run a gateway in local mode from YAML files
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
