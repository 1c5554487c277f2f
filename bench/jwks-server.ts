// A tiny JSON Web Key Set server for the identity benchmarks: answers GET /jwks with the public keys
// it was given, and nothing else. Gatehouse fetches it once at startup (and every refreshInterval),
// never on the request path, so it costs nothing while the load runs.
//
//   node bench/jwks-server.ts --keys '<JSON array of public JWKs>' [--port N] [--exit-with-stdin]
//
// Prints {"msg":"ready","port":N} on stdout once it listens on 127.0.0.1, then {"msg":"jwks served"}
// for every key set it serves (the runner counts them). bench/jwt-verify.ts runs
// the same server inside its own process through startJwksServer().
import { createServer, type Server } from 'node:http';
import { parseArgs } from 'node:util';
import type { JWK } from 'jose';

export const JWKS_PATH = '/jwks';

export interface JwksServer {
  server: Server;
  port: number;
  jwksUri: string;
  /** Requests for the key set seen so far. */
  hits(): number;
  close(): Promise<void>;
}

/** Serves `{ keys }` on 127.0.0.1 (port 0: any free port); `onHit` runs for every key set served. */
export function startJwksServer(keys: JWK[], port = 0, onHit = () => {}): Promise<JwksServer> {
  const body = Buffer.from(JSON.stringify({ keys }));
  let hits = 0;
  const server = createServer((req, res) => {
    if (req.method === 'GET' && (req.url ?? '').split('?')[0] === JWKS_PATH) {
      hits++;
      onHit();
      res.writeHead(200, {
        'content-type': 'application/jwk-set+json',
        'content-length': String(body.length),
        'cache-control': 'no-store',
      });
      res.end(body);
      return;
    }
    res.writeHead(404, { 'content-length': '0' });
    res.end();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const actual = (server.address() as { port: number }).port;
      resolve({
        server,
        port: actual,
        jwksUri: `http://127.0.0.1:${actual}${JWKS_PATH}`,
        hits: () => hits,
        close: () =>
          new Promise((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      keys: { type: 'string' },
      port: { type: 'string', default: '0' },
      'exit-with-stdin': { type: 'boolean', default: false },
    },
  });
  const keys: unknown = values.keys ? JSON.parse(values.keys) : null;
  if (!Array.isArray(keys) || keys.length === 0) {
    process.stderr.write("usage: node bench/jwks-server.ts --keys '[{...public JWK...}]' [--port N]\n");
    process.exit(2);
  }
  const jwks = await startJwksServer(keys as JWK[], Number(values.port), () =>
    process.stdout.write('{"msg":"jwks served"}\n'),
  );
  process.stdout.write(`${JSON.stringify({ msg: 'ready', port: jwks.port })}\n`);
  const stop = () => {
    jwks.close().then(() => process.exit(0));
    setTimeout(() => process.exit(0), 1_000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  // Orphan guard: the runner holds our stdin open for as long as it lives.
  if (values['exit-with-stdin']) process.stdin.on('end', stop).on('error', stop).resume();
}

if (import.meta.main) await main();
