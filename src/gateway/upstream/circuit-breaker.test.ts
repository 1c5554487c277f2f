import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CircuitBreaker, circuitState } from './circuit-breaker.ts';

const config = { failureRatio: 0.5, minRequests: 4, windowMs: 10_000, openForMs: 5_000, halfOpenRequests: 2 };

test('opens at the failure ratio once there are enough calls', () => {
  const breaker = new CircuitBreaker(config);
  let now = 1_000;
  breaker.settled(false, now);
  breaker.settled(false, now);
  breaker.settled(false, now);
  assert.equal(breaker.state(now), circuitState.closed, 'fewer than minRequests calls');
  breaker.settled(true, now);
  assert.equal(breaker.state(now), circuitState.open);
  assert.equal(breaker.admits(now), false);
  now += 4_999;
  assert.equal(breaker.admits(now), false);
});

test('failures older than the window do not count', () => {
  const breaker = new CircuitBreaker(config);
  breaker.settled(false, 0);
  breaker.settled(false, 0);
  breaker.settled(false, 0);
  breaker.settled(false, 20_000);
  assert.equal(breaker.state(20_000), circuitState.closed);
  breaker.settled(true, 20_000);
  breaker.settled(true, 20_000);
  breaker.settled(true, 20_000);
  assert.equal(breaker.state(20_000), circuitState.closed, '1 of 4 failed');
});

test('half-open: a bounded number of probes; their successes close it', () => {
  const breaker = new CircuitBreaker(config);
  for (let i = 0; i < 4; i++) breaker.settled(false, 0);
  assert.equal(breaker.state(5_000), circuitState.halfOpen);
  assert.equal(breaker.admits(5_000), true);
  breaker.started(5_000);
  breaker.started(5_000);
  assert.equal(breaker.admits(5_000), false, 'two probes in flight');
  breaker.settled(true, 5_100);
  assert.equal(breaker.state(5_100), circuitState.halfOpen);
  assert.equal(breaker.admits(5_100), true);
  breaker.settled(true, 5_200);
  assert.equal(breaker.state(5_200), circuitState.closed);
  assert.equal(breaker.admits(5_200), true);
});

test('half-open: one failed probe opens it again; a probe without verdict frees its slot', () => {
  const breaker = new CircuitBreaker(config);
  for (let i = 0; i < 4; i++) breaker.settled(false, 0);
  breaker.started(5_000);
  breaker.started(5_000);
  breaker.settled(null, 5_001);
  assert.equal(breaker.admits(5_001), true);
  breaker.settled(false, 5_002);
  assert.equal(breaker.state(5_002), circuitState.open);
  assert.equal(breaker.state(10_001), circuitState.open);
  assert.equal(breaker.state(10_002), circuitState.halfOpen);
});
