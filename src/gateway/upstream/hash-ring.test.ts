import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hash32 } from './hash.ts';
import { HashRing } from './hash-ring.ts';

const targets = ['http://10.0.0.1:80', 'http://10.0.0.2:80', 'http://10.0.0.3:80', 'http://10.0.0.4:80'];
const keys = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

function owners(ring: HashRing, nodes: readonly string[]): string[] {
  return keys.map((k) => nodes[ring.find(hash32(k))]!);
}

test('the same key always lands on the same target', () => {
  const ring = new HashRing(targets.map((key) => ({ key, weight: 1 })));
  for (const key of keys.slice(0, 100)) assert.equal(ring.find(hash32(key)), ring.find(hash32(key)));
  // A ring built again from the same targets, listed in another order, agrees.
  const reordered = [...targets].reverse();
  const again = new HashRing(reordered.map((key) => ({ key, weight: 1 })));
  assert.deepEqual(owners(again, reordered), owners(ring, targets));
});

test('keys spread over the targets in proportion to their weights', () => {
  const ring = new HashRing(targets.map((key) => ({ key, weight: 1 })));
  const counts = new Map<string, number>();
  for (const owner of owners(ring, targets)) counts.set(owner, (counts.get(owner) ?? 0) + 1);
  for (const target of targets) {
    const share = (counts.get(target) ?? 0) / keys.length;
    assert.ok(share > 0.15 && share < 0.35, `${target} got ${share}`);
  }
  const weighted = new HashRing([
    { key: targets[0]!, weight: 3 },
    { key: targets[1]!, weight: 1 },
  ]);
  const heavy = keys.filter((k) => weighted.find(hash32(k)) === 0).length / keys.length;
  assert.ok(heavy > 0.65 && heavy < 0.85, `weight 3 of 4 got ${heavy}`);
});

test('removing a target moves only the keys it held', () => {
  const before = owners(new HashRing(targets.map((key) => ({ key, weight: 1 }))), targets);
  const remaining = targets.filter((t) => t !== targets[2]);
  const after = owners(new HashRing(remaining.map((key) => ({ key, weight: 1 }))), remaining);
  let moved = 0;
  for (let i = 0; i < keys.length; i++) {
    if (before[i] === targets[2]) {
      moved++;
      continue;
    }
    assert.equal(after[i], before[i], `${keys[i]} moved from ${before[i]} to ${after[i]}`);
  }
  // Only about a quarter of the keys (those of the removed target) had to move.
  assert.ok(moved / keys.length < 0.35, `moved ${moved}`);
});

test('adding a target takes keys only from their current owners, about 1/n of them', () => {
  const three = targets.slice(0, 3);
  const before = owners(new HashRing(three.map((key) => ({ key, weight: 1 }))), three);
  const after = owners(new HashRing(targets.map((key) => ({ key, weight: 1 }))), targets);
  let moved = 0;
  for (let i = 0; i < keys.length; i++) {
    if (after[i] === before[i]) continue;
    assert.equal(after[i], targets[3], 'a key moved between two old targets');
    moved++;
  }
  assert.ok(moved / keys.length > 0.15 && moved / keys.length < 0.35, `moved ${moved}`);
});

test('an ineligible target passes its keys to the next one clockwise; none eligible: -1', () => {
  const ring = new HashRing(targets.map((key) => ({ key, weight: 1 })));
  const eligible = new Uint8Array([1, 1, 0, 1]);
  const removedRing = new HashRing(targets.filter((_, i) => i !== 2).map((key) => ({ key, weight: 1 })));
  const remaining = targets.filter((_, i) => i !== 2);
  for (const key of keys.slice(0, 2000)) {
    const owner = ring.find(hash32(key), eligible);
    assert.notEqual(owner, 2);
    // Skipping a target on the ring is the same as removing it.
    assert.equal(targets[owner], remaining[removedRing.find(hash32(key))]);
  }
  assert.equal(ring.find(hash32('x'), new Uint8Array(4)), -1);
  assert.equal(new HashRing([]).find(1), -1);
});
