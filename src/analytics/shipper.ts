import { promisify } from 'node:util';
import { gzip, zstdCompress } from 'node:zlib';
import { Counter, Gauge, type Registry } from 'prom-client';
import { type ApiEventRecorder, createCallSerialiser, type RecordedCall } from './call.ts';
import { createEventIdGenerator } from './event-id.ts';
import { Spool, type SpoolLocation } from './spool.ts';
import type { EncodedBatch, EventTransport } from './transport.ts';

const gzipAsync = promisify(gzip);
const zstdAsync = promisify(zstdCompress);
/** Gathered event JSON is sealed into a batch at this size at the latest. */
const MAX_GATHERED_BYTES = 1 << 20;
const COMMA = Buffer.from(',');
const BATCH_TAIL = Buffer.from(']}');

export interface ShipperOptions {
  readonly gateway: string;
  readonly transport: EventTransport;
  /** Headers proving the gateway's identity (a short-lived JWT), fetched before every upload. */
  readonly credentials: () => Promise<Record<string, string>>;
  readonly compression: 'zstd' | 'gzip' | 'none';
  readonly batchMaxEvents: number;
  readonly batchIntervalMs: number;
  /** Events gather this long before one spool write (0: every event-loop turn). */
  readonly writeIntervalMs: number;
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
  readonly queueMaxEvents: number;
  /** Null: memory only. */
  readonly spool: null | {
    readonly dir: string;
    readonly maxBytes: number;
    readonly segmentBytes: number;
    readonly fsyncIntervalMs: number;
  };
  readonly registry?: Registry;
  readonly log: (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string) => void;
  readonly now?: () => number;
  readonly random?: () => number;
}

/** A batch of one event-loop turn's events, until ingestion acknowledges it. */
interface Pending {
  readonly seq: number;
  readonly count: number;
  /** Events JSON (joined by commas) while held in memory; null once only on disk. */
  json: Buffer | null;
  readonly location: SpoolLocation | null;
  /** Oldest event's arrival in the queue (for batch.interval). */
  readonly queuedAt: number;
  inFlight: boolean;
}

export interface ShipperStats {
  recorded: number;
  sent: number;
  spooled: number;
  dropped: number;
  queuedEvents: number;
  spoolEvents: number;
  spoolBytes: number;
}

/**
 * The gateway side of analytics. `record()` is what the request path calls: it serialises the call
 * into event JSON with its id (UUIDv7), appended to one off-heap buffer, and returns. Once per
 * event-loop turn (setImmediate) the gathered events become a batch, written as one frame to the
 * spool (write-ahead: a restart re-sends whatever was not acknowledged) and kept in memory up to
 * queue.maxEvents. With a spool, `recordThen()` holds a response's last bytes until that write
 * (group commit: one write(2) for all the responses that finished in the turn), so every answer a
 * client received has its event in the spool file — a killed gateway loses none. Uploads take the
 * oldest batches up to batch.maxEvents, compress them in the thread pool and send them; a batch
 * leaves memory and spool only when ingestion acknowledged durable storage, so delivery is at least
 * once and ingestion de-duplicates by event id. Failures are retried forever with exponential
 * backoff and jitter; a batch ingestion refuses as invalid is dropped (and counted). When memory and
 * spool are both full, new events are dropped and counted — nothing ever waits.
 */
export class EventShipper implements ApiEventRecorder {
  readonly #o: ShipperOptions;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #nextId: (timeMs: number) => string;
  readonly #spool: Spool | null;
  readonly #pending = new Map<number, Pending>();
  /** Calls recorded this event-loop turn (their events are already in #gathered). */
  #turnCalls = 0;
  #turnErrors = 0;
  /** Response ends waiting for this turn's spool write (recordThen). */
  #held: (() => void)[] = [];
  #turnScheduled = false;
  readonly holdsResponses: boolean;
  readonly #serialise: (call: RecordedCall, id: string) => string;
  readonly #batchHead: Buffer;
  /**
   * Event JSON (comma-separated) since the last seal, written in as each call is recorded: the
   * call's objects and its JSON string die young, and the bytes are off the JS heap.
   */
  #gathered = Buffer.allocUnsafe(64 * 1024);
  #gatheredCount = 0;
  #gatheredBytes = 0;
  #lastSeal = 0;
  #sealTimer: NodeJS.Timeout | null = null;
  #seq: number;
  #memoryEvents = 0;
  #diskOnlyEvents = 0;
  /** Events in batches not being uploaded right now. */
  #waitingEvents = 0;
  /** Events in batches the spool holds. */
  #spoolEvents = 0;
  #uploading = false;
  #failures = 0;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  readonly stats: ShipperStats = {
    recorded: 0,
    sent: 0,
    spooled: 0,
    dropped: 0,
    queuedEvents: 0,
    spoolEvents: 0,
    spoolBytes: 0,
  };
  readonly #metrics: ReturnType<typeof shipperMetrics> | null;

  constructor(options: ShipperOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#nextId = createEventIdGenerator();
    this.#serialise = createCallSerialiser(options.gateway);
    this.#batchHead = Buffer.from(`{"v":1,"gateway":${JSON.stringify(options.gateway)},"events":[`);
    this.#metrics = options.registry ? shipperMetrics(options.registry, this) : null;
    this.#spool = options.spool ? new Spool({ ...options.spool, log: options.log }) : null;
    this.holdsResponses = this.#spool !== null;
    this.#seq = this.#spool?.maxSeq ?? 0;
    if (this.#spool) {
      const now = this.#now();
      for (const batch of this.#spool.replayed) {
        this.#pending.set(batch.seq, {
          seq: batch.seq,
          count: batch.count,
          json: null,
          location: batch.location,
          queuedAt: now - options.batchIntervalMs,
          inFlight: false,
        });
        this.#diskOnlyEvents += batch.count;
        this.#waitingEvents += batch.count;
        this.#spoolEvents += batch.count;
      }
      if (this.#spool.replayed.length > 0 || this.#spool.tornFrames > 0)
        options.log(
          'info',
          {
            batches: this.#spool.replayed.length,
            events: this.#diskOnlyEvents,
            tornFrames: this.#spool.tornFrames,
          },
          'analytics spool replayed: unacknowledged events will be sent again',
        );
      this.#refreshGauges();
      this.#schedule(0);
    }
  }

  /** What the request path calls: no I/O, never throws. */
  record(call: RecordedCall): void {
    if (this.#closed) return;
    this.#append(call);
    if (!this.#turnScheduled) {
      this.#turnScheduled = true;
      setImmediate(this.#flushTurn);
    }
  }

  /**
   * A response's end waits for its event's spool write, at the end of this event-loop turn (one
   * write for every response that finished in it). Never throws; `release` runs exactly once.
   */
  recordThen(call: RecordedCall, release: () => void): void {
    if (this.#closed || this.#spool === null) {
      this.record(call);
      release();
      return;
    }
    this.#append(call);
    this.#held.push(release);
    if (!this.#turnScheduled) {
      this.#turnScheduled = true;
      setImmediate(this.#flushTurn);
    }
  }

  /** Events still waiting for acknowledgement (memory and disk). */
  get backlog(): number {
    return this.#memoryEvents + this.#diskOnlyEvents;
  }

  /** The call as event JSON (with its id), appended to the gathered bytes. Never throws. */
  #append(call: RecordedCall): void {
    this.#turnCalls++;
    let json: string;
    try {
      json = this.#serialise(call, this.#nextId(call.time));
    } catch {
      // A bug here must cost events, never requests (logged once per turn).
      this.#turnErrors++;
      return;
    }
    let at = this.#gatheredBytes;
    // Event JSON is pure ASCII (event.ts `str`): one byte a character, Latin-1 the cheapest encoding.
    const need = at + json.length + 1;
    if (need > this.#gathered.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.#gathered.length * 2));
      this.#gathered.copy(grown, 0, 0, at);
      this.#gathered = grown;
    }
    if (this.#gatheredCount > 0) this.#gathered[at++] = 0x2c; // ','
    this.#gatheredBytes = at + this.#gathered.write(json, at, 'latin1');
    this.#gatheredCount++;
  }

  /** Once per event-loop turn: seals the gathered events when it is time (or responses wait on them). */
  readonly #flushTurn = (): void => {
    this.#turnScheduled = false;
    if (this.#turnCalls === 0) return;
    this.#account();
    const held = this.#held;
    if (held.length === 0) {
      this.#sealWhenDue();
      return;
    }
    this.#held = [];
    try {
      // Group commit: the responses waiting on this turn's events are released once they are in
      // the spool file, whatever spool.writeInterval says.
      this.#seal();
    } finally {
      for (let i = 0; i < held.length; i++) {
        try {
          held[i]!();
        } catch (err) {
          this.#o.log('error', { err: (err as Error).message }, 'analytics: releasing a response failed');
        }
      }
    }
  };

  /** The turn's calls into the stats. */
  #account(): void {
    this.stats.recorded += this.#turnCalls;
    this.#turnCalls = 0;
    if (this.#turnErrors > 0) {
      this.#drop(this.#turnErrors, 'error');
      this.#o.log('error', { events: this.#turnErrors }, 'analytics: events could not be serialised');
      this.#turnErrors = 0;
    }
  }

  #sealWhenDue(): void {
    const wait = this.#o.writeIntervalMs - (this.#now() - this.#lastSeal);
    if (wait <= 0 || this.#gatheredBytes >= MAX_GATHERED_BYTES) this.#seal();
    else if (this.#sealTimer === null) {
      this.#sealTimer = setTimeout(this.#seal, wait);
      this.#sealTimer.unref();
    }
  }

  /**
   * Gathered events become one batch: one write(2) to the spool (write-ahead) and, room permitting,
   * a Buffer in memory (outside the JS heap: the garbage collector does not walk it).
   */
  readonly #seal = (): void => {
    if (this.#sealTimer !== null) clearTimeout(this.#sealTimer);
    this.#sealTimer = null;
    this.#lastSeal = this.#now();
    const count = this.#gatheredCount;
    if (count === 0) return;
    // A copy of exactly the batch's bytes: the gathering buffer is reused.
    const json = Buffer.from(this.#gathered.subarray(0, this.#gatheredBytes));
    this.#gatheredCount = 0;
    this.#gatheredBytes = 0;
    const seq = ++this.#seq;
    const memoryRoom = this.#memoryEvents + count <= this.#o.queueMaxEvents;
    let location: SpoolLocation | null = null;
    if (this.#spool) {
      try {
        location = this.#spool.appendBatch(seq, count, json);
      } catch (err) {
        this.#o.log('error', { err: (err as Error).message }, 'analytics spool write failed');
      }
      if (location) {
        this.stats.spooled += count;
        this.#spoolEvents += count;
      }
    }
    if (!memoryRoom && location === null) {
      this.#drop(count, 'full');
      return;
    }
    this.#pending.set(seq, {
      seq,
      count,
      json: memoryRoom ? json : null,
      location,
      queuedAt: this.#lastSeal,
      inFlight: false,
    });
    if (memoryRoom) this.#memoryEvents += count;
    else this.#diskOnlyEvents += count;
    this.#waitingEvents += count;
    this.#refreshGauges();
    // While retrying after failures the backoff timer decides; otherwise a full batch goes at once.
    if (this.#failures === 0 && this.#waitingEvents >= this.#o.batchMaxEvents) this.#schedule(0);
    else this.#schedule(this.#o.batchIntervalMs);
  };

  #drop(count: number, reason: 'full' | 'rejected' | 'error' | 'shutdown'): void {
    this.stats.dropped += count;
    this.#metrics?.dropped.labels(reason).inc(count);
  }

  /** A full batch is waiting, or the oldest waiting event has waited batch.interval. */
  #readyForUpload(): boolean {
    if (this.#waitingEvents >= this.#o.batchMaxEvents) return true;
    // Batches are in seq order and uploads take the oldest: the first one not in flight is the oldest waiting.
    for (const p of this.#pending.values()) {
      if (p.inFlight) continue;
      return this.#now() - p.queuedAt >= this.#o.batchIntervalMs;
    }
    return false;
  }

  #schedule(delayMs: number): void {
    if (this.#closed || this.#uploading) return;
    if (this.#timer) {
      if (delayMs > 0) return; // an earlier wake-up is already set
      clearTimeout(this.#timer);
    }
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#upload();
    }, delayMs);
    this.#timer.unref();
  }

  /** Sends one batch; on the way out schedules the next. Never rejects. */
  async #upload(force = false): Promise<boolean> {
    if (this.#uploading || this.#pending.size === 0) return false;
    if (!force && !this.#readyForUpload()) {
      this.#schedule(this.#o.batchIntervalMs);
      return false;
    }
    this.#uploading = true;
    const taken: Pending[] = [];
    let events = 0;
    for (const p of this.#pending.values()) {
      if (p.inFlight) continue;
      if (taken.length > 0 && events + p.count > this.#o.batchMaxEvents) break;
      p.inFlight = true;
      taken.push(p);
      events += p.count;
    }
    this.#waitingEvents -= events;
    let delivered = false;
    try {
      const parts: Buffer[] = [this.#batchHead];
      for (let i = 0; i < taken.length; i++) {
        const p = taken[i]!;
        if (i > 0) parts.push(COMMA);
        parts.push(p.json ?? this.#spool!.read(p.location!));
      }
      parts.push(BATCH_TAIL);
      const batch = await this.#encode(Buffer.concat(parts), events);
      const headers = await this.#o.credentials();
      const result = await this.#o.transport.send(batch, headers);
      if (result.kind === 'delivered') {
        this.#settle(taken, 'sent');
        this.#failures = 0;
        delivered = true;
      } else if (result.kind === 'rejected') {
        this.#o.log(
          'error',
          { events, reason: result.reason },
          'analytics ingestion refused a batch: dropped',
        );
        this.#settle(taken, 'rejected');
        this.#failures = 0;
      } else {
        this.#failed(taken, result.reason);
      }
    } catch (err) {
      this.#failed(taken, (err as Error).message);
    } finally {
      this.#uploading = false;
    }
    this.#metrics?.batches.labels(delivered ? 'delivered' : 'failed').inc();
    if (!this.#closed && this.#pending.size > 0) {
      const delay =
        this.#failures > 0 ? this.#backoff() : this.#readyForUpload() ? 0 : this.#o.batchIntervalMs;
      this.#schedule(delay);
    }
    return delivered;
  }

  #failed(taken: Pending[], reason: string): void {
    for (const p of taken) {
      p.inFlight = false;
      this.#waitingEvents += p.count;
    }
    this.#failures++;
    // One line per failure streak step: at most one per backoff interval.
    this.#o.log(
      'warn',
      { reason, failures: this.#failures, backlog: this.backlog },
      'analytics upload failed: will retry',
    );
  }

  /** Exponential backoff with full jitter between half and all of the step. */
  #backoff(): number {
    const step = Math.min(this.#o.retryMaxMs, this.#o.retryInitialMs * 2 ** Math.min(30, this.#failures - 1));
    return Math.round(step / 2 + (this.#random() * step) / 2);
  }

  #settle(taken: Pending[], how: 'sent' | 'rejected'): void {
    let count = 0;
    for (const p of taken) {
      this.#pending.delete(p.seq);
      if (p.json !== null) this.#memoryEvents -= p.count;
      else this.#diskOnlyEvents -= p.count;
      if (p.location !== null) this.#spoolEvents -= p.count;
      count += p.count;
    }
    try {
      this.#spool?.ack(taken.filter((p) => p.location !== null).map((p) => p.seq));
    } catch (err) {
      this.#o.log('error', { err: (err as Error).message }, 'analytics spool ack failed');
    }
    if (how === 'sent') {
      this.stats.sent += count;
      this.#metrics?.sent.inc(count);
    } else this.#drop(count, 'rejected');
    this.#refreshGauges();
  }

  async #encode(raw: Buffer, events: number): Promise<EncodedBatch> {
    switch (this.#o.compression) {
      case 'zstd':
        return { body: await zstdAsync(raw), encoding: 'zstd', events };
      case 'gzip':
        return { body: await gzipAsync(raw), encoding: 'gzip', events };
      default:
        return { body: raw, encoding: 'identity', events };
    }
  }

  #refreshGauges(): void {
    this.stats.queuedEvents = this.#memoryEvents;
    this.stats.spoolEvents = this.#spoolEvents;
    this.stats.spoolBytes = this.#spool?.bytes ?? 0;
  }

  /**
   * Stops recording, writes the last turn, then tries to deliver what is left within `deadlineMs`.
   * What is not delivered stays in the spool for the next start (without a spool it is lost: counted).
   */
  async close(deadlineMs = 2000): Promise<void> {
    if (this.#closed) return;
    this.#flushTurn();
    this.#account();
    this.#seal();
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    const until = this.#now() + deadlineMs;
    while (this.#pending.size > 0 && this.#now() < until) {
      while (this.#uploading && this.#now() < until) await new Promise((r) => setTimeout(r, 10));
      if (this.#uploading) break;
      const ok = await this.#upload(true);
      if (!ok) break;
    }
    if (this.#pending.size > 0) {
      const left = this.backlog;
      if (this.#spool)
        this.#o.log('info', { events: left }, 'analytics: undelivered events kept in the spool');
      else {
        this.#drop(left, 'shutdown');
        this.#o.log('warn', { events: left }, 'analytics: undelivered events lost at shutdown (no spool)');
      }
    }
    this.#spool?.close();
    await this.#o.transport.close();
  }
}

function shipperMetrics(registry: Registry, shipper: EventShipper) {
  const gauge = ({ name, help }: { name: string; help: string }, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  new Counter({
    name: 'gatehouse_analytics_events_recorded_total',
    help: 'API events recorded by the gateway.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(shipper.stats.recorded);
    },
  });
  new Counter({
    name: 'gatehouse_analytics_events_spooled_total',
    help: 'API events written to the disk spool.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(shipper.stats.spooled);
    },
  });
  gauge(
    {
      name: 'gatehouse_analytics_queue_events',
      help: 'API events held in memory, not yet acknowledged by ingestion.',
    },
    () => shipper.stats.queuedEvents,
  );
  gauge(
    {
      name: 'gatehouse_analytics_spool_events',
      help: 'API events in the disk spool, not yet acknowledged by ingestion.',
    },
    () => shipper.stats.spoolEvents,
  );
  gauge(
    { name: 'gatehouse_analytics_spool_bytes', help: 'Bytes of the disk spool’s segment files.' },
    () => shipper.stats.spoolBytes,
  );
  const dropped = new Counter({
    name: 'gatehouse_analytics_events_dropped_total',
    help: 'API events lost, by reason: full (memory queue and spool full), rejected (ingestion refused the batch as invalid), error, shutdown (no spool).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  // Present at 0 from the start: the alert on it must see a series.
  dropped.labels('full').inc(0);
  return {
    dropped,
    sent: new Counter({
      name: 'gatehouse_analytics_events_sent_total',
      help: 'API events acknowledged by ingestion (stored durably).',
      registers: [registry],
    }),
    batches: new Counter({
      name: 'gatehouse_analytics_batches_total',
      help: 'Batch uploads, by result (delivered, failed).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
  };
}
