// The analytics upload thread (worker-transport.ts): compresses batches and POSTs them to ingestion,
// off the event loop the gateway's requests share. One batch at a time comes in; its result goes back.
import { parentPort, workerData } from 'node:worker_threads';
import { zstdCompressSync, gzipSync } from 'node:zlib';
import { createHttpTransport, type HttpTransportOptions } from './http-transport.ts';
import type { EncodedBatch, SendResult } from './transport.ts';

export interface UploadWorkerData {
  readonly http: HttpTransportOptions;
  readonly compression: 'zstd' | 'gzip' | 'none';
}

export type UploadRequest =
  | {
      readonly id: number;
      readonly raw: Uint8Array;
      readonly events: number;
      readonly headers: Readonly<Record<string, string>>;
    }
  | { readonly id: number; readonly close: true };

export interface UploadAnswer {
  readonly id: number;
  readonly result: SendResult;
}

const data = workerData as UploadWorkerData;
const transport = createHttpTransport(data.http);
const port = parentPort!;

function encode(raw: Buffer, events: number): EncodedBatch {
  // Synchronous: this thread does nothing else, and one batch is in flight at a time.
  if (data.compression === 'zstd') return { body: zstdCompressSync(raw), encoding: 'zstd', events };
  if (data.compression === 'gzip') return { body: gzipSync(raw), encoding: 'gzip', events };
  return { body: raw, encoding: 'identity', events };
}

port.on('message', async (message: UploadRequest) => {
  if ('close' in message) {
    await transport.close().catch(() => {});
    port.postMessage({ id: message.id, result: { kind: 'delivered' } } satisfies UploadAnswer);
    return;
  }
  let result: SendResult;
  try {
    const raw = Buffer.from(message.raw.buffer, message.raw.byteOffset, message.raw.byteLength);
    result = await transport.send(encode(raw, message.events), message.headers);
  } catch (err) {
    result = { kind: 'retry', reason: (err as Error).message };
  }
  port.postMessage({ id: message.id, result } satisfies UploadAnswer);
});
