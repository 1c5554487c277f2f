// An OTLP/HTTP receiver for the benchmark: takes every POST to /v1/traces, counts the spans (JSON
// bodies) and answers 200. Its own process, so parsing exports costs neither gateway nor load generator.
//
//   node bench/otlp-sink.ts [--exit-with-stdin]
//
// Prints {"msg":"ready","port":N} once listening on 127.0.0.1; GET /count answers {"spans":N}.
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { serveAsBenchChild } from './child-server.ts';

function main(): void {
  const { values } = parseArgs({ options: { 'exit-with-stdin': { type: 'boolean', default: false } } });
  let spans = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'POST') {
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          for (const rs of body.resourceSpans ?? [])
            for (const ss of rs.scopeSpans ?? []) spans += ss.spans?.length ?? 0;
        } catch {
          // Not JSON: not counted.
        }
      }
      const text = req.method === 'GET' ? JSON.stringify({ spans }) : '{}';
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  serveAsBenchChild(server, { port: 0, exitWithStdin: values['exit-with-stdin'] });
}

if (import.meta.main) main();
