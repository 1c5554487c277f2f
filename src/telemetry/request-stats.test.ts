import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { RequestStats } from './request-stats.ts';

test('counts and latency buckets come out as Prometheus counter and histogram series', async () => {
  const registry = new Registry();
  const stats = new RequestStats();
  stats.register(registry);
  stats.observe('default/shop#0', 'GET', '2xx', 0.0007);
  stats.observe('default/shop#0', 'GET', '2xx', 0.003);
  stats.observe('default/shop#0', 'POST', '4xx', 20);
  const text = await registry.metrics();
  assert.match(text, /# TYPE gatehouse_requests_total counter/);
  assert.match(text, /gatehouse_requests_total\{route="default\/shop#0",method="GET",status_class="2xx"\} 2/);
  assert.match(
    text,
    /gatehouse_requests_total\{route="default\/shop#0",method="POST",status_class="4xx"\} 1/,
  );
  assert.match(text, /# TYPE gatehouse_request_duration_seconds histogram/);
  // Buckets are cumulative: 0.0007 ≤ 0.001; 0.003 ≤ 0.005; 20 only in +Inf.
  assert.match(text, /gatehouse_request_duration_seconds_bucket\{route="default\/shop#0",le="0.001"\} 1\n/);
  assert.match(text, /gatehouse_request_duration_seconds_bucket\{route="default\/shop#0",le="0.0025"\} 1\n/);
  assert.match(text, /gatehouse_request_duration_seconds_bucket\{route="default\/shop#0",le="0.005"\} 2\n/);
  assert.match(text, /gatehouse_request_duration_seconds_bucket\{route="default\/shop#0",le="10"\} 2\n/);
  assert.match(text, /gatehouse_request_duration_seconds_bucket\{route="default\/shop#0",le="\+Inf"\} 3\n/);
  assert.match(text, /gatehouse_request_duration_seconds_count\{route="default\/shop#0"\} 3\n/);
  assert.match(text, /gatehouse_request_duration_seconds_sum\{route="default\/shop#0"\} 20.0037/);
});
