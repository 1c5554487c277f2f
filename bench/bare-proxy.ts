// The floor any Node gateway starts from: node:http in front of an undici Pool, copying headers and
// streaming the body back, with no routing, policies, logging or metrics.
//
//   node bench/bare-proxy.ts --upstream http://127.0.0.1:PORT [--port N] [--connections 256] [--exit-with-stdin]
//
// Uses the same undici Pool settings as Gatehouse's forwarder (256 connections by default) so the
// difference to Gatehouse is what Gatehouse does per request, not how it talks to the upstream.
// Prints {"msg":"ready","port":N} on stdout once it listens on 127.0.0.1.
import { createServer, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { parseArgs } from 'node:util';
import { serveAsBenchChild } from './child-server.ts';
import { Pool } from 'undici';

const hopByHop = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);

function main(): void {
  const { values } = parseArgs({
    options: {
      upstream: { type: 'string' },
      port: { type: 'string', default: '0' },
      connections: { type: 'string', default: '256' },
      'exit-with-stdin': { type: 'boolean', default: false },
    },
  });
  if (!values.upstream) {
    process.stderr.write('usage: node bench/bare-proxy.ts --upstream http://host:port [--port N]\n');
    process.exit(2);
  }
  const origin = new URL(values.upstream);
  const pool = new Pool(origin.origin, {
    connections: Number(values.connections),
    keepAliveTimeout: 4_000,
    keepAliveMaxTimeout: 60_000,
  });

  const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    const raw = req.rawHeaders;
    const headers: string[] = ['host', origin.host];
    for (let i = 0; i < raw.length; i += 2) {
      if (!hopByHop.has(raw[i]!.toLowerCase())) headers.push(raw[i]!, raw[i + 1]!);
    }
    const hasBody =
      req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    const abort = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    pool
      .request({
        method: req.method as 'GET',
        path: req.url ?? '/',
        headers,
        body: hasBody ? req : null,
        signal: abort.signal,
      })
      .then(
        (response) => {
          const out: OutgoingHttpHeaders = {};
          const upstreamHeaders = response.headers as IncomingHttpHeaders;
          for (const name in upstreamHeaders) {
            if (!hopByHop.has(name)) out[name] = upstreamHeaders[name];
          }
          res.writeHead(response.statusCode, out);
          // Readable.pipe rather than stream.pipeline: pipeline aborts an internal AbortController (and
          // so builds a DOMException with a stack trace) on every completed response, ~10% of the CPU.
          const body = response.body;
          body.once('error', () => res.destroy());
          res.once('close', () => {
            if (!body.readableEnded) body.destroy();
          });
          body.pipe(res);
        },
        () => {
          if (res.headersSent || res.destroyed) {
            res.destroy();
            return;
          }
          res.writeHead(502, { 'content-length': '0' });
          res.end();
        },
      );
  });
  serveAsBenchChild(server, {
    port: Number(values.port),
    exitWithStdin: values['exit-with-stdin'],
    cleanup: () => pool.destroy(),
  });
}

if (import.meta.main) main();
