// NATS JetStream as the transport between a gateway and ingestion, against the real NATS server
// (127.0.0.1:4222, GATEHOUSE_TEST_NATS_URL): N requests → N events stored; a batch published with a
// forged link JWT is terminated, never stored.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { Pool } from 'undici';
import { startIngest, storedEvents, type IngestProcess, waitFor } from './helpers/analytics.ts';
import { newTestKey } from './helpers/jwks.ts';
import {
  freePort,
  type RunningProcess,
  startGateway,
  tempConfigDir,
  writeConfig,
} from './helpers/process.ts';
import { type EchoUpstream, startEchoUpstream } from './helpers/upstream.ts';
import { SignJWT } from 'jose';

const natsUrl = process.env.GATEHOUSE_TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

async function natsAvailable(): Promise<{ ok: true } | { ok: false; skip: string }> {
  try {
    const nc = await connect({ servers: natsUrl, timeout: 2000, maxReconnectAttempts: 0 });
    await (await jetstreamManager(nc)).getAccountInfo();
    await nc.close();
    return { ok: true };
  } catch (err) {
    const reason = `no NATS JetStream at ${natsUrl}: ${(err as Error).message}`;
    if (process.env.CI === 'true') throw new Error(`NATS is required in CI (${reason})`);
    return { ok: false, skip: reason };
  }
}

const nats = await natsAvailable();

describe('analytics over NATS JetStream', { skip: nats.ok ? false : nats.skip }, () => {
  const suffix = randomBytes(4).toString('hex');
  const stream = `GH_TEST_ANALYTICS_${suffix}`;
  const subject = `gatehouse.test.${suffix}.events`;
  let dir: string;
  let upstream: EchoUpstream;
  let ingest: IngestProcess;
  let gateway: RunningProcess;
  let port: number;
  let nc: NatsConnection;

  before(async () => {
    dir = tempConfigDir('gatehouse-analytics-nats-');
    upstream = await startEchoUpstream();
    const adminPort = await freePort();
    port = await freePort();
    ingest = await startIngest(dir, {
      adminPort,
      extraSpec: `nats: { servers: ["${natsUrl}"], subject: "${subject}", stream: ${stream}, durable: ingest-${suffix} }\n`,
    });
    const config = writeConfig(
      dir,
      'gateway.yaml',
      `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, address: 127.0.0.1, port: ${port} }]
  admin: { port: ${adminPort} }
  accessLog: { enabled: false }
  shutdown: { drainTimeout: 1s }
  tokens: { keys: { dir: keys } }
  analytics:
    nats: { servers: ["${natsUrl}"], subject: "${subject}" }
    batch: { maxEvents: 100, interval: 100ms }
    retry: { initialDelay: 50ms, maxDelay: 400ms }
    spool: { dir: spool }
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: app }
spec:
  targets: [{ url: "${upstream.url}" }]
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: shop }
spec:
  gateway: edge
  upstream: app
  rules:
    - { path: /ok, methods: [GET], authenticate: [{ noAuth: {} }] }
`,
    );
    gateway = await startGateway([config], ['--no-watch']);
    nc = await connect({ servers: natsUrl });
  });

  after(async () => {
    await gateway?.stop();
    await ingest?.proc.stop();
    await upstream?.close();
    if (nc) {
      await (await jetstreamManager(nc)).streams.delete(stream).catch(() => false);
      await nc.close();
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test('N requests → exactly N events stored through JetStream', async () => {
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 4 });
    const ids: string[] = [];
    for (let i = 0; i < 250; i++) {
      const answer = await pool.request({ method: 'GET', path: '/ok' });
      await answer.body.dump();
      assert.equal(answer.statusCode, 200);
      ids.push(answer.headers['x-request-id'] as string);
    }
    await pool.close();
    const wanted = new Set(ids);
    const rows = await waitFor(
      '250 events via NATS',
      () => storedEvents(ingest.dataDir).filter((r) => wanted.has(r.request_id)),
      (r) => r.length >= 250,
    );
    assert.equal(rows.length, 250);
    assert.equal(new Set(rows.map((r) => r.id)).size, 250);
  });

  test('a batch published with a forged link JWT is refused (terminated, not stored)', async () => {
    const key = await newTestKey('ES256');
    const now = Math.floor(Date.now() / 1000);
    const forged = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: key.kid })
      .setIssuer('gatehouse://edge')
      .setSubject('edge')
      .setAudience('gatehouse:analytics')
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .sign(key.privateKey);
    const h = natsHeaders();
    h.set('authorization', `Bearer ${forged}`);
    h.set('content-encoding', 'gzip');
    const event = {
      v: 1,
      id: '01890000-0000-7000-8000-000000000001',
      time: Date.now(),
      requestId: 'forged-over-nats',
      gateway: 'edge',
      api: null,
      route: null,
      rule: null,
      consumer: null,
      subject: null,
      client: '127.0.0.1',
      method: 'GET',
      host: null,
      pathTemplate: null,
      pathParams: [],
      status: 200,
      latencyMs: 1,
      upstreamMs: null,
      gatewayMs: 1,
      bytesIn: 0,
      bytesOut: 0,
      authMethod: null,
      authResult: 'none',
      rateLimit: 'none',
      error: null,
      traceId: null,
      completed: true,
    };
    await jetstream(nc).publish(
      subject,
      gzipSync(JSON.stringify({ v: 1, gateway: 'edge', events: [event] })),
      { headers: h },
    );
    await ingest.proc.waitFor(/analytics nats message refused: terminated/, 15_000);
    assert.ok(!storedEvents(ingest.dataDir).some((r) => r.request_id === 'forged-over-nats'));
  });
});
