// The upstream every benchmark target forwards to: a node:http server that answers every request with
// the same small JSON body, as cheaply as Node allows, so the numbers measure the proxy in front of it.
//
//   node bench/upstream.ts [--port N] [--exit-with-stdin]
//
// Prints one JSON line {"msg":"ready","port":N} on stdout once it listens on 127.0.0.1. Stops on
// SIGTERM/SIGINT and, with --exit-with-stdin, when its stdin closes (the bench runner went away).
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { serveAsBenchChild } from './child-server.ts';

/** ~100 bytes of JSON; the runner checks that every proxied response carries exactly this body. */
export const UPSTREAM_BODY = JSON.stringify({
  service: 'bench-upstream',
  ok: true,
  items: [1, 2, 3, 4, 5],
  note: 'fixed response for the proxy benchmark',
});

function main(): void {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      'exit-with-stdin': { type: 'boolean', default: false },
    },
  });
  const body = Buffer.from(UPSTREAM_BODY);
  const headers = {
    'content-type': 'application/json',
    'content-length': String(body.length),
  };
  const server = createServer({ keepAliveTimeout: 65_000, headersTimeout: 66_000 }, (req, res) => {
    // A GET has no body; anything sent anyway is drained by Node before the next request is parsed.
    if (req.method === 'HEAD') {
      res.writeHead(200, headers);
      res.end();
      return;
    }
    res.writeHead(200, headers);
    res.end(body);
  });
  // Longer than any client pool's idle timeout, so it is always the client that closes an idle
  // keep-alive connection and a request is never sent on a socket the server is closing.
  server.keepAliveTimeout = 65_000;
  serveAsBenchChild(server, { port: Number(values.port), exitWithStdin: values['exit-with-stdin'] });
}

if (import.meta.main) main();
