import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eject, mayEject, type OutlierState } from './outlier.ts';

const config = {
  consecutiveFailures: 3,
  baseEjectionMs: 1_000,
  maxEjectionMs: 5_000,
  maxEjectionPercent: 50,
};

function state(partial: Partial<OutlierState> = {}): OutlierState {
  return { consecutiveFailures: 0, ejectedUntil: 0, ejections: 0, healthy: true, ...partial };
}

test('at most maxEjectionPercent of the targets are ejected while others are healthy', () => {
  const [a, b, c, d] = [state({ consecutiveFailures: 3 }), state(), state(), state()];
  const targets = [a!, b!, c!, d!];
  assert.equal(mayEject(a!, targets, config, 0), true);
  a!.ejectedUntil = 1_000;
  b!.ejectedUntil = 1_000;
  c!.consecutiveFailures = 3;
  assert.equal(mayEject(c!, targets, config, 0), false, '2 of 4 already out');
  assert.equal(mayEject(c!, targets, config, 1_000), true, 'ejections ended');
});

test('past the cap, a target is ejected when every other one is out or failing too', () => {
  const a = state({ ejectedUntil: 10_000 });
  const b = state({ consecutiveFailures: 3 });
  assert.equal(mayEject(b, [a, b], config, 0), true, 'all fail');
  const c = state({ healthy: false });
  const d = state({ consecutiveFailures: 3 });
  assert.equal(mayEject(d, [a, c, d], { ...config, maxEjectionPercent: 0 }, 0), true);
  const e = state();
  assert.equal(mayEject(d, [a, c, d, e], { ...config, maxEjectionPercent: 0 }, 0), false);
  const single = state({ consecutiveFailures: 3 });
  assert.equal(mayEject(single, [single], config, 0), true, 'the only target fails: it is all of them');
});

test('each ejection lasts longer, up to the maximum; a long quiet time starts over', () => {
  const target = state({ consecutiveFailures: 3 });
  assert.equal(eject(target, config, 0), 1_000);
  assert.equal(target.consecutiveFailures, 0);
  assert.equal(eject(target, config, 2_000), 2_000);
  assert.equal(eject(target, config, 5_000), 3_000);
  assert.equal(eject(target, config, 9_000), 4_000);
  assert.equal(eject(target, config, 14_000), 5_000);
  assert.equal(eject(target, config, 20_000), 5_000);
  assert.equal(eject(target, config, 25_000 + 5_001), 1_000, 'more than maxEjectionTime since the last one');
});
