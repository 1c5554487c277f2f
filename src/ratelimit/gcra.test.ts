import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gcraLimit, nextUnitMs, remaining, retryAfterMs } from './gcra.ts';
import { LocalBackend } from './local.ts';

test('a limit is an emission interval and a tolerance', () => {
  assert.deepEqual({ ...gcraLimit(10, 1000) }, { emissionMs: 100, toleranceMs: 900 });
  assert.deepEqual({ ...gcraLimit(10, 1000, 1) }, { emissionMs: 100, toleranceMs: 0 });
  assert.deepEqual({ ...gcraLimit(10, 1000, 20) }, { emissionMs: 100, toleranceMs: 1900 });
  assert.throws(() => gcraLimit(0, 1000), TypeError);
});

test('remaining, next unit and retry-after follow from how far TAT is ahead', () => {
  const limit = gcraLimit(10, 1000);
  assert.equal(remaining(limit, 0), 10, 'a full counter');
  assert.equal(remaining(limit, -50), 10, 'a TAT in the past is a full counter');
  assert.equal(remaining(limit, 100), 9, 'after one request');
  assert.equal(remaining(limit, 150), 8, 'part of a unit is not a unit');
  assert.equal(remaining(limit, 1000), 0, 'after ten');
  assert.equal(nextUnitMs(limit, 0), 0, 'full: nothing more to come');
  assert.equal(nextUnitMs(limit, 100), 100);
  assert.equal(nextUnitMs(limit, 150), 50);
  assert.equal(nextUnitMs(limit, 1000), 100);
  assert.equal(retryAfterMs(limit, 1000), 100);
  assert.equal(retryAfterMs(limit, 900), 0, 'one more would still be admitted');
});

test('thirds of a second do not lose a request to rounding', () => {
  const limit = gcraLimit(3, 1000);
  let ahead = 0;
  for (let i = 0; i < 3; i++) {
    assert.ok(ahead <= limit.toleranceMs + 1e-6, `request ${i + 1} fits`);
    ahead += limit.emissionMs;
  }
  assert.equal(remaining(limit, ahead), 0);
  assert.ok(Math.abs(retryAfterMs(limit, ahead) - 1000 / 3) < 1e-6);
});

test('local backend: the boundary of a window is no boundary (no double burst)', () => {
  let now = 1_000_000;
  const backend = new LocalBackend({ maxKeys: 10, now: () => now });
  const limit = gcraLimit(10, 1000);
  const admitted = (n: number) => {
    let count = 0;
    for (let i = 0; i < n; i++) if (backend.take(['k'], [limit]).allowed) count++;
    return count;
  };
  // A fixed window would admit 10 just before its end and 10 more just after; GCRA admits the
  // burst, then one per 100 ms, wherever "windows" would begin.
  assert.equal(admitted(20), 10);
  now += 999;
  assert.equal(admitted(20), 9, '999 ms later: 9 units back, not a new window of 10');
  now += 1;
  assert.equal(admitted(20), 1);
  now += 10_000;
  assert.equal(admitted(20), 10, 'a full burst once the counter has had a whole window to refill');
});

test('local backend: bounded, least recently used counters go first', () => {
  const backend = new LocalBackend({ maxKeys: 3, now: () => 0 });
  const limit = gcraLimit(1, 60_000);
  for (const key of ['a', 'b', 'c', 'd']) backend.take([key], [limit]);
  assert.equal(backend.size, 3);
  assert.equal(backend.take(['a'], [limit]).allowed, true, 'a was evicted and starts full again');
  assert.equal(backend.take(['d'], [limit]).allowed, false);
});
