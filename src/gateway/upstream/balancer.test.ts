import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fakeContext } from '../../../test/helpers/fake-context.ts';
import { cookieValue, hashKey, LeastRequest, SmoothRoundRobin } from './balancer.ts';

const all = (n: number) => new Uint8Array(n).fill(1);

test('smooth round-robin follows the weights exactly and interleaves', () => {
  const rr = new SmoothRoundRobin([3, 1]);
  const picks = Array.from({ length: 8 }, () => rr.pick(null, all(2)));
  assert.deepEqual(picks, [0, 0, 1, 0, 0, 0, 1, 0]);
  const five = new SmoothRoundRobin([5, 1, 1]);
  const counts = [0, 0, 0];
  for (let i = 0; i < 70; i++) counts[five.pick(null, all(3))]!++;
  assert.deepEqual(counts, [50, 10, 10]);
});

test('round-robin skips ineligible targets and answers -1 when none is', () => {
  const rr = new SmoothRoundRobin([1, 1, 1]);
  const eligible = new Uint8Array([1, 0, 1]);
  const picks = Array.from({ length: 6 }, () => rr.pick(null, eligible));
  assert.ok(!picks.includes(1));
  assert.equal(picks.filter((p) => p === 0).length, 3);
  assert.equal(rr.pick(null, new Uint8Array(3)), -1);
});

test('least-request takes the target with the fewest calls in flight per weight, ties in turn', () => {
  const targets = [{ inFlight: 0 }, { inFlight: 0 }];
  const lr = new LeastRequest([1, 1], targets);
  assert.deepEqual([lr.pick(null, all(2)), lr.pick(null, all(2)), lr.pick(null, all(2))], [0, 1, 0]);
  targets[0]!.inFlight = 3;
  targets[1]!.inFlight = 1;
  for (let i = 0; i < 4; i++) assert.equal(lr.pick(null, all(2)), 1);
  // Weight 4 with 3 in flight ((3+1)/4 = 1) beats weight 1 with 1 in flight ((1+1)/1 = 2).
  const weighted = new LeastRequest([4, 1], targets);
  assert.equal(weighted.pick(null, all(2)), 0);
  assert.equal(weighted.pick(null, new Uint8Array([0, 1])), 1);
});

test('hash keys: header, cookie, client, subject; absent is null', () => {
  const ctx = fakeContext({
    headers: { 'x-user': 'alice', cookie: 'a=1; session=s-42 ;b=2' },
    identity: { method: 'jwt', subject: 'sub-7' },
  });
  assert.equal(hashKey(ctx, { kind: 'header', name: 'x-user' }), 'alice');
  assert.equal(hashKey(ctx, { kind: 'header', name: 'x-none' }), null);
  assert.equal(hashKey(ctx, { kind: 'cookie', name: 'session' }), 's-42');
  assert.equal(hashKey(ctx, { kind: 'client' }), '127.0.0.1');
  assert.equal(hashKey(ctx, { kind: 'subject' }), 'sub-7');
  assert.equal(hashKey(fakeContext(), { kind: 'subject' }), null);
  assert.equal(cookieValue('a=1; b=2', 'b'), '2');
  assert.equal(cookieValue('ab=1; b=', 'b'), null);
  assert.equal(cookieValue('xb=1', 'b'), null);
  assert.equal(cookieValue(undefined, 'b'), null);
});
