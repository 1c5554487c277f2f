import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { fakeContext } from '../../../test/helpers/fake-context.ts';
import { Value } from 'typebox/value';
import { UpstreamSpec } from '../../config/schemas/upstream.ts';
import { compileUpstream } from '../../plan/upstreams.ts';
import { LiveUpstream } from './live-upstream.ts';
import { TargetRuntime } from './target.ts';

const opened: TargetRuntime[] = [];
after(() => Promise.all(opened.map((t) => t.destroy())));

/** A live upstream from a spec as written in YAML (defaults applied), with a clock the test moves. */
function live(spec: Record<string, unknown>, clock: { now: number }) {
  const full = Value.Default(UpstreamSpec, structuredClone(spec)) as UpstreamSpec;
  const problems: string[] = [];
  const config = compileUpstream(
    'default/test',
    full,
    (p) => p,
    (_path, message) => problems.push(message),
  );
  assert.deepEqual(problems, []);
  const log = () => {};
  const targets = config.targets.map((t) => new TargetRuntime(config, t, { start: false, log }));
  opened.push(...targets);
  return new LiveUpstream(config, targets, { now: () => clock.now, log });
}

const two = [{ url: 'http://127.0.0.1:1' }, { url: 'http://127.0.0.1:2' }];

test('a retry prefers a target not tried yet, and falls back to a tried one', () => {
  const upstream = live({ targets: two }, { now: 0 });
  const ctx = fakeContext();
  const first = upstream.pick(ctx, null)!;
  const second = upstream.pick(ctx, [first])!;
  assert.notEqual(second, first);
  assert.ok(upstream.pick(ctx, [first, second]), 'all tried: any available one');
});

test('unhealthy targets get nothing; none healthy: null', () => {
  const upstream = live({ targets: two, healthCheck: { path: '/health' } }, { now: 0 });
  const ctx = fakeContext();
  upstream.targets[0]!.healthy = false;
  for (let i = 0; i < 5; i++) assert.equal(upstream.pick(ctx, null), upstream.targets[1]);
  upstream.targets[1]!.healthy = false;
  assert.equal(upstream.pick(ctx, null), null);
});

test('consecutive failures eject a target for a while, within the cap', () => {
  const clock = { now: 1_000 };
  const upstream = live(
    { targets: two, outlierDetection: { consecutiveFailures: 2, baseEjectionTime: '10s' } },
    clock,
  );
  const [a, b] = upstream.targets as [TargetRuntime, TargetRuntime];
  const ctx = fakeContext();
  upstream.settle(a, false);
  upstream.settle(a, true);
  upstream.settle(a, false);
  assert.equal(a.ejectedUntil, 0, 'a success in between resets the count');
  upstream.settle(a, false);
  assert.equal(a.ejectedUntil, 11_000);
  for (let i = 0; i < 4; i++) assert.equal(upstream.pick(ctx, null), b);
  clock.now = 11_000;
  const picks = new Set([upstream.pick(ctx, null), upstream.pick(ctx, null)]);
  assert.ok(picks.has(a), 'back after the ejection');
});

test('an open circuit takes the target out until a probe is allowed', () => {
  const clock = { now: 0 };
  const upstream = live(
    {
      targets: two,
      circuitBreaker: {
        failureRatio: 0.5,
        minRequests: 2,
        window: '10s',
        openFor: '5s',
        halfOpenRequests: 1,
      },
    },
    clock,
  );
  const [a, b] = upstream.targets as [TargetRuntime, TargetRuntime];
  const ctx = fakeContext();
  upstream.begin(a);
  upstream.settle(a, false);
  upstream.begin(a);
  upstream.settle(a, false);
  for (let i = 0; i < 3; i++) assert.equal(upstream.pick(ctx, null), b);
  clock.now = 5_000;
  upstream.targets[1]!.healthy = false;
  assert.equal(upstream.pick(ctx, null), a, 'half-open: one probe');
  upstream.begin(a);
  assert.equal(upstream.pick(ctx, null), null, 'the probe is in flight');
  upstream.settle(a, true);
  upstream.release(a);
  assert.equal(upstream.pick(ctx, null), a);
});
