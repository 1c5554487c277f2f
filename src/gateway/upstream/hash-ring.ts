import { hash32 } from './hash.ts';

/**
 * A consistent-hash ring: each node owns `pointsPerWeight × weight` points placed by hashing its key
 * (the target URL), so a node's points do not depend on the other nodes. Removing a node moves only
 * the keys it owned (to the next node clockwise); adding one takes keys only from their current owners.
 */
export class HashRing {
  readonly #points: Uint32Array;
  readonly #owners: Uint16Array;
  /** Per-lookup marks of the owners already turned down (a stamp per lookup, so nothing is cleared). */
  readonly #seen: Uint32Array;
  readonly #nodes: number;
  #stamp = 0;

  constructor(
    nodes: ReadonlyArray<{ readonly key: string; readonly weight: number }>,
    pointsPerWeight = 100,
  ) {
    if (nodes.length > 0xffff) throw new RangeError('too many nodes for a hash ring');
    const entries: Array<{ hash: number; owner: number; key: string }> = [];
    nodes.forEach((node, owner) => {
      const count = Math.max(1, Math.round(node.weight * pointsPerWeight));
      for (let v = 0; v < count; v++)
        entries.push({ hash: hash32(`${node.key}#${v}`), owner, key: node.key });
    });
    // Ties broken by key, not by position, so the ring does not depend on the order nodes are listed in.
    entries.sort((a, b) => a.hash - b.hash || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    this.#points = Uint32Array.from(entries, (e) => e.hash);
    this.#owners = Uint16Array.from(entries, (e) => e.owner);
    this.#seen = new Uint32Array(nodes.length);
    this.#nodes = nodes.length;
  }

  /**
   * The node owning `hash`: the owner of the first point at or after it, going on clockwise past
   * nodes that are not `eligible` (eligible[node] === 0). -1 when no node is eligible.
   */
  find(hash: number, eligible?: Uint8Array): number {
    const points = this.#points;
    const total = points.length;
    if (total === 0) return -1;
    let low = 0;
    let high = total;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (points[mid]! < hash) low = mid + 1;
      else high = mid;
    }
    if (eligible === undefined) return this.#owners[low === total ? 0 : low]!;
    const stamp = this.#nextStamp();
    let turnedDown = 0;
    for (let step = 0; step < total && turnedDown < this.#nodes; step++) {
      const owner = this.#owners[(low + step) % total]!;
      if (eligible[owner] === 1) return owner;
      if (this.#seen[owner] !== stamp) {
        this.#seen[owner] = stamp;
        turnedDown++;
      }
    }
    return -1;
  }

  #nextStamp(): number {
    this.#stamp = (this.#stamp + 1) >>> 0;
    if (this.#stamp === 0) {
      this.#seen.fill(0);
      this.#stamp = 1;
    }
    return this.#stamp;
  }
}
