import { randomBytes } from 'node:crypto';

/**
 * UUIDv7 ids (RFC 9562) for events: 48 bits of Unix milliseconds, then a 26-bit counter (the 12
 * bits of rand_a and the top 14 of rand_b: "fixed-length dedicated counter", method 1), then 48
 * random bits drawn once per generator. Ids are unique within a process (the counter), across
 * processes with overwhelming probability (the random part), sort by time, and cost a few string
 * operations instead of 16 random bytes each.
 */
/** Hex digits of rand_a (3) and of the variant-marked top of rand_b (4), looked up rather than formatted. */
const hex3 = Array.from({ length: 0x1000 }, (_, i) => i.toString(16).padStart(3, '0'));
const hex4 = Array.from({ length: 0x4000 }, (_, i) => (0x8000 | i).toString(16));

export function createEventIdGenerator(
  random: (n: number) => Buffer = randomBytes,
): (timeMs: number) => string {
  const node = random(6).toString('hex');
  let counter = random(4).readUInt32BE(0) & 0x1ffffff; // start low in the range: room before it wraps
  // Many events share a millisecond: its part of the id is formatted once.
  let lastMs = -1;
  let msPart = '';
  return (timeMs: number) => {
    counter = (counter + 1) & 0x3ffffff;
    const ms = Math.max(0, Math.floor(timeMs));
    if (ms !== lastMs) {
      lastMs = ms;
      const hex = ms.toString(16).padStart(12, '0').slice(-12);
      msPart = `${hex.slice(0, 8)}-${hex.slice(8)}-7`;
    }
    // rand_a: the counter's top 12 bits; rand_b: variant bits 10, its low 14 bits, the random node.
    return `${msPart}${hex3[(counter >>> 14) & 0xfff]}-${hex4[counter & 0x3fff]}-${node}`;
  };
}
