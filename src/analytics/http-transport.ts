import { Agent, request } from 'undici';
import type { EncodedBatch, EventTransport, SendResult } from './transport.ts';

export interface HttpTransportOptions {
  readonly url: string;
  readonly timeoutMs: number;
  /** CA certificates (PEM) for an https endpoint; default: the system's. */
  readonly ca?: string;
  /** Client certificate (mTLS mode of the subsystem link). */
  readonly cert?: string;
  readonly key?: string;
}

/** Answers are small problem documents; anything longer is cut. */
const MAX_ANSWER_BYTES = 16 * 1024;

/** POSTs batches to an ingestion endpoint; a 202 is the only proof of durable storage. */
export function createHttpTransport(options: HttpTransportOptions): EventTransport {
  const agent = new Agent({
    connections: 4,
    connect: {
      timeout: options.timeoutMs,
      ...(options.ca ? { ca: options.ca } : {}),
      ...(options.cert ? { cert: options.cert, key: options.key } : {}),
    },
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
  });
  return {
    async send(batch: EncodedBatch, headers: Readonly<Record<string, string>>): Promise<SendResult> {
      let answer: Awaited<ReturnType<typeof request>>;
      try {
        answer = await request(options.url, {
          method: 'POST',
          dispatcher: agent,
          headers: {
            ...headers,
            'content-type': 'application/json',
            'content-encoding': batch.encoding,
            'x-gatehouse-events': String(batch.events),
          },
          body: batch.body,
          signal: AbortSignal.timeout(options.timeoutMs),
        });
      } catch (err) {
        return { kind: 'retry', reason: (err as Error).message };
      }
      const text = await readBounded(answer.body);
      const status = answer.statusCode;
      if (status === 202 || status === 200) return { kind: 'delivered' };
      const reason = `HTTP ${status}${text ? `: ${text.slice(0, 300)}` : ''}`;
      // 400/413/415/422: the batch itself is refused and always will be; 401/403 may be keys not yet
      // published (a new gateway key), 408/429/5xx are transient.
      if (status === 400 || status === 413 || status === 415 || status === 422)
        return { kind: 'rejected', reason };
      return { kind: 'retry', reason };
    },
    async close() {
      await agent.close();
    },
  };
}

async function readBounded(body: AsyncIterable<Buffer> & { destroy(): void }): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      size += chunk.length;
      if (size > MAX_ANSWER_BYTES) {
        body.destroy();
        break;
      }
      chunks.push(chunk);
    }
  } catch {
    // An answer cut short still has its status.
  }
  return Buffer.concat(chunks).toString('utf8');
}
