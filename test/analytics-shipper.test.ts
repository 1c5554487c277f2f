// The shipper on its own (src/analytics/shipper.ts) against a real ingestion stand-in on loopback:
// uploads never exceed batch.maxEvents however the event-loop turns split the calls; a full memory
// queue sends events on through the disk spool, and both full drop and count; a restart re-sends; a
// spool write that fails (a full disk) holds nothing back and loses only what was on disk only.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { zstdDecompressSync } from 'node:zlib';
import type { RecordedCall } from '../src/analytics/call.ts';
import { createHttpTransport } from '../src/analytics/http-transport.ts';
import { EventShipper, type ShipperOptions } from '../src/analytics/shipper.ts';

const dirs: string[] = [];
const servers: Server[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  for (const s of servers) s.close();
});
const newDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'gatehouse-shipper-'));
  dirs.push(d);
  return d;
};

/** Ingestion stand-in: decodes each batch, counts every event id; answers 503 while `down`. */
async function ingestion() {
  const state = { down: false, batches: [] as number[], ids: new Map<string, number>() };
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (state.down) return void res.writeHead(503).end();
    const body = JSON.parse(zstdDecompressSync(Buffer.concat(chunks)).toString()) as {
      events: Array<{ id: string }>;
    };
    state.batches.push(body.events.length);
    for (const e of body.events) state.ids.set(e.id, (state.ids.get(e.id) ?? 0) + 1);
    res.writeHead(202).end();
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/analytics/v1/events`;
  return { state, url };
}

function shipper(url: string, overrides: Partial<ShipperOptions>): EventShipper {
  return new EventShipper({
    gateway: 'edge',
    transport: createHttpTransport({ url, timeoutMs: 2000 }),
    credentials: async () => ({ authorization: 'Bearer t' }),
    compression: 'zstd',
    batchMaxEvents: 100,
    batchIntervalMs: 20,
    writeIntervalMs: 0,
    retryInitialMs: 10,
    retryMaxMs: 50,
    queueMaxEvents: 10_000,
    spool: null,
    log: () => {},
    ...overrides,
  });
}

const spoolIn = (dir: string, maxBytes = 1 << 24) => ({
  dir,
  maxBytes,
  segmentBytes: 64 * 1024,
  fsyncIntervalMs: 50,
});

let n = 0;
const call = (): RecordedCall => ({
  time: Date.now(),
  requestId: `req-${++n}`,
  ctx: null,
  method: 'GET',
  client: '127.0.0.1',
  status: 404,
  latencyMs: 0.5,
  upstreamMs: null,
  bytesIn: 0,
  bytesOut: 120,
  error: 'route_not_found',
  traceId: null,
  completed: true,
});

const turn = () => new Promise((r) => setImmediate(r));

/**
 * Records `sizes[i]` calls in turn i (with a spool, as the handler does: each response held). Gives
 * how many held responses were released so far, and how many of those before their event was
 * written to the spool file.
 */
async function recordTurns(s: EventShipper, sizes: number[]): Promise<{ released: number; early: number }> {
  const seen = { released: 0, early: 0 };
  let recorded = 0;
  for (const size of sizes) {
    for (let i = 0; i < size; i++) {
      const n = ++recorded;
      if (s.holdsResponses)
        s.recordThen(call(), {
          releaseEnd() {
            seen.released++;
            if (s.stats.spooled < n && s.stats.dropped === 0) seen.early++;
          },
        });
      else s.record(call());
    }
    await turn();
  }
  return seen;
}

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// Turns smaller than, equal to and many times the batch size, in an order that leaves batches part-filled.
const SIZES = [1, 37, 250, 99, 100, 3, 0, 1000, 61, 449];
const TOTAL = SIZES.reduce((a, b) => a + b, 0);

// Memory only; a spool written on the event loop (the default); one written in the thread pool.
const MODES = [
  { name: 'memory only', spool: false, loopWriteLimitMs: 0 },
  { name: 'spool, writes on the event loop', spool: true, loopWriteLimitMs: 1000 },
  { name: 'spool, writes in the thread pool', spool: true, loopWriteLimitMs: 0 },
] as const;

for (const mode of MODES) {
  test(`no upload exceeds batch.maxEvents and every event is sent once (${mode.name})`, async () => {
    const { state, url } = await ingestion();
    const withSpool = mode.spool;
    const s = shipper(
      url,
      withSpool ? { spool: { ...spoolIn(newDir()), loopWriteLimitMs: mode.loopWriteLimitMs } } : {},
    );
    try {
      const seen = await recordTurns(s, SIZES);
      if (withSpool) {
        await until('every held response end released', () => seen.released === TOTAL);
        assert.equal(seen.early, 0, 'no response released before its event was in the spool file');
        const writes = s.spoolWrites!;
        if (mode.loopWriteLimitMs === 0) assert.equal(writes.eventLoop, 0, 'all in the thread pool');
        else assert.ok(writes.eventLoop > 0, `written on the event loop: ${JSON.stringify(writes)}`);
        assert.ok(writes.eventLoop + writes.threadPool > 0);
      }
      await until('every event delivered', () => s.stats.sent === TOTAL);
      assert.equal(state.ids.size, TOTAL);
      assert.ok(
        [...state.ids.values()].every((c) => c === 1),
        'no event sent twice',
      );
      assert.ok(Math.max(...state.batches) <= 100, `batch sizes ${state.batches.join(',')}`);
      assert.equal(s.stats.dropped, 0);
      assert.equal(s.backlog, 0);
      if (withSpool) assert.equal(s.stats.spoolEvents, 0, 'the spool is acknowledged empty');
    } finally {
      await s.close();
    }
  });
}

test('spool writes on the event loop slower than loopWriteLimit, three in a row, send the next ones to the thread pool', async () => {
  const { state, url } = await ingestion();
  const logs: string[] = [];
  // Every real write takes longer than a nanosecond: each one is "slow".
  const s = shipper(url, {
    spool: { ...spoolIn(newDir()), loopWriteLimitMs: 1e-6 },
    log: (_l, _f, m) => logs.push(m),
  });
  try {
    const seen = await recordTurns(s, SIZES);
    await until('every held response end released', () => seen.released === TOTAL);
    assert.equal(seen.early, 0, 'no response released before its event was in the spool file');
    const writes = s.spoolWrites!;
    assert.equal(writes.slow, 3, JSON.stringify(writes));
    assert.equal(writes.eventLoop, 3, 'three writes on the event loop, then the pool for a minute');
    assert.ok(writes.threadPool > 0, JSON.stringify(writes));
    assert.ok(
      logs.some((m) => m.startsWith('analytics spool: 3 writes in a row on the event loop were slow')),
      logs.join('; '),
    );
    await until('every event delivered', () => s.stats.sent === TOTAL);
    assert.equal(state.ids.size, TOTAL);
    assert.equal(s.stats.dropped, 0);
  } finally {
    await s.close();
  }
});

test('memory queue full while ingestion is down: events go on through the spool, none lost, and a restart re-sends', async () => {
  const { state, url } = await ingestion();
  const dir = newDir();
  state.down = true;
  const first = shipper(url, { spool: spoolIn(dir), queueMaxEvents: 50 });
  await recordTurns(first, [30, 30, 30, 200, 10]);
  await new Promise((r) => setTimeout(r, 100)); // a few failed uploads
  assert.equal(first.stats.dropped, 0);
  assert.equal(first.stats.spoolEvents, 300);
  assert.equal(first.backlog, 300);
  assert.equal(first.stats.queuedEvents <= 50, true, `queued ${first.stats.queuedEvents}`);
  await first.close(50); // ingestion still down: everything stays in the spool

  state.down = false;
  const second = shipper(url, { spool: spoolIn(dir), queueMaxEvents: 50 });
  try {
    await until('the replayed events delivered', () => state.ids.size === 300);
    await until('the spool acknowledged empty', () => second.stats.spoolEvents === 0);
    assert.ok(Math.max(...state.batches) <= 100, `batch sizes ${state.batches.join(',')}`);
    assert.equal(second.stats.dropped, 0);
  } finally {
    await second.close();
  }
});

test('memory queue and spool both full: new events are dropped and counted, never waited on', async () => {
  const { state, url } = await ingestion();
  state.down = true;
  const s = shipper(url, { spool: spoolIn(newDir(), 8 * 1024), queueMaxEvents: 20 });
  try {
    const seen = await recordTurns(s, [20, 40, 40, 40]);
    await until('every response released', () => seen.released === 140);
    assert.ok(s.stats.dropped > 0, 'some dropped');
    assert.equal(s.stats.dropped + s.backlog, 140, 'each event either waits or is counted as dropped');
    state.down = false;
    await until('what was kept delivered', () => s.backlog === 0);
    assert.equal(state.ids.size, 140 - s.stats.dropped);
  } finally {
    await s.close();
  }
});

for (const loopWriteLimitMs of [1000, 0]) {
  test(`a spool write that fails (disk full): responses released, events in memory still sent, those on disk only counted as dropped, the spool goes on (${loopWriteLimitMs ? 'event loop' : 'thread pool'})`, async () => {
    const { state, url } = await ingestion();
    const dir = newDir();
    state.down = true;
    const logs: string[] = [];
    const s = shipper(url, {
      spool: { ...spoolIn(dir), loopWriteLimitMs },
      queueMaxEvents: 50,
      log: (_l, _f, m) => logs.push(m),
    });
    // The spool writes segment 1 now; segment 2 (after 64 KiB) is /dev/full: its writes fail (ENOSPC).
    symlinkSync('/dev/full', join(dir, '0000000002.spool'));
    try {
      const seen = await recordTurns(s, [30, 30, 30, 200, 10]);
      await until('every response released', () => seen.released === 300);
      assert.ok(
        logs.includes('analytics spool write failed: its events are kept in memory only'),
        logs.join('; '),
      );
      await until('the lost ones counted', () => s.stats.dropped > 0);
      assert.equal(s.stats.dropped + s.backlog, 300, 'each event either waits or is counted as dropped');
      assert.ok(s.stats.spooled < 300, `spooled counts written events only: ${s.stats.spooled}`);
      state.down = false;
      await until('what was kept delivered', () => s.backlog === 0);
      assert.equal(state.ids.size, 300 - s.stats.dropped);
      await until('the spool acknowledged empty', () => s.stats.spoolEvents === 0);
    } finally {
      await s.close();
    }
  });
}

/**
 * Occupies every libuv thread-pool thread until `free()`: each opens a FIFO for reading, which blocks
 * until a writer opens it (a disk that does not answer, as far as the spool's pool writes can tell).
 */
function blockThreadPool(dir: string) {
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  const fifos = Array.from({ length: threads }, (_, i) => join(dir, `fifo-${i}`));
  for (const fifo of fifos) execFileSync('mkfifo', [fifo]);
  const readers = fifos.map((fifo) => open(fifo, 'r').then((h) => h.close()));
  return {
    async free() {
      for (const fifo of fifos) closeSync(openSync(fifo, 'w'));
      await Promise.all(readers);
    },
  };
}

test('a spool write that does not return: responses go after spool.holdTimeout, their events kept and spooled later', async () => {
  const sink = await ingestion();
  sink.state.down = true; // nothing acknowledged: the events must stay (memory, then spool)
  const dir = newDir();
  for (const holdTimeoutMs of [0, 150]) {
    const spoolDir = join(dir, `spool-${holdTimeoutMs}`);
    // loopWriteLimitMs 0: every write in the thread pool, where the blocked threads keep it waiting.
    const s = shipper(sink.url, { spool: { ...spoolIn(spoolDir), loopWriteLimitMs: 0, holdTimeoutMs } });
    await turn();
    const pool = blockThreadPool(dir);
    let released = 0;
    try {
      s.recordThen(call(), { releaseEnd: () => released++ });
      await new Promise((r) => setTimeout(r, 600));
      assert.equal(s.stats.spooled, 0, 'the write is stuck behind the blocked pool');
      if (holdTimeoutMs === 0) {
        assert.equal(released, 0, 'without a hold timeout the response waits for its write');
        assert.equal(s.stats.holdTimeouts, 0);
      } else {
        assert.equal(released, 1, 'released by the hold timeout');
        assert.equal(s.stats.holdTimeouts, 1);
      }
    } finally {
      await pool.free();
    }
    for (let i = 0; i < 100 && (s.stats.spooled < 1 || released < 1); i++)
      await new Promise((r) => setTimeout(r, 10));
    assert.equal(s.stats.spooled, 1, 'the event reaches the spool once the write runs');
    assert.equal(released, 1, 'released exactly once');
    assert.equal(s.stats.dropped, 0);
    for (const f of readdirSync(dir)) if (f.startsWith('fifo-')) rmSync(join(dir, f));
    await s.close(0);
  }
});
