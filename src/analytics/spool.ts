import {
  close,
  closeSync,
  fsync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  unlink,
  unlinkSync,
  write,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';

/**
 * The shipper's write-ahead log: a directory of append-only segment files `<n>.spool` holding framed,
 * checksummed records. A frame is a 16-byte header — magic `GHS1`, type (1 batch, 2 ack), three zero
 * bytes, payload length (u32 BE), CRC-32 of the payload (u32 BE) — and the payload:
 * - batch: `<seq> <count>\n` then `count` event JSON objects joined by commas;
 * - ack: the acknowledged batch seqs, space-separated.
 * Segments are deleted oldest first once every batch in them is acknowledged (so an ack frame is
 * never deleted while a batch it acknowledges survives). On open the segments are replayed: a frame
 * that is cut short or fails its checksum (a write torn by a crash) ends that segment — the file is
 * truncated there and reading goes on with the next — so a torn last record is skipped, not fatal.
 * Frames are appended to an in-memory chunk and written by one `write(2)` per chunk, one write at
 * a time, so frames reach the file in order and a crash can only cut the last one short (group
 * commit: what is appended while a write runs goes in the next). Where the write runs:
 * - on the event loop, once the synchronous code that appended the frames is done (a microtask):
 *   one write per event-loop turn, a few µs into the page cache — far cheaper than a thread-pool
 *   round trip, whose thread wake-ups cost more than the write (bench/RESULTS.md);
 * - in the thread pool while the timer's fsync runs on that file (a write there could wait for it),
 *   and for a while (POOL_PERIOD_MS) after SLOW_IN_A_ROW writes on the event loop took longer than
 *   `loopWriteLimitMs` — a slow or throttled disk must not stall every request. The Redis AOF
 *   makes the same trade: write(2) on the event loop, fsync in the background, and no write while
 *   a background fsync may block it.
 * `afterWrite` tells when everything appended so far is in the kernel (a process kill then loses
 * none of it); `fsync` runs on a timer in the thread pool, for machine crashes. Deleting, syncing and
 * closing old segments is asynchronous too.
 */

const MAGIC = 0x47485331;
const HEADER = 16;
const TYPE_BATCH = 1;
const TYPE_ACK = 2;
/** A frame claiming more than this is corruption, not data. */
const MAX_FRAME = 256 * 1024 * 1024;

export interface SpoolOptions {
  readonly dir: string;
  readonly maxBytes: number;
  readonly segmentBytes: number;
  readonly fsyncIntervalMs: number;
  /**
   * SLOW_IN_A_ROW writes on the event loop longer than this send writes to the thread pool for
   * POOL_PERIOD_MS; 0: always there. Default LOOP_WRITE_LIMIT_MS.
   */
  readonly loopWriteLimitMs?: number;
  readonly log: (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string) => void;
  /** Batch frames of a write that failed (the spool no longer holds them), as [seq, count] pairs. */
  readonly onLost?: (batches: readonly number[]) => void;
  /** Events of batch frames now in the kernel. */
  readonly onWritten?: (events: number) => void;
}

/** Where a batch lives on disk. */
export interface SpoolLocation {
  readonly segment: number;
  readonly offset: number;
  readonly length: number;
}

/** An unacknowledged batch found on open. */
export interface ReplayedBatch {
  readonly seq: number;
  readonly count: number;
  readonly location: SpoolLocation;
}

interface Segment {
  readonly n: number;
  bytes: number;
  /** Batches written to it not acknowledged yet. */
  unacked: number;
}

/** Frames waiting for (or in) one write(2): contiguous bytes of one segment file. */
interface Chunk {
  readonly fd: number;
  readonly segment: number;
  /** Offset in the segment of `buf[0]`. */
  readonly start: number;
  buf: Buffer;
  bytes: number;
  /** Its batch frames as [seq, count] pairs (lost when the write fails). */
  readonly batches: number[];
  readonly done: ((err: Error | null) => void)[];
}

/** A chunk's first buffer; it grows for bigger ones, and an acknowledged one is reused. */
const CHUNK_BYTES = 64 * 1024;
/** The default loopWriteLimitMs (Gateway spec.analytics.spool.loopWriteLimit). */
export const LOOP_WRITE_LIMIT_MS = 2;
/** How long writes stay in the thread pool after SLOW_IN_A_ROW slow ones on the event loop. */
const POOL_PERIOD_MS = 60_000;
/**
 * Slow writes in a row that send writes to the thread pool: a slow or throttled disk makes every
 * write slow, while one slow write is most often the thread being preempted mid-write on a busy
 * machine (seen in the bench: one 604-byte write of 4 ms).
 */
const SLOW_IN_A_ROW = 3;

/** Spool writes so far, by where they ran. */
export interface SpoolWrites {
  eventLoop: number;
  threadPool: number;
  /** Writes on the event loop that took longer than loopWriteLimitMs. */
  slow: number;
}

export class Spool {
  readonly #options: SpoolOptions;
  readonly #segments = new Map<number, Segment>();
  /** Segment of every unacknowledged batch (acks name seqs). */
  readonly #segmentOf = new Map<number, number>();
  #current: Segment;
  #fd: number;
  #dirty = false;
  /** The fd the timer's fsync is running on (it is not closed under it). */
  #syncing: number | null = null;
  #timer: NodeJS.Timeout;
  /** Chunks not yet started, oldest first; the last one takes new frames. */
  #queue: Chunk[] = [];
  #writing: Chunk | null = null;
  /** A microtask will write the oldest chunk on the event loop. */
  #loopWriteDue = false;
  /** Until then (performance.now()), writes go to the thread pool. */
  #poolUntil = 0;
  #slowInARow = 0;
  readonly #loopLimitMs: number;
  readonly writes: SpoolWrites = { eventLoop: 0, threadPool: 0, slow: 0 };
  #spare: Buffer | null = null;
  /** Rotated segments' fds: synced and closed once their writes are done. */
  #retired: number[] = [];
  /** Deletes, syncs and closes running in the thread pool. */
  #background = 0;
  #idle: (() => void)[] = [];
  #bytes = 0;
  #closed = false;
  /** What open() found. */
  readonly replayed: readonly ReplayedBatch[];
  readonly tornFrames: number;
  readonly maxSeq: number;

  constructor(options: SpoolOptions) {
    this.#options = options;
    this.#loopLimitMs = options.loopWriteLimitMs ?? LOOP_WRITE_LIMIT_MS;
    mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    const found = this.#replay();
    this.replayed = found.batches;
    this.tornFrames = found.torn;
    this.maxSeq = found.maxSeq;
    this.#releaseAcknowledged(true);
    const n = Math.max(0, ...this.#segments.keys()) + 1;
    this.#current = { n, bytes: 0, unacked: 0 };
    this.#segments.set(n, this.#current);
    this.#fd = openSync(this.#path(n), 'a', 0o600);
    this.#timer = setInterval(() => this.#sync(), options.fsyncIntervalMs);
    this.#timer.unref();
  }

  /** Bytes of the segment files kept (unacknowledged batches and the frames around them). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Room for a batch of `payloadBytes` within maxBytes. */
  hasRoom(payloadBytes: number): boolean {
    return this.#bytes + HEADER + payloadBytes <= this.#options.maxBytes;
  }

  /**
   * Appends a batch (its events' JSON, comma-separated; copied) as one frame; its location, or null
   * when over maxBytes (the caller keeps it in memory or drops it). It is in the file once
   * `afterWrite` says so.
   */
  appendBatch(seq: number, count: number, events: Buffer): SpoolLocation | null {
    const prefix = Buffer.from(`${seq} ${count}\n`);
    const length = prefix.length + events.length;
    if (!this.hasRoom(length)) return null;
    const offset = this.#writeFrame(TYPE_BATCH, prefix, events, seq, count);
    this.#current.unacked++;
    this.#segmentOf.set(seq, this.#current.n);
    return { segment: this.#current.n, offset: offset + HEADER, length };
  }

  /** Records that these batches were delivered; segments left with nothing unacknowledged go. */
  ack(seqs: readonly number[]): void {
    const known = seqs.filter((s) => this.#segmentOf.has(s));
    if (known.length === 0 || this.#closed) return;
    this.#writeFrame(TYPE_ACK, Buffer.from(known.join(' ')), null, 0, 0);
    for (const seq of known) {
      const segment = this.#segments.get(this.#segmentOf.get(seq)!);
      this.#segmentOf.delete(seq);
      if (segment) segment.unacked--;
    }
    this.#releaseAcknowledged(false);
  }

  /**
   * `done` runs once everything appended so far is in the kernel — or its write failed (then `err`;
   * the batches were reported to onLost). At once when nothing is waiting. Runs exactly once.
   */
  afterWrite(done: (err: Error | null) => void): void {
    const last = this.#queue.length > 0 ? this.#queue[this.#queue.length - 1]! : this.#writing;
    if (last) last.done.push(done);
    else done(null);
  }

  /** Resolves once no write, delete, sync or close is running or waiting. */
  settled(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** The events JSON of a batch kept only on disk (or still waiting for its write). */
  read(location: SpoolLocation): Buffer {
    const waiting = this.#unwritten(location);
    if (waiting) return waiting.subarray(waiting.indexOf(0x0a) + 1);
    const fd = openSync(this.#path(location.segment), 'r');
    try {
      const buf = Buffer.allocUnsafe(location.length);
      let done = 0;
      while (done < location.length) {
        const n = readSync(fd, buf, done, location.length - done, location.offset + done);
        if (n === 0) throw new Error(`spool segment ${location.segment} is shorter than expected`);
        done += n;
      }
      return buf.subarray(buf.indexOf(0x0a) + 1);
    } finally {
      closeSync(fd);
    }
  }

  /** Finishes the writes, flushes to disk and closes (no further appends). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    await this.settled();
    try {
      if (this.#dirty) fsyncSync(this.#fd);
    } catch (err) {
      this.#options.log('warn', { err: (err as Error).message }, 'analytics spool fsync failed');
    } finally {
      closeSync(this.#fd);
    }
  }

  /** A copy of the frame at `location` while it waits for (or is in) its write. */
  #unwritten(location: SpoolLocation): Buffer | null {
    const from = location.offset - HEADER;
    const find = (c: Chunk | null) =>
      c !== null && c.segment === location.segment && from >= c.start && from < c.start + c.bytes;
    const chunk = find(this.#writing) ? this.#writing : this.#queue.find(find);
    if (!chunk) return null;
    const at = location.offset - chunk.start;
    return Buffer.from(chunk.buf.subarray(at, at + location.length));
  }

  #path(n: number): string {
    return join(this.#options.dir, `${String(n).padStart(10, '0')}.spool`);
  }

  /** One frame (header, `head`, then `body` when given) appended to the chunk being filled; its offset. */
  #writeFrame(type: number, head: Buffer, body: Buffer | null, seq: number, count: number): number {
    if (this.#closed) throw new Error('spool is closed');
    const length = head.length + (body?.length ?? 0);
    if (this.#current.bytes > 0 && this.#current.bytes + HEADER + length > this.#options.segmentBytes)
      this.#rotate();
    const total = HEADER + length;
    const chunk = this.#filling(total);
    const buf = chunk.buf;
    const at = chunk.bytes;
    buf.writeUInt32BE(MAGIC, at);
    buf.writeUInt32BE(type << 24, at + 4);
    buf.writeUInt32BE(length, at + 8);
    buf.writeUInt32BE(body === null ? crc32(head) : crc32(body, crc32(head)), at + 12);
    head.copy(buf, at + HEADER);
    body?.copy(buf, at + HEADER + head.length);
    chunk.bytes += total;
    if (type === TYPE_BATCH) chunk.batches.push(seq, count);
    const offset = this.#current.bytes;
    this.#current.bytes += total;
    this.#bytes += total;
    this.#kick();
    return offset;
  }

  /** The chunk new frames of the current segment go in, with room for `bytes` more. */
  #filling(bytes: number): Chunk {
    const last = this.#queue.length > 0 ? this.#queue[this.#queue.length - 1]! : null;
    if (last === null || last.fd !== this.#fd) {
      let buf = this.#spare;
      this.#spare = null;
      if (buf === null || buf.length < bytes) buf = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, bytes));
      const chunk: Chunk = {
        fd: this.#fd,
        segment: this.#current.n,
        start: this.#current.bytes,
        buf,
        bytes: 0,
        batches: [],
        done: [],
      };
      this.#queue.push(chunk);
      return chunk;
    }
    if (last.bytes + bytes > last.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(last.buf.length * 2, last.bytes + bytes));
      last.buf.copy(grown, 0, 0, last.bytes);
      last.buf = grown;
    }
    return last;
  }

  /** Starts the oldest chunk's write when none is running: on the event loop (see above) or in the pool. */
  #kick(): void {
    if (this.#writing !== null || this.#queue.length === 0 || this.#loopWriteDue) return;
    if (this.#onLoop(this.#queue[0]!)) {
      // After the code appending now (a turn's frames, acks) is done: one write for all of it.
      this.#loopWriteDue = true;
      queueMicrotask(this.#writeOnLoop);
      return;
    }
    const chunk = this.#take();
    this.writes.threadPool++;
    this.#writeFrom(chunk, 0);
  }

  /** The oldest chunk, now the one being written. */
  #take(): Chunk {
    const chunk = this.#queue.shift()!;
    this.#writing = chunk;
    return chunk;
  }

  #onLoop(chunk: Chunk): boolean {
    if (this.#loopLimitMs <= 0 || this.#syncing === chunk.fd) return false;
    if (this.#poolUntil === 0) return true;
    if (performance.now() < this.#poolUntil) return false;
    this.#poolUntil = 0;
    this.#options.log('info', {}, 'analytics spool: writing on the event loop again');
    return true;
  }

  readonly #writeOnLoop = (): void => {
    this.#loopWriteDue = false;
    if (this.#writing !== null || this.#queue.length === 0) return;
    if (!this.#onLoop(this.#queue[0]!)) {
      this.#kick(); // an fsync started meanwhile
      return;
    }
    const chunk = this.#take();
    this.writes.eventLoop++;
    const started = performance.now();
    let done = 0;
    try {
      while (done < chunk.bytes) done += writeSync(chunk.fd, chunk.buf, done, chunk.bytes - done);
    } catch (err) {
      this.#finish(chunk, err as Error);
      return;
    }
    this.#timed(performance.now() - started, chunk.bytes);
    this.#finish(chunk, null);
  };

  /** Counts a write on the event loop that took `ms`; SLOW_IN_A_ROW slow ones start a pool period. */
  #timed(ms: number, bytes: number): void {
    if (ms <= this.#loopLimitMs) {
      this.#slowInARow = 0;
      return;
    }
    this.writes.slow++;
    if (++this.#slowInARow < SLOW_IN_A_ROW) return;
    this.#slowInARow = 0;
    this.#poolUntil = performance.now() + POOL_PERIOD_MS;
    this.#options.log(
      'warn',
      { ms: Math.round(ms * 10) / 10, limitMs: this.#loopLimitMs, bytes },
      `analytics spool: ${SLOW_IN_A_ROW} writes in a row on the event loop were slow; writing in the thread pool for ${POOL_PERIOD_MS / 1000}s`,
    );
  }

  #writeFrom(chunk: Chunk, done: number): void {
    write(chunk.fd, chunk.buf, done, chunk.bytes - done, null, (err, n) => {
      if (err) this.#finish(chunk, err);
      // A short write (rare: a full disk, a signal) goes on from where it stopped.
      else if (done + n < chunk.bytes) this.#writeFrom(chunk, done + n);
      else this.#finish(chunk, null);
    });
  }

  #finish(chunk: Chunk, err: Error | null): void {
    this.#writing = null;
    if (err === null) {
      this.#dirty = true;
      let events = 0;
      for (let i = 1; i < chunk.batches.length; i += 2) events += chunk.batches[i]!;
      if (events > 0) this.#options.onWritten?.(events);
      this.#settle(chunk, null);
    } else {
      this.#options.log(
        'error',
        { err: err.message, segment: chunk.segment, bytes: chunk.bytes },
        'analytics spool write failed: its events are kept in memory only',
      );
      // What follows it in the same file would come after a frame that may be torn: those fail too,
      // and the next frames start a new segment.
      const failed = [chunk];
      while (this.#queue.length > 0 && this.#queue[0]!.fd === chunk.fd) failed.push(this.#queue.shift()!);
      if (chunk.fd === this.#fd && !this.#closed) this.#rotate();
      for (const c of failed) this.#lose(c, err);
    }
    this.#closeRetired();
    this.#kick();
    this.#notifyIdle();
  }

  /** The batches of a failed chunk are no longer held: forgotten here, reported to onLost. */
  #lose(chunk: Chunk, err: Error): void {
    const lost: number[] = [];
    for (let i = 0; i < chunk.batches.length; i += 2) {
      const seq = chunk.batches[i]!;
      if (this.#segmentOf.get(seq) !== chunk.segment) continue;
      this.#segmentOf.delete(seq);
      const segment = this.#segments.get(chunk.segment);
      if (segment) segment.unacked--;
      lost.push(seq, chunk.batches[i + 1]!);
    }
    if (lost.length > 0) this.#options.onLost?.(lost);
    this.#settle(chunk, err);
    if (!this.#closed) this.#releaseAcknowledged(false);
  }

  /** Runs a chunk's callbacks and keeps its buffer for the next. */
  #settle(chunk: Chunk, err: Error | null): void {
    for (const done of chunk.done) {
      try {
        done(err);
      } catch (e) {
        this.#options.log('error', { err: (e as Error).message }, 'analytics spool: a write callback threw');
      }
    }
    if (this.#spare === null || this.#spare.length < chunk.buf.length) this.#spare = chunk.buf;
  }

  #rotate(): void {
    this.#retired.push(this.#fd);
    const n = this.#current.n + 1;
    this.#current = { n, bytes: 0, unacked: 0 };
    this.#segments.set(n, this.#current);
    this.#fd = openSync(this.#path(n), 'a', 0o600);
    this.#dirty = false;
    this.#closeRetired();
    this.#releaseAcknowledged(false);
  }

  /** Syncs and closes rotated segments no write or timer fsync is using any more (thread pool). */
  #closeRetired(): void {
    for (let i = this.#retired.length - 1; i >= 0; i--) {
      const fd = this.#retired[i]!;
      if (this.#writing?.fd === fd || this.#syncing === fd || this.#queue.some((c) => c.fd === fd)) continue;
      this.#retired.splice(i, 1);
      this.#background++;
      fsync(fd, (err) => {
        if (err) this.#options.log('warn', { err: err.message }, 'analytics spool fsync failed');
        close(fd, () => this.#backgroundDone());
      });
    }
  }

  #sync(): void {
    if (!this.#dirty || this.#syncing !== null || this.#closed) return;
    this.#dirty = false;
    const fd = this.#fd;
    this.#syncing = fd;
    this.#background++;
    fsync(fd, (err) => {
      this.#syncing = null;
      if (err) this.#options.log('warn', { err: err.message }, 'analytics spool fsync failed');
      this.#closeRetired();
      this.#backgroundDone();
    });
  }

  #backgroundDone(): void {
    this.#background--;
    this.#notifyIdle();
  }

  #isIdle(): boolean {
    return (
      this.#writing === null &&
      this.#queue.length === 0 &&
      this.#background === 0 &&
      this.#retired.length === 0
    );
  }

  #notifyIdle(): void {
    if (this.#idle.length === 0 || !this.#isIdle()) return;
    const waiting = this.#idle;
    this.#idle = [];
    for (const resolve of waiting) resolve();
  }

  /**
   * Deletes segments, oldest first, while every batch in them is acknowledged (never the current
   * one): at open before anything else (`now`), otherwise in the thread pool.
   */
  #releaseAcknowledged(now: boolean): void {
    const ordered = [...this.#segments.keys()].sort((a, b) => a - b);
    for (const n of ordered) {
      const segment = this.#segments.get(n)!;
      if (segment.unacked > 0 || segment === this.#current) return;
      this.#segments.delete(n);
      this.#bytes -= segment.bytes;
      const path = this.#path(n);
      if (now) {
        try {
          unlinkSync(path);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
        continue;
      }
      this.#background++;
      unlink(path, (err) => {
        if (err && err.code !== 'ENOENT')
          this.#options.log('warn', { err: err.message, path }, 'analytics spool: deleting a segment failed');
        this.#backgroundDone();
      });
    }
  }

  #replay(): { batches: ReplayedBatch[]; torn: number; maxSeq: number } {
    const files = readdirSync(this.#options.dir)
      .filter((f) => /^[0-9]{10}\.spool$/.test(f))
      .sort();
    const batches = new Map<number, ReplayedBatch>();
    let torn = 0;
    let maxSeq = 0;
    for (const file of files) {
      const n = Number(file.slice(0, 10));
      const path = join(this.#options.dir, file);
      const data = readFileSync(path);
      let at = 0;
      const segment: Segment = { n, bytes: 0, unacked: 0 };
      while (at < data.length) {
        const frame = readFrame(data, at);
        if (frame === null) {
          torn++;
          this.#options.log(
            'warn',
            { segment: file, offset: at, dropped: data.length - at },
            'analytics spool: torn or corrupt frame, the rest of the segment is skipped',
          );
          ftruncateAt(path, at);
          break;
        }
        const payload = data.toString('utf8', at + HEADER, at + HEADER + frame.length);
        if (frame.type === TYPE_BATCH) {
          const nl = payload.indexOf('\n');
          const [seqText, countText] = payload.slice(0, nl).split(' ');
          const seq = Number(seqText);
          const count = Number(countText);
          if (Number.isSafeInteger(seq) && Number.isSafeInteger(count)) {
            batches.set(seq, {
              seq,
              count,
              location: { segment: n, offset: at + HEADER, length: frame.length },
            });
            this.#segmentOf.set(seq, n);
            segment.unacked++;
            if (seq > maxSeq) maxSeq = seq;
          }
        } else if (frame.type === TYPE_ACK) {
          for (const part of payload.split(' ')) {
            const seq = Number(part);
            if (batches.delete(seq)) {
              const of = this.#segmentOf.get(seq)!;
              this.#segmentOf.delete(seq);
              const owner = of === n ? segment : this.#segments.get(of);
              if (owner) owner.unacked--;
            }
          }
        }
        at += HEADER + frame.length;
      }
      segment.bytes = at;
      this.#bytes += at;
      this.#segments.set(n, segment);
    }
    return { batches: [...batches.values()].sort((a, b) => a.seq - b.seq), torn, maxSeq };
  }
}

function readFrame(data: Buffer, at: number): { type: number; length: number } | null {
  if (data.length - at < HEADER) return null;
  if (data.readUInt32BE(at) !== MAGIC) return null;
  const type = data[at + 4]!;
  const length = data.readUInt32BE(at + 8);
  if ((type !== TYPE_BATCH && type !== TYPE_ACK) || length > MAX_FRAME) return null;
  if (data.length - at - HEADER < length) return null;
  if (crc32(data.subarray(at + HEADER, at + HEADER + length)) !== data.readUInt32BE(at + 12)) return null;
  return { type, length };
}

function ftruncateAt(path: string, length: number): void {
  const fd = openSync(path, 'r+');
  try {
    ftruncateSync(fd, length);
  } finally {
    closeSync(fd);
  }
}
