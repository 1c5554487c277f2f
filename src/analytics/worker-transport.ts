import { Worker } from 'node:worker_threads';
import type { HttpTransportOptions } from './http-transport.ts';
import type { EncodedBatch, EventTransport, SendResult } from './transport.ts';
import type { UploadAnswer, UploadRequest, UploadWorkerData } from './upload-worker.ts';

/**
 * The HTTP transport run in a worker thread (upload-worker.ts), which also compresses: the main
 * thread only hands over the raw batch (one copy) and gets the result. Takes `identity` batches
 * (`compressesItself`). A worker that dies or does not answer in time fails the upload as `retry`
 * (the shipper keeps the batch and retries) and is replaced on the next send.
 */
export function createWorkerHttpTransport(
  http: HttpTransportOptions,
  compression: 'zstd' | 'gzip' | 'none',
): EventTransport {
  let worker: Worker | null = null;
  let nextId = 0;
  const waiting = new Map<number, (result: SendResult) => void>();
  // The worker's own timeout ends a call first; this bounds a worker that hangs or is starved.
  const answerWithinMs = 2 * http.timeoutMs + 5000;

  const settleAll = (reason: string) => {
    for (const resolve of waiting.values()) resolve({ kind: 'retry', reason });
    waiting.clear();
  };
  const start = (): Worker => {
    const w = new Worker(new URL('./upload-worker.ts', import.meta.url), {
      workerData: { http, compression } satisfies UploadWorkerData,
      // One batch (≤ batch.maxEvents events) at a time needs little; a worker past this dies and
      // is replaced (its upload is retried) instead of growing the gateway's memory.
      resourceLimits: { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 8 },
    });
    w.unref();
    w.on('message', (answer: UploadAnswer) => {
      const resolve = waiting.get(answer.id);
      waiting.delete(answer.id);
      if (waiting.size === 0) w.unref();
      resolve?.(answer.result);
    });
    w.on('error', (err) => {
      if (worker === w) worker = null;
      settleAll(`analytics upload worker failed: ${err.message}`);
    });
    w.on('exit', (code) => {
      if (worker === w) worker = null;
      settleAll(`analytics upload worker exited (${code})`);
    });
    return w;
  };
  const call = (message: UploadRequest): Promise<SendResult> => {
    worker ??= start();
    const w = worker;
    w.ref(); // an upload in flight keeps the process up, as its socket would
    return new Promise<SendResult>((resolve) => {
      const timer = setTimeout(() => {
        if (!waiting.delete(message.id)) return;
        resolve({ kind: 'retry', reason: 'analytics upload worker did not answer in time' });
        void w.terminate(); // replaced on the next send
      }, answerWithinMs);
      timer.unref();
      waiting.set(message.id, (result) => {
        clearTimeout(timer);
        resolve(result);
      });
      w.postMessage(message);
    });
  };
  return {
    compressesItself: true,
    send(batch: EncodedBatch, headers: Readonly<Record<string, string>>): Promise<SendResult> {
      // Structured clone copies the bytes into the worker (a transfer could detach Buffer's pool).
      return call({ id: ++nextId, raw: batch.body, events: batch.events, headers });
    },
    async close() {
      const w = worker;
      if (w === null) return;
      await call({ id: ++nextId, close: true });
      worker = null;
      await w.terminate();
    },
  };
}
