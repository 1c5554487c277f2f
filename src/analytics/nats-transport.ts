import { jetstream } from '@nats-io/jetstream';
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import type { EncodedBatch, EventTransport, SendResult } from './transport.ts';

export interface NatsTransportOptions {
  readonly servers: readonly string[];
  readonly subject: string;
  readonly timeoutMs: number;
  readonly log: (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string) => void;
}

/**
 * Publishes batches to NATS JetStream: a batch counts as delivered once JetStream acknowledged the
 * publish (stored in the stream); ingestion consumes the stream (nats-consumer.ts) and de-duplicates
 * by event id, as over HTTP. The link JWT travels in the message's `authorization` header, so the
 * consumer checks who sent each batch whatever the NATS account setup.
 */
export function createNatsTransport(options: NatsTransportOptions): EventTransport {
  let connection: Promise<NatsConnection> | null = null;
  const connected = (): Promise<NatsConnection> => {
    connection ??= connect({
      servers: [...options.servers],
      timeout: options.timeoutMs,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
    }).catch((err: unknown) => {
      connection = null;
      throw err;
    });
    return connection;
  };
  return {
    async send(batch: EncodedBatch, headers: Readonly<Record<string, string>>): Promise<SendResult> {
      try {
        const nc = await connected();
        const h = natsHeaders();
        for (const [name, value] of Object.entries(headers)) h.set(name, value);
        h.set('content-encoding', batch.encoding);
        h.set('x-gatehouse-events', String(batch.events));
        await jetstream(nc, { timeout: options.timeoutMs }).publish(options.subject, batch.body, {
          headers: h,
          timeout: options.timeoutMs,
        });
        return { kind: 'delivered' };
      } catch (err) {
        return { kind: 'retry', reason: `nats: ${(err as Error).message}` };
      }
    },
    async close() {
      const pending = connection;
      connection = null;
      if (!pending) return;
      try {
        await (await pending).drain();
      } catch {
        // Already closed or never connected: nothing to drain.
      }
    },
  };
}
