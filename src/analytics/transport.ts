/** One compressed batch on its way to ingestion. */
export interface EncodedBatch {
  readonly body: Buffer;
  /** `zstd`, `gzip` or `identity`. */
  readonly encoding: string;
  readonly events: number;
}

/**
 * - delivered: ingestion stored the batch durably (HTTP 202, or a JetStream ack);
 * - rejected: ingestion will never take it (invalid events): retrying cannot help;
 * - retry: anything else (down, timeout, 401 while keys propagate, 429, 5xx).
 */
export type SendResult =
  | { readonly kind: 'delivered' }
  | { readonly kind: 'rejected'; readonly reason: string }
  | { readonly kind: 'retry'; readonly reason: string };

/** How batches reach ingestion: HTTP POST or a NATS JetStream publish. */
export interface EventTransport {
  send(batch: EncodedBatch, headers: Readonly<Record<string, string>>): Promise<SendResult>;
  close(): Promise<void>;
}
