// An analytics ingestion endpoint for the benchmark that stores nothing: takes every POST of event
// batches (zstd, gzip or identity), answers 202, as ingestion does once a batch is durable, and counts
// the distinct event ids. Its own niced process, like the OTLP sink: in a deployment ingestion runs
// on other machines, and on this 2-core one the real ingestion (verify, parse, validate, SQLite)
// takes ~30 µs CPU per event from what is measured. `--ingest real` in bench/run.ts uses it instead.
// Bodies are kept as they came and decoded when the count is asked for (after the rounds): decoding
// them as they arrive cost ~6 µs of CPU per event, taken from the two cores the gateway is measured on.
//
//   node bench/analytics-sink.ts [--port n] [--exit-with-stdin]
//
// Prints {"msg":"ready","port":N} once listening on 127.0.0.1; GET /count answers {"events":N}
// (distinct ids), {"received":N} (ids received, re-sends included) and {"refused":N} (bodies that did
// not decode).
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
  let refused = 0;
  let pending: Array<{ body: Buffer; encoding: string | undefined }> = [];
  const countPending = () => {
    for (const { body, encoding } of pending) {
      let raw: Buffer;
      try {
        raw = decode(body, encoding);
      } catch {
        refused++; // counted, and the bench sees its events missing
        continue;
      }
      for (let at = raw.indexOf(EVENT_START); at >= 0; at = raw.indexOf(EVENT_START, at + 1)) {
        const start = at + EVENT_START.length;
        ids.add(raw.toString('latin1', start, start + ID_LENGTH));
        received++;
      }
    }
    pending = [];
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let status = 202;
      let text = '{}';
      if (req.method === 'GET') {
        countPending();
        status = 200;
        text = JSON.stringify({ events: ids.size, received, refused });
      } else {
        pending.push({ body: Buffer.concat(chunks), encoding: req.headers['content-encoding'] });
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
