// The shipper's spool and event formatting on their own: frames, replay, acknowledgement and
// rotation, a torn last record, the UUIDv7 ids, and the fast serialiser against the schema.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createCallWriter, type RecordedCall, toEvent } from '../src/analytics/call.ts';
import { createEventIdGenerator, createEventIdWriter } from '../src/analytics/event-id.ts';
import { eventJson, eventProblem } from '../src/analytics/event.ts';
import { Spool } from '../src/analytics/spool.ts';
import type { RequestContext } from '../src/gateway/context.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const newDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'gatehouse-spool-'));
  dirs.push(d);
  return d;
};
const logs: string[] = [];
const open = (dir: string, segmentBytes = 1 << 20) =>
  new Spool({ dir, maxBytes: 1 << 22, segmentBytes, fsyncIntervalMs: 50, log: (_l, _f, m) => logs.push(m) });
const events = (n: number, tag: string) =>
  Buffer.from(Array.from({ length: n }, (_, i) => JSON.stringify({ tag, i })).join(','));

test('batches not acknowledged are replayed after a restart; acknowledged ones are not', async () => {
  const dir = newDir();
  const a = open(dir);
  a.appendBatch(1, 2, events(2, 'one'));
  const two = a.appendBatch(2, 3, events(3, 'two'))!;
  a.appendBatch(3, 1, events(1, 'three'));
  a.ack([1, 3]);
  assert.equal(a.read(two).toString(), events(3, 'two').toString());
  await a.close();
  const b = open(dir);
  assert.deepEqual(
    b.replayed.map((r) => [r.seq, r.count]),
    [[2, 3]],
  );
  assert.equal(b.read(b.replayed[0]!.location).toString(), events(3, 'two').toString());
  assert.equal(b.maxSeq, 3);
  assert.equal(b.tornFrames, 0);
  await b.close();
});

test('a torn last record is skipped, not fatal, and the segment is cut back to the good frames', async () => {
  const dir = newDir();
  const a = open(dir);
  a.appendBatch(1, 1, events(1, 'kept'));
  a.appendBatch(2, 1, events(1, 'torn'));
  await a.close();
  const [file] = readdirSync(dir);
  const path = join(dir, file!);
  truncateSync(path, statSync(path).size - 5); // the crash cut the last write short
  const b = open(dir);
  assert.equal(b.tornFrames, 1);
  assert.deepEqual(
    b.replayed.map((r) => r.seq),
    [1],
  );
  b.appendBatch(3, 1, events(1, 'after'));
  await b.close();
  // Garbage after the good frames (a write that never finished) is skipped the same way.
  const newest = readdirSync(dir).sort().at(-1)!;
  appendFileSync(join(dir, newest), Buffer.from('GHS1\x01\x00\x00\x00garbage'));
  const c = open(dir);
  assert.deepEqual(
    c.replayed.map((r) => r.seq),
    [1, 3],
  );
  assert.equal(c.tornFrames, 1);
  await c.close();
});

test('segments rotate, and fully acknowledged ones are deleted oldest first', async () => {
  const dir = newDir();
  const s = open(dir, 4096);
  for (let seq = 1; seq <= 40; seq++) s.appendBatch(seq, 10, events(10, `b${seq}`));
  await s.settled();
  const segments = readdirSync(dir).length;
  assert.ok(segments >= 3, `${segments} segments`);
  s.ack(Array.from({ length: 39 }, (_, i) => i + 1));
  await s.settled();
  assert.ok(readdirSync(dir).length < segments);
  await s.close();
  const again = open(dir, 4096);
  assert.deepEqual(
    again.replayed.map((r) => r.seq),
    [40],
  );
  await again.close();
});

test('appendBatch refuses past maxBytes (the caller keeps or drops, never waits)', async () => {
  const dir = newDir();
  const s = new Spool({ dir, maxBytes: 65536, segmentBytes: 1 << 20, fsyncIntervalMs: 50, log: () => {} });
  let refused = 0;
  for (let seq = 1; seq <= 100; seq++)
    if (s.appendBatch(seq, 10, events(10, 'x'.repeat(50))) === null) refused++;
  assert.ok(refused > 0);
  assert.ok(s.bytes <= 65536);
  await s.close();
});

test('event ids are UUIDv7, unique and ordered by time', () => {
  const next = createEventIdGenerator();
  const ids = Array.from({ length: 10000 }, (_, i) => next(1_700_000_000_000 + Math.floor(i / 100)));
  assert.equal(new Set(ids).size, ids.length);
  for (const id of ids)
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.ok(ids[0]! < ids.at(-1)!);
});

test('the fast serialiser writes the same valid v1 event as the schema’s serialiser', () => {
  const ctx = {
    rule: {
      id: 'shop/orders#2',
      template: '/orders/{id}/lines/{line}',
      pipeline: [
        { stage: 'authenticate', policies: [] },
        { stage: 'limit', policies: [] },
      ],
    },
    params: { id: '42', line: '7' },
    host: 'api.example.com',
    identity: {
      method: 'apiKey',
      subject: 'partner-a',
      consumer: { name: 'partner-a', groups: [], metadata: {} },
    },
  } as unknown as RequestContext;
  const call: RecordedCall = {
    time: 1_700_000_000_123.7,
    requestId: 'req-"quoted"',
    ctx,
    method: 'GET',
    client: '10.0.0.1',
    status: 200,
    latencyMs: 3.14172,
    upstreamMs: 2.5,
    bytesIn: 10,
    bytesOut: 20,
    error: null,
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    completed: true,
  };
  // The writer's ids and these strings come from generators with the same random part and counter.
  const random = (n: number) => Buffer.alloc(n, 0xa5);
  const nextId = createEventIdGenerator(random);
  const writer = createCallWriter('edge', createEventIdWriter(random));
  // Written where the batch has bytes already, into a buffer too small for it: grown, the bytes kept.
  let id = '';
  const written = (c: RecordedCall) => {
    const into = { buf: Buffer.alloc(8, 0x7e) };
    const end = writer.write(c, into, 7);
    id = nextId(c.time);
    assert.ok(end <= into.buf.length);
    assert.equal(into.buf.subarray(0, 7).toString('latin1'), '~~~~~~~');
    return into.buf.toString('latin1', 7, end);
  };
  const fast = written(call);
  assert.equal(fast, eventJson(toEvent(call, 'edge', id)));
  const parsed = JSON.parse(fast);
  assert.equal(eventProblem(parsed), null);
  assert.deepEqual(
    [parsed.api, parsed.rule, parsed.pathParams, parsed.rateLimit, parsed.consumer],
    ['shop/orders', 2, ['id', 'line'], 'allowed', 'partner-a'],
  );
  const refused = { ...call, ctx: null, status: 404, upstreamMs: null, error: 'route_not_found' };
  assert.equal(eventProblem(JSON.parse(written(refused))), null);
  const unicode = {
    ...ctx,
    host: 'bücher.example\u0001',
    identity: { method: 'jwt', subject: '☃ "snow"\n', consumer: { name: 'zoë', groups: [], metadata: {} } },
  } as unknown as RequestContext;
  // Numbers at their edges, every auth and rate-limit outcome, escapes, an unanswered call.
  const variants: RecordedCall[] = [
    refused,
    { ...call, ctx: unicode, client: '::1', latencyMs: 0, upstreamMs: 0 },
    { ...call, latencyMs: 10.5, upstreamMs: 9.05, bytesIn: 9_007_199_254_740_991, bytesOut: 0 },
    { ...call, latencyMs: 1234.0004, upstreamMs: 1234.0006, status: 0, completed: false },
    { ...call, latencyMs: 0.001, upstreamMs: 0.0004, time: 0 },
    { ...call, ctx: { ...ctx, identity: null }, error: 'invalid_token', status: 401, upstreamMs: null },
    { ...call, ctx: { ...ctx, identity: null }, error: 'identity_provider_unavailable', status: 503 },
    { ...call, error: 'rate_limited', status: 429 },
    { ...call, error: 'rate_limit_unavailable', status: 503, traceId: null },
    { ...call, ctx: { ...ctx, identity: null }, error: 'upstream_timeout', status: 504 },
    // The common call (no identity, no error) and methods with and without a cached fragment.
    { ...call, ctx: { ...ctx, identity: null }, method: 'PROPFIND' },
    { ...call, ctx: { ...ctx, identity: null }, method: 'M-SEARCH', traceId: null },
  ];
  for (const v of variants) {
    const json = written(v);
    assert.equal(json, eventJson(toEvent(v, 'edge', id)));
    assert.equal(eventProblem(JSON.parse(json)), null, json);
  }
});
