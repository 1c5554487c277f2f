/**
 * Two counters over a sliding window, kept in `buckets` slices: adding is O(1), and a slice is
 * cleared when the window moves past it. Totals are exact to one slice.
 */
export class SlidingCounts {
  readonly #sliceMs: number;
  readonly #a: Float64Array;
  readonly #b: Float64Array;
  #slice = -1;
  #totalA = 0;
  #totalB = 0;

  constructor(windowMs: number, buckets = 10) {
    this.#sliceMs = Math.max(1, windowMs / buckets);
    this.#a = new Float64Array(buckets);
    this.#b = new Float64Array(buckets);
  }

  /** The first count over the window ending at `now`. */
  totalA(now: number): number {
    this.#advance(now);
    return this.#totalA;
  }

  /** The second count over the window ending at `now`. */
  totalB(now: number): number {
    this.#advance(now);
    return this.#totalB;
  }

  add(now: number, a: number, b: number): void {
    this.#advance(now);
    const i = this.#slice % this.#a.length;
    this.#a[i]! += a;
    this.#b[i]! += b;
    this.#totalA += a;
    this.#totalB += b;
  }

  clear(): void {
    this.#a.fill(0);
    this.#b.fill(0);
    this.#totalA = 0;
    this.#totalB = 0;
  }

  #advance(now: number): void {
    const slice = Math.floor(now / this.#sliceMs);
    if (slice <= this.#slice) return;
    const buckets = this.#a.length;
    if (this.#slice < 0 || slice - this.#slice >= buckets) this.clear();
    else {
      for (let s = this.#slice + 1; s <= slice; s++) {
        const i = s % buckets;
        this.#totalA -= this.#a[i]!;
        this.#totalB -= this.#b[i]!;
        this.#a[i] = 0;
        this.#b[i] = 0;
      }
    }
    this.#slice = slice;
  }
}
