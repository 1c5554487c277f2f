// An analytics ingestion endpoint for the benchmark that stores nothing: takes every POST of event
// batches (zstd, gzip or identity), counts the distinct event ids and answers 202, as ingestion does
// once a batch is durable. Its own niced process, like the OTLP sink: in a deployment ingestion runs
// on other machines, and on this 2-core one the real ingestion (verify, parse, validate, SQLite)
// takes ~30 µs CPU per event from what is measured. `--ingest real` in bench/run.ts uses it instead.
//
//   node bench/analytics-sink.ts [--port n] [--exit-with-stdin]
//
// Prints {"msg":"ready","port":N} once listening on 127.0.0.1; GET /count answers {"events":N}
// (distinct ids) and {"received":N} (ids received, re-sends included).
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import { serveAsBenchChild } from './child-server.ts';

/** Every event the gateway writes starts so (src/analytics/call.ts), its UUID after it. */
const EVENT_START = Buffer.from('{"v":1,"id":"');
const ID_LENGTH = 36;
const MAX_DECOMPRESSED = 64 << 20;

function decode(body: Buffer, encoding: string | undefined): Buffer {
  if (encoding === 'zstd') return zstdDecompressSync(body, { maxOutputLength: MAX_DECOMPRESSED });
  if (encoding === 'gzip') return gunzipSync(body, { maxOutputLength: MAX_DECOMPRESSED });
  return body;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      'exit-with-stdin': { type: 'boolean', default: false },
      port: { type: 'string', default: '0' },
    },
  });
  const ids = new Set<string>();
  let received = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let status = 202;
      let text = '{}';
      if (req.method === 'GET') {
        status = 200;
        text = JSON.stringify({ events: ids.size, received });
      } else {
        try {
          const raw = decode(Buffer.concat(chunks), req.headers['content-encoding']);
          for (let at = raw.indexOf(EVENT_START); at >= 0; at = raw.indexOf(EVENT_START, at + 1)) {
            const start = at + EVENT_START.length;
            ids.add(raw.toString('latin1', start, start + ID_LENGTH));
            received++;
          }
        } catch {
          status = 400; // refused: the shipper drops and counts it, and the bench sees events missing
          text = '{"title":"not a batch"}';
        }
      }
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
    });
  });
  serveAsBenchChild(server, { port: Number(values.port), exitWithStdin: values['exit-with-stdin'] });
}

if (import.meta.main) main();
