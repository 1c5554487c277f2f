import type { ServerResponse } from 'node:http';
import type { Logger } from '../../telemetry/logger.ts';
import type { GatewayIdentity } from '../security/types.ts';
import type { ResourceStore, StoredResource } from '../store/types.ts';
import { computeSnapshot, type Snapshot } from './snapshot.ts';
import { eventFrame, heartbeatFrame, openEventStream } from './sse.ts';
import { gatewaysCollection, updateStatus } from './status.ts';

export interface SnapshotHubOptions {
  store: ResourceStore;
  logger: Logger;
  now: () => number;
  /** Comment line sent on every open stream this often (and lastContact recorded). */
  heartbeatMs: number;
  /** Largest event the gateways accept; a bigger snapshot is logged as an error (it would be refused). */
  maxEventBytes: number;
  /** Called for every snapshot written to a stream (metrics). */
  onSnapshotSent?: () => void;
}

interface OpenStream {
  identity: GatewayIdentity;
  res: ServerResponse;
  sentVersion: number;
  sentHash: string | null;
  /** The newest snapshot not yet written because the socket is congested (older ones are dropped). */
  pending: Snapshot | null;
}

/**
 * The open config streams of this control plane and the snapshot each gateway should serve. Every
 * store change (this process's or another control plane's on the same database) schedules one
 * recompute; changes arriving during a recompute coalesce into one more. Each namespace is read once
 * per recompute whatever the number of gateways in it.
 */
export class SnapshotHub {
  readonly #options: SnapshotHubOptions;
  readonly #streams = new Map<string, Set<OpenStream>>();
  /** Per gateway id: the last computed snapshot's version and hash (keeps versions stable). */
  readonly #desired = new Map<string, { version: number; hash: string }>();
  #unsubscribe: (() => void) | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #dirty = false;
  #retry: NodeJS.Timeout | null = null;
  #closed = false;
  /** Deregistered here: a closing stream must not write their status back. */
  readonly #removed = new Set<string>();

  constructor(options: SnapshotHubOptions) {
    this.#options = options;
  }

  start(): void {
    this.#unsubscribe = this.#options.store.onChange(() => this.#schedule());
    this.#heartbeat = setInterval(() => void this.#beat(), this.#options.heartbeatMs);
    this.#heartbeat.unref();
  }

  /** The current snapshot of one gateway (read now, version kept when the content is unchanged). */
  async snapshotFor(identity: GatewayIdentity): Promise<Snapshot> {
    const { items, revision } = await this.#options.store.list({ namespace: identity.namespace });
    return this.compute(items, revision, identity);
  }

  /** The last computed {version, hash} of a gateway, if any was computed in this process. */
  desired(id: string): { version: number; hash: string } | undefined {
    return this.#desired.get(id);
  }

  connected(id: string): boolean {
    return (this.#streams.get(id)?.size ?? 0) > 0;
  }

  /** Gateways with at least one stream open here. */
  connectedCount(): number {
    return this.#streams.size;
  }

  /**
   * Serves one gateway's stream until either side closes it. The first event is the current
   * snapshot unless the gateway already has that version (`known`).
   */
  async serve(identity: GatewayIdentity, res: ServerResponse, known: string | null): Promise<void> {
    const stream: OpenStream = { identity, res, sentVersion: -1, sentHash: null, pending: null };
    const closed = new Promise<void>((resolve) => res.once('close', resolve));
    openEventStream(res);
    const set = this.#streams.get(identity.id) ?? new Set<OpenStream>();
    this.#streams.set(identity.id, set);
    set.add(stream);
    res.on('drain', () => {
      const next = stream.pending;
      stream.pending = null;
      if (next) this.#write(stream, next);
    });
    void closed.then(() => {
      set.delete(stream);
      if (set.size === 0 && this.#streams.get(identity.id) === set) this.#streams.delete(identity.id);
      this.#touch(identity.id, this.connected(identity.id));
    });
    this.#touch(identity.id, true);
    try {
      const snapshot = await this.snapshotFor(identity);
      const gatewayHasIt = known !== null && known === String(snapshot.version);
      if (!gatewayHasIt) this.#offer(stream, snapshot);
      else if (snapshot.version >= stream.sentVersion) {
        stream.sentVersion = snapshot.version;
        stream.sentHash = snapshot.hash;
      }
    } catch (err) {
      this.#options.logger.error({ err: (err as Error).message, gateway: identity.id }, 'snapshot failed');
      res.destroy();
    }
    await closed;
  }

  /** Closes every stream of a gateway (deregistered). */
  disconnect(id: string): void {
    this.#removed.add(id);
    for (const stream of this.#streams.get(id) ?? []) stream.res.destroy();
    this.#desired.delete(id);
  }

  close(): void {
    this.#closed = true;
    this.#unsubscribe?.();
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    if (this.#retry) clearTimeout(this.#retry);
    for (const set of this.#streams.values()) for (const stream of set) stream.res.destroy();
    this.#streams.clear();
  }

  /** The snapshot of `identity` from its namespace read at `revision`; remembered as its desired one. */
  compute(items: readonly StoredResource[], revision: number, identity: GatewayIdentity): Snapshot {
    const snapshot = computeSnapshot(items, revision, identity, this.#desired.get(identity.id));
    this.#desired.set(identity.id, { version: snapshot.version, hash: snapshot.hash });
    return snapshot;
  }

  #offer(stream: OpenStream, snapshot: Snapshot): void {
    // Never an older version than already sent (a slow first read racing a recompute), never the same content twice.
    if (snapshot.version < stream.sentVersion || snapshot.hash === stream.sentHash) return;
    stream.sentVersion = snapshot.version;
    stream.sentHash = snapshot.hash;
    if (stream.res.writableNeedDrain) stream.pending = snapshot;
    else this.#write(stream, snapshot);
  }

  #write(stream: OpenStream, snapshot: Snapshot): void {
    const data = JSON.stringify(snapshot);
    if (Buffer.byteLength(data) > this.#options.maxEventBytes)
      this.#options.logger.error(
        { gateway: stream.identity.id, version: snapshot.version, bytes: Buffer.byteLength(data) },
        'snapshot larger than gateways accept: it will be refused',
      );
    stream.res.write(eventFrame(String(snapshot.version), 'snapshot', data));
    this.#options.onSnapshotSent?.();
  }

  #schedule(): void {
    if (this.#closed) return;
    if (this.#running) {
      this.#dirty = true;
      return;
    }
    this.#running = this.#recompute().finally(() => {
      this.#running = null;
      if (this.#dirty) {
        this.#dirty = false;
        this.#schedule();
      }
    });
  }

  async #recompute(): Promise<void> {
    const byNamespace = new Map<string, OpenStream[]>();
    for (const set of this.#streams.values())
      for (const stream of set) {
        const list = byNamespace.get(stream.identity.namespace) ?? [];
        list.push(stream);
        byNamespace.set(stream.identity.namespace, list);
      }
    for (const [namespace, streams] of byNamespace) {
      let read: { items: StoredResource[]; revision: number };
      try {
        read = await this.#options.store.list({ namespace });
      } catch (err) {
        this.#options.logger.error({ err: (err as Error).message, namespace }, 'snapshot recompute failed');
        if (!this.#retry)
          this.#retry = setTimeout(() => {
            this.#retry = null;
            this.#schedule();
          }, 1_000).unref();
        continue;
      }
      const computed = new Map<string, Snapshot>();
      for (const stream of streams) {
        const id = stream.identity.id;
        const snapshot = computed.get(id) ?? this.compute(read.items, read.revision, stream.identity);
        computed.set(id, snapshot);
        this.#offer(stream, snapshot);
      }
    }
  }

  async #beat(): Promise<void> {
    for (const [id, set] of this.#streams) {
      for (const stream of set) stream.res.write(heartbeatFrame);
      // A gateway deregistered through another control plane: its stream ends here too.
      try {
        const record = await this.#options.store.recordGet(gatewaysCollection, id);
        if (record === null) this.disconnect(id);
        else this.#touch(id, true);
      } catch (err) {
        this.#options.logger.warn(
          { err: (err as Error).message, gateway: id },
          'heartbeat bookkeeping failed',
        );
      }
    }
  }

  #touch(id: string, streaming: boolean): void {
    if (this.#closed || this.#removed.has(id)) return;
    const at = new Date(this.#options.now()).toISOString();
    updateStatus(this.#options.store, id, () => ({ lastContact: at, streaming })).catch((err: Error) =>
      this.#options.logger.warn({ err: err.message, gateway: id }, 'gateway status not recorded'),
    );
  }
}
