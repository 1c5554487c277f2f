import {
  closeSync,
  fsync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  unlinkSync,
  writeSync,
  writevSync,
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
 * Writes are synchronous `write(2)`s (data is in the kernel once they return: a process kill loses
 * nothing written); `fsync` runs on a timer, off the event loop, for machine crashes.
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
  readonly log: (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string) => void;
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

export class Spool {
  readonly #options: SpoolOptions;
  readonly #segments = new Map<number, Segment>();
  /** Segment of every unacknowledged batch (acks name seqs). */
  readonly #segmentOf = new Map<number, number>();
  #current: Segment;
  #fd: number;
  #dirty = false;
  #syncing = false;
  #timer: NodeJS.Timeout;
  #bytes = 0;
  #closed = false;
  /** What open() found. */
  readonly replayed: readonly ReplayedBatch[];
  readonly tornFrames: number;
  readonly maxSeq: number;

  constructor(options: SpoolOptions) {
    this.#options = options;
    mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    const found = this.#replay();
    this.replayed = found.batches;
    this.tornFrames = found.torn;
    this.maxSeq = found.maxSeq;
    this.#releaseAcknowledged();
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
   * Appends a batch (its events' JSON, comma-separated) in one write; its location, or null when
   * over maxBytes (the caller keeps it in memory or drops it).
   */
  appendBatch(seq: number, count: number, events: Buffer): SpoolLocation | null {
    const prefix = Buffer.from(`${seq} ${count}\n`);
    const length = prefix.length + events.length;
    if (!this.hasRoom(length)) return null;
    const offset = this.#writeFrame(TYPE_BATCH, prefix, events);
    this.#current.unacked++;
    this.#segmentOf.set(seq, this.#current.n);
    return { segment: this.#current.n, offset: offset + HEADER, length };
  }

  /** Records that these batches were delivered; segments left with nothing unacknowledged go. */
  ack(seqs: readonly number[]): void {
    const known = seqs.filter((s) => this.#segmentOf.has(s));
    if (known.length === 0 || this.#closed) return;
    this.#writeFrame(TYPE_ACK, Buffer.from(known.join(' ')), null);
    for (const seq of known) {
      const segment = this.#segments.get(this.#segmentOf.get(seq)!);
      this.#segmentOf.delete(seq);
      if (segment) segment.unacked--;
    }
    this.#releaseAcknowledged();
  }

  /** The events JSON of a batch kept only on disk. */
  read(location: SpoolLocation): Buffer {
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

  /** Flushes to disk and closes (no further writes). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    try {
      if (this.#dirty) this.#fsyncNow();
    } finally {
      closeSync(this.#fd);
    }
  }

  #path(n: number): string {
    return join(this.#options.dir, `${String(n).padStart(10, '0')}.spool`);
  }

  /** One frame (header, `head`, then `body` when given) in one write(2); returns its offset. */
  #writeFrame(type: number, head: Buffer, body: Buffer | null): number {
    if (this.#closed) throw new Error('spool is closed');
    const length = head.length + (body?.length ?? 0);
    if (this.#current.bytes > 0 && this.#current.bytes + HEADER + length > this.#options.segmentBytes)
      this.#rotate();
    const first = Buffer.allocUnsafe(HEADER + head.length);
    head.copy(first, HEADER);
    first.writeUInt32BE(MAGIC, 0);
    first.writeUInt32BE(type << 24, 4);
    first.writeUInt32BE(length, 8);
    const crc = body === null ? crc32(head) : crc32(body, crc32(head));
    first.writeUInt32BE(crc, 12);
    const offset = this.#current.bytes;
    const total = HEADER + length;
    let done = body === null ? writeSync(this.#fd, first) : writevSync(this.#fd, [first, body]);
    // A short write (rare: a full disk, a signal) is finished from a single buffer.
    if (done < total) {
      const rest = body === null ? first : Buffer.concat([first, body]);
      while (done < total) done += writeSync(this.#fd, rest, done, total - done);
    }
    this.#current.bytes += total;
    this.#bytes += total;
    this.#dirty = true;
    return offset;
  }

  #rotate(): void {
    if (this.#dirty) this.#fsyncNow();
    closeSync(this.#fd);
    const n = this.#current.n + 1;
    this.#current = { n, bytes: 0, unacked: 0 };
    this.#segments.set(n, this.#current);
    this.#fd = openSync(this.#path(n), 'a', 0o600);
    this.#releaseAcknowledged();
  }

  #fsyncNow(): void {
    this.#dirty = false;
    // Sync on close and rotation only: the timer's fsync runs in the thread pool.
    try {
      fsyncSync(this.#fd);
    } catch (err) {
      this.#options.log('warn', { err: (err as Error).message }, 'analytics spool fsync failed');
    }
  }

  #sync(): void {
    if (!this.#dirty || this.#syncing || this.#closed) return;
    this.#dirty = false;
    this.#syncing = true;
    fsync(this.#fd, (err) => {
      this.#syncing = false;
      if (err) this.#options.log('warn', { err: err.message }, 'analytics spool fsync failed');
    });
  }

  /** Deletes segments, oldest first, while every batch in them is acknowledged (never the current one). */
  #releaseAcknowledged(): void {
    const ordered = [...this.#segments.keys()].sort((a, b) => a - b);
    for (const n of ordered) {
      const segment = this.#segments.get(n)!;
      if (segment.unacked > 0 || segment === this.#current) return;
      try {
        unlinkSync(this.#path(n));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      this.#segments.delete(n);
      this.#bytes -= segment.bytes;
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
