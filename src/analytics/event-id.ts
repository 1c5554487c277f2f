import { randomBytes } from 'node:crypto';

/**
 * UUIDv7 ids (RFC 9562) for events: 48 bits of Unix milliseconds, then a 26-bit counter (the 12
 * bits of rand_a and the top 14 of rand_b: "fixed-length dedicated counter", method 1), then 48
 * random bits drawn once per generator. Ids are unique within a process (the counter), across
 * processes with overwhelming probability (the random part), sort by time, and cost a few byte
 * copies instead of 16 random bytes each.
 */
export type EventIdWriter = (buf: Buffer, at: number, timeMs: number) => number;

/** Bytes of an id. */
export const EVENT_ID_BYTES = 36;

/** Hex digits of rand_a (3 each) and of the variant-marked top of rand_b (4 each), looked up. */
const hex3 = Buffer.from(Array.from({ length: 0x1000 }, (_, i) => i.toString(16).padStart(3, '0')).join(''));
const hex4 = Buffer.from(Array.from({ length: 0x4000 }, (_, i) => (0x8000 | i).toString(16)).join(''));

/**
 * Writes the next id's 36 ASCII bytes at `at` (room for them is the caller's) and returns where it
 * ends: on the request path no string is made for it.
 */
export function createEventIdWriter(random: (n: number) => Buffer = randomBytes): EventIdWriter {
  const node = Buffer.from(`-${random(6).toString('hex')}`);
  let counter = random(4).readUInt32BE(0) & 0x1ffffff; // start low in the range: room before it wraps
  // Many events share a millisecond: its part of the id (`tttttttt-tttt-7`) is formatted once.
  let lastMs = -1;
  const msPart = Buffer.alloc(15);
  return (buf, at, timeMs) => {
    counter = (counter + 1) & 0x3ffffff;
    const ms = Math.max(0, Math.floor(timeMs));
    if (ms !== lastMs) {
      lastMs = ms;
      const hex = ms.toString(16).padStart(12, '0').slice(-12);
      msPart.write(`${hex.slice(0, 8)}-${hex.slice(8)}-7`, 'latin1');
    }
    // rand_a: the counter's top 12 bits; rand_b: variant bits 10, its low 14 bits, the random node.
    buf.set(msPart, at);
    const a = ((counter >>> 14) & 0xfff) * 3;
    buf[at + 15] = hex3[a]!;
    buf[at + 16] = hex3[a + 1]!;
    buf[at + 17] = hex3[a + 2]!;
    buf[at + 18] = 0x2d; // '-'
    const b = (counter & 0x3fff) * 4;
    buf[at + 19] = hex4[b]!;
    buf[at + 20] = hex4[b + 1]!;
    buf[at + 21] = hex4[b + 2]!;
    buf[at + 22] = hex4[b + 3]!;
    buf.set(node, at + 23);
    return at + EVENT_ID_BYTES;
  };
}

/** The same ids as strings (tests, tools): one generator, one counter. */
export function createEventIdGenerator(random?: (n: number) => Buffer): (timeMs: number) => string {
  const write = createEventIdWriter(random);
  const scratch = Buffer.alloc(EVENT_ID_BYTES);
  return (timeMs) => scratch.toString('latin1', 0, write(scratch, 0, timeMs));
}
