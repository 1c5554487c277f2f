// Analytics inside the control plane, end to end with real processes: `gatehouse control-plane`
// in jwt mode with analytics enabled, one connected gateway shipping its events with the control
// plane's JWT; the query API and `gatehouse analytics` count exactly the requests made, and the
// control plane's GET /metrics shows ingestion and its own counters.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { metricValue, waitFor } from './helpers/analytics.ts';
import { startControlPlane, type TestControlPlane } from './helpers/control-plane.ts';
import { freePort, type RunningProcess, runCli, tempConfigDir } from './helpers/process.ts';
import { type EchoUpstream, startEchoUpstream } from './helpers/upstream.ts';

const requestsMade = 37;

describe('a connected gateway ships analytics to the control plane it is connected to', () => {
  let cp: TestControlPlane;
  let upstream: EchoUpstream;
  let gateway: RunningProcess | null = null;
  let dir: string;
  let gwPort: number;

  before(async () => {
    dir = tempConfigDir('gatehouse-cp-analytics-');
    upstream = await startEchoUpstream();
    cp = await startControlPlane({
      operators: [
        { name: 'root', roles: [{ namespace: '*', role: 'admin' }] },
        { name: 'watcher', roles: [{ namespace: '*', role: 'viewer' }] },
      ],
      spec: `  security: { mode: jwt }
  analytics: { enabled: true, store: { sqlite: { path: events.db } } }`,
    });
    gwPort = await freePort();
    const applied = await cp.call('POST', '/api/v1/apply', {
      as: 'root',
      body: {
        resources: [
          {
            apiVersion: 'gatehouse.dev/v1',
            kind: 'Upstream',
            metadata: { name: 'echo', namespace: 'default' },
            spec: { targets: [{ url: upstream.url }] },
          },
          {
            apiVersion: 'gatehouse.dev/v1',
            kind: 'Gateway',
            metadata: { name: 'edge', namespace: 'default' },
            spec: {
              mode: 'ingress',
              listeners: [{ name: 'public', address: '127.0.0.1', port: gwPort, protocol: 'http' }],
              admin: { port: await freePort(), address: '127.0.0.1' },
              accessLog: { enabled: false },
              shutdown: { drainTimeout: '1s' },
              analytics: {
                http: { url: `${cp.url}/analytics/v1/events` },
                auth: 'control-plane',
                batch: { interval: '100ms' },
              },
            },
          },
          {
            apiVersion: 'gatehouse.dev/v1',
            kind: 'APIRule',
            metadata: { name: 'shop', namespace: 'default' },
            spec: {
              gatewaySelector: { matchLabels: { fleet: 'main' } },
              upstream: 'echo',
              rules: [{ path: '/shop', methods: ['GET'], authenticate: [{ noAuth: {} }] }],
            },
          },
        ],
      },
    });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    const created = await cp.call('POST', '/api/v1/bootstrap-tokens', {
      as: 'root',
      body: { gateway: 'edge', namespace: 'default', labels: { fleet: 'main' } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    gateway = runCli([
      'gateway',
      '--control-plane',
      cp.url,
      '--data-dir',
      join(dir, 'edge'),
      '--token',
      created.body.token as string,
    ]);
    await gateway.waitFor(/"msg":"gateway ready"/, 20_000);
    await waitFor(
      'the gateway to serve /shop',
      async () =>
        (
          await fetch(`http://127.0.0.1:${gwPort}/shop`, { signal: AbortSignal.timeout(5_000) }).catch(
            () => null,
          )
        )?.status,
      (s) => s === 200,
      15_000,
    );
  });

  after(async () => {
    await gateway?.stop();
    await cp?.stop();
    await upstream?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const countedByApi = async () => {
    const answer = await cp.call('GET', '/api/v1/analytics/requests?from=-1h&route=default/shop%230', {
      as: 'watcher',
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return (answer.body.rows as Array<{ requests: number }>).reduce((s, r) => s + r.requests, 0);
  };

  test('N requests through the gateway are N events in the query API, the CLI and /metrics', async () => {
    // The probe requests above were recorded too: count from what is stored now.
    const before = await waitFor('the probe requests to be stored', countedByApi, (n) => n > 0);
    await new Promise((r) => setTimeout(r, 500)); // a batch interval or two for stragglers
    const baseline = await countedByApi();
    assert.ok(baseline >= before);
    const metricsBefore = await (await fetch(`${cp.url}/metrics`)).text();
    const insertedBefore = metricValue(
      metricsBefore,
      'gatehouse_analytics_ingest_events_total',
      'result="inserted"',
    );

    for (let i = 0; i < requestsMade; i++) {
      const res = await fetch(`http://127.0.0.1:${gwPort}/shop?i=${i}`, {
        signal: AbortSignal.timeout(5_000),
      });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    }
    const total = await waitFor('the events to be stored', countedByApi, (n) => n >= baseline + requestsMade);
    await new Promise((r) => setTimeout(r, 500)); // nothing more arrives: exactly N, not at least N
    assert.equal(await countedByApi(), baseline + requestsMade);
    assert.equal(total, baseline + requestsMade);

    const cli = runCli(
      [
        'analytics',
        'requests',
        '--url',
        cp.url,
        '--token-env',
        'GH_Q',
        '--from=-1h',
        '--route',
        'default/shop#0',
        '--json',
      ],
      { GH_Q: cp.tokens.watcher! },
    );
    const exit = await cli.exited;
    assert.equal(exit.code, 0, cli.stderr());
    const viaCli = JSON.parse(cli.stdout()) as { rows: Array<{ requests: number }> };
    assert.equal(
      viaCli.rows.reduce((s, r) => s + r.requests, 0),
      baseline + requestsMade,
    );

    const res = await fetch(`${cp.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const metrics = await res.text();
    assert.equal(
      metricValue(metrics, 'gatehouse_analytics_ingest_events_total', 'result="inserted"') - insertedBefore,
      requestsMade,
    );
    assert.equal(metricValue(metrics, 'gatehouse_analytics_ingest_refused_total'), 0);
    assert.equal(metricValue(metrics, 'gatehouse_control_plane_gateways_registered'), 1);
    assert.equal(metricValue(metrics, 'gatehouse_control_plane_gateways_connected'), 1);
    assert.equal(metricValue(metrics, 'gatehouse_control_plane_gateways_out_of_sync'), 0);
    assert.ok(metricValue(metrics, 'gatehouse_control_plane_snapshots_sent_total') >= 1);
    assert.ok(
      metricValue(metrics, 'gatehouse_control_plane_credentials_issued_total', 'kind="access_token"') >= 1,
    );
    assert.equal(metricValue(metrics, 'gatehouse_control_plane_store_writes_total', 'result="ok"'), 1);
    // Route templates, never ids or raw paths.
    assert.ok(
      metricValue(
        metrics,
        'gatehouse_control_plane_requests_total',
        'route="/api/v1/analytics/requests",method="GET",status_class="2xx"',
      ) >= 3,
    );
    assert.ok(
      metricValue(
        metrics,
        'gatehouse_control_plane_requests_total',
        'route="/analytics/v1/events",method="POST"',
      ) >= 1,
    );
    assert.ok(
      metricValue(
        metrics,
        'gatehouse_control_plane_request_duration_seconds_count',
        'route="/api/v1/apply"',
      ) >= 1,
    );
    assert.doesNotMatch(metrics, /gw_[0-9a-f]{20}|shop\?i=/);
  });

  test('refused credentials are counted by caller and reason', async () => {
    const bad = await cp.call('GET', '/api/v1/analytics/requests', { token: 'not-an-operator-token' });
    assert.equal(bad.status, 401);
    const wrongMethod = await cp.call('GET', '/api/v1/gateways/gw_0123456789abcdef0123', { as: 'root' });
    assert.equal(wrongMethod.status, 405);
    const noGateway = await cp.call('GET', '/v1/gateways/self/config', {});
    assert.equal(noGateway.status, 401);
    const metrics = await (await fetch(`${cp.url}/metrics`)).text();
    assert.ok(
      metricValue(
        metrics,
        'gatehouse_control_plane_auth_failures_total',
        'caller="operator",reason="unauthenticated"',
      ) +
        metricValue(
          metrics,
          'gatehouse_control_plane_auth_failures_total',
          'caller="operator",reason="invalid_token"',
        ) >=
        1,
    );
    assert.ok(
      metricValue(
        metrics,
        'gatehouse_control_plane_auth_failures_total',
        'caller="gateway",reason="no_credential"',
      ) >= 1,
    );
    // A path no route answers for this method is `unmatched`: its id is no label value.
    assert.ok(
      metricValue(metrics, 'gatehouse_control_plane_requests_total', 'route="unmatched",method="GET"') >= 1,
    );
    assert.doesNotMatch(metrics, /gw_0123456789abcdef0123/);
  });
});

describe('spec.metrics.access decides who reads the control plane’s /metrics', () => {
  test('viewer: an operator token is needed; off: not served', async () => {
    const operators = [{ name: 'watcher', roles: [{ namespace: '*' as const, role: 'viewer' as const }] }];
    const guarded = await startControlPlane({ operators, spec: '  metrics: { access: viewer }' });
    try {
      const anonymous = await guarded.call('GET', '/metrics');
      assert.equal(anonymous.status, 401);
      const res = await fetch(`${guarded.url}/metrics`, {
        headers: { authorization: `Bearer ${guarded.tokens.watcher}` },
      });
      assert.equal(res.status, 200);
      const text = await res.text();
      // The refused scrape is counted; no analytics here, so no ingestion metrics either.
      assert.equal(metricValue(text, 'gatehouse_control_plane_auth_failures_total', 'caller="operator"'), 1);
      assert.doesNotMatch(text, /gatehouse_analytics_ingest/);
    } finally {
      await guarded.stop();
    }
    const off = await startControlPlane({ operators, spec: '  metrics: { access: "off" }' });
    try {
      assert.equal((await off.call('GET', '/metrics', { as: 'watcher' })).status, 404);
    } finally {
      await off.stop();
    }
  });
});
