import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RetryBudget } from './retry-budget.ts';

test('retries are capped to ratio × recent requests plus a floor', () => {
  const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 0 });
  const now = 50_000;
  for (let i = 0; i < 10; i++) budget.request(now);
  assert.equal(budget.tryRetry(now), true);
  assert.equal(budget.tryRetry(now), true);
  assert.equal(budget.tryRetry(now), false, '2 of 10 spent');
  for (let i = 0; i < 5; i++) budget.request(now);
  assert.equal(budget.tryRetry(now), true);
  assert.equal(budget.tryRetry(now), false);
});

test('the floor allows retries with no traffic; the window slides', () => {
  const budget = new RetryBudget({ ratio: 0, minPerSecond: 1 });
  let now = 1_000;
  for (let i = 0; i < 10; i++) assert.equal(budget.tryRetry(now), true);
  assert.equal(budget.tryRetry(now), false, '10 per 10 s');
  now += 5_000;
  assert.equal(budget.tryRetry(now), false, 'still in the window');
  now += 5_000;
  assert.equal(budget.tryRetry(now), true, 'the first slice left the window');
});
