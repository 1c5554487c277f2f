import { promisify } from 'node:util';
import { constants, gzip, zstdCompress } from 'node:zlib';
import { Counter, Gauge, type Registry } from 'prom-client';
import {
  type ApiEventRecorder,
  type CallWriter,
  createCallWriter,
  type HeldEnd,
  type RecordedCall,
} from './call.ts';
import { Spool, type SpoolLocation, type SpoolWrites } from './spool.ts';
import type { EncodedBatch, EventTransport } from './transport.ts';

const gzipAsync = promisify(gzip);
const zstdAsync = promisify(zstdCompress);
/**
 * Compression options for a batch of `bytes`: the fastest level (for zstd also the smallest output on
 * event JSON; gzip's is ~10 % bigger than its default level's at half the CPU) and an output buffer of
 * a quarter of the input (event JSON compresses 8–9×), so that the batch is compressed in one
 * thread-pool round trip, not one per 16 KiB of output: on a 2-core VM each round trip costs more than
 * compressing 100 KB. Not the input's size: a short-lived buffer that large per batch made V8 run more
 * full collections (bench/RESULTS.md).
 */
const outputChunk = (bytes: number) => Math.max(65536, bytes >> 2);
export const zstdOptions = (bytes: number) => ({
  chunkSize: outputChunk(bytes),
  params: { [constants.ZSTD_c_compressionLevel]: 1 },
});
export const gzipOptions = (bytes: number) => ({ chunkSize: outputChunk(bytes), level: 1 });
/** Without a spool write due (memory only), events not yet taken are taken at this size at the latest. */
const MAX_UNTAKEN_BYTES = 1 << 20;
/** A batch closes at this size even below batch.maxEvents (ingestion's decompressed bound is 64 MiB). */
const MAX_BATCH_BYTES = 8 << 20;
const COMMA = Buffer.from(',');
const BATCH_TAIL = Buffer.from(']}');
/** Acknowledged batches' buffers kept for the next ones (see #closeBatch). */
const SPARE_BUFFERS = 4;

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
    /** See SpoolOptions.loopWriteLimitMs. */
    readonly loopWriteLimitMs?: number;
    /**
     * Longest a response's end waits for its event's spool write (0: however long): past it the
     * response goes and its event stays in memory (a hung disk must not hang the answers).
     */
    readonly holdTimeoutMs?: number;
  };
  readonly registry?: Registry;
  readonly log: (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string) => void;
  readonly now?: () => number;
  readonly random?: () => number;
}

/** The responses of one event-loop turn, waiting for the spool write that holds their events. */
interface HeldTurn {
  /** performance.now() when the turn was taken. */
  readonly since: number;
  readonly held: HeldEnd[];
  released: boolean;
}

/** Events waiting for ingestion's acknowledgement: an upload batch, or one spool frame kept on disk only. */
interface Pending {
  /** The spool frames it covers, seq..lastSeq (a frame the spool could not take is unknown to it). */
  readonly seq: number;
  readonly lastSeq: number;
  readonly count: number;
  /** How many of its events the spool holds. */
  spooled: number;
  /** Events JSON (joined by commas) in memory; null when it is on disk only (`location`). */
  readonly json: Buffer | null;
  /** The whole buffer `json` is the start of (recycled once acknowledged). */
  readonly store: Buffer | null;
  readonly location: SpoolLocation | null;
  /** Oldest event's arrival in the queue (for batch.interval). */
  readonly queuedAt: number;
  inFlight: boolean;
  /** On disk only, and its spool write failed: its events are gone once this upload ends. */
  lost: boolean;
}

/**
 * The batch being filled: event JSON joined by commas in one off-heap buffer, written in as each call
 * is recorded. Each take (a spool write: once per event-loop turn with held responses) takes what was
 * appended since the last as one spool frame with its own seq; the batch covers firstSeq..lastSeq and
 * becomes one Pending when full or due — so what lives until the acknowledgement is one object and
 * one Buffer per batch, not per turn (per-turn objects that outlive a scavenge cost the GC).
 */
interface OpenBatch {
  buf: Buffer;
  bytes: number;
  count: number;
  /** Bytes and events taken so far (spooled, counted in the queue). */
  takenBytes: number;
  takenCount: number;
  spooled: number;
  firstSeq: number;
  lastSeq: number;
  openedAt: number;
}

const openBatch = (capacity: number): OpenBatch => ({
  buf: Buffer.allocUnsafe(capacity),
  bytes: 0,
  count: 0,
  takenBytes: 0,
  takenCount: 0,
  spooled: 0,
  firstSeq: 0,
  lastSeq: 0,
  openedAt: 0,
});

export interface ShipperStats {
  recorded: number;
  sent: number;
  spooled: number;
  dropped: number;
  /** Responses released by spool.holdTimeout before their event's spool write was done. */
  holdTimeouts: number;
  queuedEvents: number;
  spoolEvents: number;
  spoolBytes: number;
}

/**
 * The gateway side of analytics. `record()` is what the request path calls: it serialises the call
 * into event JSON with its id (UUIDv7), appended to the open batch's off-heap buffer, and returns.
 * Once per event-loop turn (setImmediate) the turn's events are taken: appended as one frame to the
 * spool (write-ahead: a restart re-sends whatever was not acknowledged) and counted in the memory
 * queue (up to queue.maxEvents; past it they stay on disk only). With a spool, `recordThen()` holds
 * a response's last bytes until the write holding that frame returned (group commit: one write(2),
 * in the thread pool, for all the responses of a turn or more), so every answer a client received
 * has its event in the spool file — a killed gateway loses none. Uploads take the
 * oldest batches (batch.maxEvents at most), compress them in the thread pool and send them; a batch
 * leaves memory and spool only when ingestion acknowledged durable storage, so delivery is at least
 * once and ingestion de-duplicates by event id. Failures are retried forever with exponential
 * backoff and jitter; a batch ingestion refuses as invalid is dropped (and counted). When memory and
 * spool are both full, new events are dropped and counted — nothing ever waits.
 */
export class EventShipper implements ApiEventRecorder {
  readonly #o: ShipperOptions;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #spool: Spool | null;
  readonly #pending = new Map<number, Pending>();
  /** Calls recorded this event-loop turn (their events are already in the open batch). */
  #turnCalls = 0;
  #turnErrors = 0;
  /** Response ends waiting for this turn's spool write (recordThen). */
  #held: HeldEnd[] = [];
  /** Turns whose responses wait for a spool write, oldest first (watched by spool.holdTimeout). */
  readonly #holding: HeldTurn[] = [];
  readonly #holdTimeoutMs: number;
  #holdTimer: NodeJS.Timeout | null = null;
  #turnScheduled = false;
  readonly holdsResponses: boolean;
  readonly #writer: CallWriter;
  readonly #batchHead: Buffer;
  /** The call's objects die young: its event's bytes are written straight into this batch's buffer. */
  #open = openBatch(64 * 1024);
  /** Batches that filled up during this turn with events not taken yet (closed at the next take). */
  #filled: OpenBatch[] = [];
  readonly #spares: Buffer[] = [];
  /** The upload's uncompressed body, reused (one upload at a time). */
  #body = Buffer.allocUnsafe(0);
  #lastTake = 0;
  #takeTimer: NodeJS.Timeout | null = null;
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
    holdTimeouts: 0,
    queuedEvents: 0,
    spoolEvents: 0,
    spoolBytes: 0,
  };
  readonly #metrics: ReturnType<typeof shipperMetrics> | null;

  constructor(options: ShipperOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#holdTimeoutMs = options.spool?.holdTimeoutMs ?? 0;
    this.#writer = createCallWriter(options.gateway);
    this.#batchHead = Buffer.from(`{"v":1,"gateway":${JSON.stringify(options.gateway)},"events":[`);
    this.#metrics = options.registry ? shipperMetrics(options.registry, this) : null;
    this.#spool = options.spool
      ? new Spool({
          ...options.spool,
          log: options.log,
          onWritten: (events) => {
            this.stats.spooled += events;
          },
          onLost: (batches) => this.#spoolLost(batches),
        })
      : null;
    this.holdsResponses = this.#spool !== null;
    this.#seq = this.#spool?.maxSeq ?? 0;
    if (this.#spool) {
      const now = this.#now();
      for (const batch of this.#spool.replayed) {
        this.#pending.set(batch.seq, {
          seq: batch.seq,
          lastSeq: batch.seq,
          count: batch.count,
          spooled: batch.count,
          json: null,
          store: null,
          location: batch.location,
          queuedAt: now - options.batchIntervalMs,
          inFlight: false,
          lost: false,
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
   * A response's end waits for its event's spool write, taken at the end of this event-loop turn
   * (one write for every response that finished in it, or more). Never throws; `releaseEnd` runs
   * exactly once.
   */
  recordThen(call: RecordedCall, held: HeldEnd): void {
    if (this.#closed || this.#spool === null) {
      this.record(call);
      held.releaseEnd();
      return;
    }
    this.#append(call);
    this.#held.push(held);
    if (!this.#turnScheduled) {
      this.#turnScheduled = true;
      setImmediate(this.#flushTurn);
    }
  }

  /** Spool writes by where they ran; null without a spool. */
  get spoolWrites(): Readonly<SpoolWrites> | null {
    return this.#spool?.writes ?? null;
  }

  /** Events still waiting for acknowledgement (memory and disk). */
  get backlog(): number {
    return this.#memoryEvents + this.#diskOnlyEvents;
  }

  /** The call as event JSON (with its id), written into the open batch. Never throws. */
  #append(call: RecordedCall): void {
    this.#turnCalls++;
    let b = this.#open;
    if (this.#isFull(b)) {
      // Full: the rest of the turn opens the next batch; the turn's take takes from both (no I/O here).
      this.#filled.push(b);
      b = this.#open = openBatch(b.buf.length);
    }
    const at = b.bytes;
    try {
      // Event JSON is pure ASCII (event.ts `str`), written straight into the batch (grown if need be).
      const start = b.count > 0 ? at + 1 : at;
      const end = this.#writer.write(call, b, start);
      if (b.count > 0)
        b.buf[at] = 0x2c; // ','
      else b.openedAt = this.#now();
      b.bytes = end;
      b.count++;
    } catch {
      // A bug here must cost events, never requests (logged once per turn); the batch is unchanged.
      this.#turnErrors++;
    }
  }

  /** Once per event-loop turn: takes the turn's events when it is time (or responses wait on them). */
  readonly #flushTurn = (): void => {
    this.#turnScheduled = false;
    if (this.#turnCalls === 0) return;
    this.#account();
    const held = this.#held;
    if (held.length === 0) {
      this.#takeWhenDue();
      return;
    }
    this.#held = [];
    const turn: HeldTurn = { since: performance.now(), held, released: false };
    try {
      // Group commit: the responses waiting on this turn's events are released once the write that
      // holds them is done (in the thread pool, with whatever else gathered meanwhile), whatever
      // spool.writeInterval says — or once it failed: their events then live in memory only.
      this.#take();
    } finally {
      this.#spool!.afterWrite(() => this.#releaseTurn(turn));
      if (!turn.released && this.#holdTimeoutMs > 0) this.#watch(turn);
    }
  };

  /** Watches a turn still waiting: one timer for all, checking the oldest. */
  #watch(turn: HeldTurn): void {
    this.#holding.push(turn);
    if (this.#holdTimer !== null) return;
    const every = Math.max(5, Math.min(250, this.#holdTimeoutMs / 4));
    this.#holdTimer = setInterval(() => this.#releaseOverdue(), every);
    this.#holdTimer.unref();
  }

  /** Turns held past spool.holdTimeout: their responses go now (their events are kept in memory). */
  #releaseOverdue(): void {
    const holding = this.#holding;
    const now = performance.now();
    let released = 0;
    // The head is the oldest turn still waiting (#releaseTurn drops released ones from the head).
    while (holding.length > 0 && now - holding[0]!.since >= this.#holdTimeoutMs) {
      released += holding[0]!.held.length;
      this.#releaseTurn(holding[0]!);
    }
    if (released > 0) {
      this.stats.holdTimeouts += released;
      this.#o.log(
        'warn',
        { responses: released, holdTimeoutMs: this.#holdTimeoutMs },
        'analytics spool: a write took longer than spool.holdTimeout; responses sent before their events were on disk (kept in memory)',
      );
    }
    if (holding.length === 0 && this.#holdTimer !== null) {
      clearInterval(this.#holdTimer);
      this.#holdTimer = null;
    }
  }

  #releaseTurn(turn: HeldTurn): void {
    if (turn.released) return;
    turn.released = true;
    this.#release(turn.held);
    // Writes finish in order: the watched turns released by their write are at the head.
    const holding = this.#holding;
    while (holding.length > 0 && holding[0]!.released) holding.shift();
  }

  #release(held: HeldEnd[]): void {
    for (let i = 0; i < held.length; i++) {
      try {
        held[i]!.releaseEnd();
      } catch (err) {
        this.#o.log('error', { err: (err as Error).message }, 'analytics: releasing a response failed');
      }
    }
  }

  /**
   * A spool write failed: its batches ([seq, count] pairs) are not on disk. Events also in memory
   * stay queued; those kept on disk only are lost (counted) once no upload holds them.
   */
  #spoolLost(batches: readonly number[]): void {
    for (let i = 0; i < batches.length; i += 2) {
      const seq = batches[i]!;
      const count = batches[i + 1]!;
      this.#spoolEvents -= count;
      const p =
        this.#pending.get(seq) ?? [...this.#pending.values()].find((q) => q.seq <= seq && seq <= q.lastSeq);
      if (p) {
        p.spooled -= count;
        if (p.json !== null) continue;
        if (p.inFlight) p.lost = true;
        else this.#forget(p);
        continue;
      }
      for (const b of [this.#open, ...this.#filled])
        if (b.firstSeq !== 0 && b.firstSeq <= seq && seq <= b.lastSeq) b.spooled -= count;
    }
    this.#refreshGauges();
  }

  /** A batch on disk only whose spool write failed: dropped and counted. */
  #forget(p: Pending): void {
    this.#pending.delete(p.seq);
    this.#diskOnlyEvents -= p.count;
    this.#waitingEvents -= p.count;
    this.#drop(p.count, 'error');
  }

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

  #isFull(b: OpenBatch): boolean {
    return b.count >= this.#o.batchMaxEvents || b.bytes >= MAX_BATCH_BYTES;
  }

  #takeWhenDue(): void {
    const wait = this.#o.writeIntervalMs - (this.#now() - this.#lastTake);
    const untaken = this.#open.bytes - this.#open.takenBytes;
    if (wait <= 0 || untaken >= MAX_UNTAKEN_BYTES || this.#filled.length > 0) this.#take();
    else if (this.#takeTimer === null) {
      this.#takeTimer = setTimeout(this.#take, wait);
      this.#takeTimer.unref();
    }
  }

  /**
   * Takes the events appended since the last take — one spool frame per batch they are in
   * (write-ahead), counted in the memory queue — and closes the batches that are full.
   */
  readonly #take = (): void => {
    if (this.#takeTimer !== null) clearTimeout(this.#takeTimer);
    this.#takeTimer = null;
    this.#lastTake = this.#now();
    if (this.#filled.length > 0) {
      const filled = this.#filled;
      this.#filled = [];
      for (const b of filled) {
        this.#takeFrom(b);
        this.#closeBatch(b);
      }
    }
    const open = this.#open;
    this.#takeFrom(open);
    if (this.#isFull(open)) this.#closeBatch(open);
    this.#refreshGauges();
    if (this.#waitingEvents === 0) return;
    // While retrying after failures the backoff timer decides; otherwise a full batch goes at once.
    if (this.#failures === 0 && this.#waitingEvents >= this.#o.batchMaxEvents) this.#schedule(0);
    else this.#schedule(this.#o.batchIntervalMs);
  };

  /** What `b` gathered since its last take: one spool frame, then into the memory queue or onto disk only. */
  #takeFrom(b: OpenBatch): void {
    const count = b.count - b.takenCount;
    if (count === 0) return;
    const seq = ++this.#seq;
    let location: SpoolLocation | null = null;
    if (this.#spool) {
      // The frame starts after the comma that joined it to what was taken before.
      const from = b.takenCount === 0 ? 0 : b.takenBytes + 1;
      try {
        location = this.#spool.appendBatch(seq, count, b.buf.subarray(from, b.bytes));
      } catch (err) {
        this.#o.log('error', { err: (err as Error).message }, 'analytics spool write failed');
      }
      if (location) this.#spoolEvents += count;
    }
    if (this.#memoryEvents + count <= this.#o.queueMaxEvents) {
      if (b.firstSeq === 0) b.firstSeq = seq;
      b.lastSeq = seq;
      if (location) b.spooled += count;
      b.takenBytes = b.bytes;
      b.takenCount = b.count;
      this.#memoryEvents += count;
      this.#waitingEvents += count;
      return;
    }
    // The memory queue is full: these events leave the batch and stay on disk only (lost when the
    // spool could not take them either); what the batch held before keeps its place in line.
    b.bytes = b.takenBytes;
    b.count = b.takenCount;
    if (location === null) {
      this.#drop(count, 'full');
      return;
    }
    this.#closeBatch(b);
    this.#pending.set(seq, {
      seq,
      lastSeq: seq,
      count,
      spooled: count,
      json: null,
      store: null,
      location,
      queuedAt: this.#lastTake,
      inFlight: false,
      lost: false,
    });
    this.#diskOnlyEvents += count;
    this.#waitingEvents += count;
  }

  /**
   * A buffer for `bytes` of queued batch: an acknowledged batch's when one is big enough. Batches live
   * until ingestion acknowledges them — past a scavenge — so fresh ones would be promoted and their
   * memory held until the next full collection; recycled, the queue allocates in steady state nothing.
   */
  #storeFor(bytes: number): Buffer {
    const spares = this.#spares;
    for (let i = 0; i < spares.length; i++) if (spares[i]!.length >= bytes) return spares.splice(i, 1)[0]!;
    // Headroom, so the next batch (a little bigger, often) fits in it too.
    return Buffer.allocUnsafe(Math.ceil(bytes * 1.25));
  }

  /**
   * A batch, taken whole (every caller takes first), becomes one Pending holding a copy of exactly its
   * bytes; `b` starts empty again, its buffer reused.
   */
  #closeBatch(b: OpenBatch): Pending | null {
    let closed: Pending | null = null;
    if (b.takenCount > 0) {
      const store = this.#storeFor(b.takenBytes);
      b.buf.copy(store, 0, 0, b.takenBytes);
      closed = {
        seq: b.firstSeq,
        lastSeq: b.lastSeq,
        count: b.takenCount,
        spooled: b.spooled,
        json: store.subarray(0, b.takenBytes),
        store,
        location: null,
        queuedAt: b.openedAt,
        inFlight: false,
        lost: false,
      };
      this.#pending.set(closed.seq, closed);
    }
    b.bytes = 0;
    b.count = 0;
    b.takenBytes = 0;
    b.takenCount = 0;
    b.spooled = 0;
    b.firstSeq = 0;
    b.lastSeq = 0;
    return closed;
  }

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
    const open = this.#open;
    return open.takenCount > 0 && this.#now() - open.openedAt >= this.#o.batchIntervalMs;
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
    if (this.#uploading || (this.#pending.size === 0 && this.#open.count === 0)) return false;
    if (!force && !this.#readyForUpload()) {
      this.#schedule(this.#o.batchIntervalMs);
      return false;
    }
    this.#uploading = true;
    this.#take(); // what was appended so far is spooled and counted
    const max = this.#o.batchMaxEvents;
    const taken: Pending[] = [];
    let events = 0;
    for (const p of this.#pending.values()) {
      if (p.inFlight) continue;
      if (taken.length > 0 && events + p.count > max) break;
      p.inFlight = true;
      taken.push(p);
      events += p.count;
    }
    // The open batch goes too when it fits whole; otherwise it fills up for the next upload.
    const open = this.#open;
    if (open.takenCount > 0 && (taken.length === 0 || events + open.takenCount <= max)) {
      const p = this.#closeBatch(open)!;
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
      const batch = await this.#encode(this.#join(parts), events);
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
    if (!this.#closed && (this.#pending.size > 0 || this.#open.count > 0)) {
      const delay =
        this.#failures > 0 ? this.#backoff() : this.#readyForUpload() ? 0 : this.#o.batchIntervalMs;
      this.#schedule(delay);
    }
    return delivered;
  }

  /** The parts in the reused body buffer: it is read (compressed or sent) before the next upload. */
  #join(parts: Buffer[]): Buffer {
    let total = 0;
    for (const part of parts) total += part.length;
    if (total > this.#body.length) this.#body = Buffer.allocUnsafe(Math.max(total, this.#body.length * 2));
    let at = 0;
    for (const part of parts) at += part.copy(this.#body, at);
    return this.#body.subarray(0, total);
  }

  #failed(taken: Pending[], reason: string): void {
    for (const p of taken) {
      p.inFlight = false;
      this.#waitingEvents += p.count;
      if (p.lost) this.#forget(p);
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
    const acked: number[] = [];
    for (const p of taken) {
      this.#pending.delete(p.seq);
      if (p.json !== null) this.#memoryEvents -= p.count;
      else this.#diskOnlyEvents -= p.count;
      if (p.store !== null && this.#spares.length < SPARE_BUFFERS) this.#spares.push(p.store);
      this.#spoolEvents -= p.spooled;
      count += p.count;
      if (p.spooled > 0) for (let seq = p.seq; seq <= p.lastSeq; seq++) acked.push(seq);
    }
    try {
      if (acked.length > 0) this.#spool?.ack(acked);
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
        return { body: await zstdAsync(raw, zstdOptions(raw.length)), encoding: 'zstd', events };
      case 'gzip':
        return { body: await gzipAsync(raw, gzipOptions(raw.length)), encoding: 'gzip', events };
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
    this.#take();
    this.#closeBatch(this.#open);
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
    await this.#spool?.close();
    if (this.#holdTimer !== null) clearInterval(this.#holdTimer);
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
  // A counter that reads its total from the shipper when scraped.
  const counter = ({ name, help }: { name: string; help: string }, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  counter(
    { name: 'gatehouse_analytics_events_recorded_total', help: 'API events recorded by the gateway.' },
    () => shipper.stats.recorded,
  );
  counter(
    { name: 'gatehouse_analytics_events_spooled_total', help: 'API events written to the disk spool.' },
    () => shipper.stats.spooled,
  );
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
  new Counter({
    name: 'gatehouse_analytics_spool_writes_total',
    help: 'Disk spool writes, by where they ran: event_loop or thread_pool (spool.loopWriteLimit).',
    labelNames: ['where'] as const,
    registers: [registry],
    collect() {
      const writes = shipper.spoolWrites;
      this.reset();
      this.labels('event_loop').inc(writes?.eventLoop ?? 0);
      this.labels('thread_pool').inc(writes?.threadPool ?? 0);
    },
  });
  counter(
    {
      name: 'gatehouse_analytics_spool_hold_timeouts_total',
      help: 'Responses sent before their event was in the spool file: its write took longer than spool.holdTimeout (the event stays in memory).',
    },
    () => shipper.stats.holdTimeouts,
  );
  counter(
    {
      name: 'gatehouse_analytics_spool_slow_writes_total',
      help: 'Disk spool writes on the event loop slower than spool.loopWriteLimit (three in a row send writes to the thread pool for a minute).',
    },
    () => shipper.spoolWrites?.slow ?? 0,
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
