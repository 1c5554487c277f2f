import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, nanos } from '@nats-io/transport-node';
import type { Ingestion } from './ingest/ingest.ts';
import type { AnalyticsSpec } from './schema.ts';

export interface NatsConsumer {
  close(): Promise<void>;
}

type NatsSpec = NonNullable<AnalyticsSpec['nats']>;

/** Problems a redelivery cannot fix: the message is terminated (dropped), not retried. */
const permanent = new Set([
  'invalid_token',
  'analytics_batch_invalid',
  'analytics_batch_too_large',
  'analytics_unsupported_encoding',
]);

/**
 * Ingestion's side of the NATS transport: a durable pull consumer on the stream capturing the
 * gateways' subject (stream and consumer created when missing). Each message is one batch and goes
 * through the same checks as an HTTP upload (link JWT from its `authorization` header, bounds,
 * validation, de-duplication); it is acknowledged only once stored, negatively acknowledged (redelivered
 * after a delay) when the store or the key set is unavailable, and terminated when it can never be
 * taken (a forged token, an invalid batch).
 */
export async function startNatsConsumer(
  spec: NatsSpec,
  ingestion: Ingestion,
  log: (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string) => void,
): Promise<NatsConsumer> {
  const nc = await connect({
    servers: spec.servers,
    timeout: 5000,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
  });
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.info(spec.stream);
  } catch {
    await jsm.streams.add({ name: spec.stream, subjects: [spec.subject] });
  }
  await jsm.consumers.add(spec.stream, {
    durable_name: spec.durable,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(30_000),
    filter_subject: spec.subject,
  });
  const consumer = await jetstream(nc).consumers.get(spec.stream, spec.durable);
  const messages = await consumer.consume({ max_messages: 16 });
  const done = (async () => {
    for await (const m of messages) {
      const result = await ingestion.ingest(
        Buffer.from(m.data),
        m.headers?.get('content-encoding') || undefined,
        m.headers?.get('authorization') || undefined,
      );
      if (result.ok) {
        try {
          await m.ackAck();
        } catch (err) {
          // Redelivered later: the events are stored already, so the store ignores them then.
          log('warn', { err: (err as Error).message }, 'analytics nats ack failed');
        }
      } else if (permanent.has(result.code)) {
        log(
          'warn',
          { code: result.code, detail: result.detail },
          'analytics nats message refused: terminated',
        );
        m.term(result.code);
      } else m.nak(1000);
    }
  })();
  log(
    'info',
    { stream: spec.stream, subject: spec.subject, durable: spec.durable },
    'analytics nats consumer started',
  );
  return {
    async close() {
      await messages.close();
      await done.catch(() => {});
      await nc.drain().catch(() => {});
    },
  };
}
