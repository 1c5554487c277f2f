// Real Redis for tests: the shared server on 127.0.0.1:6379 (required in CI), and private
// redis-server processes a test can stop to see an outage.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { freePort } from './process.ts';

export const sharedRedisUrl = 'redis://127.0.0.1:6379';

/**
 * Whether the shared Redis answers. In CI (`CI=true`) its absence is a failure, not a skip: throws
 * "Redis is required in CI: start redis-server". Elsewhere returns a reason to skip with.
 */
export async function sharedRedis(): Promise<{ ok: true } | { ok: false; skip: string }> {
  const client = new Redis(sharedRedisUrl, {
    lazyConnect: true,
    connectTimeout: 2000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.ping();
    return { ok: true };
  } catch (err) {
    const message = `Redis is required in CI: start redis-server (${sharedRedisUrl}: ${(err as Error).message})`;
    if (process.env.CI === 'true') throw new Error(message);
    return { ok: false, skip: `no Redis on ${sharedRedisUrl} (${(err as Error).message})` };
  } finally {
    client.disconnect();
  }
}

/** A key prefix no other test run uses (tests never FLUSHALL: they delete their own keys). */
export function uniquePrefix(what: string): string {
  return `gatehouse-test:${what}:${randomBytes(6).toString('hex')}:`;
}

/** Deletes every key under `prefix` on the shared Redis. */
export async function deleteKeys(prefix: string): Promise<void> {
  const client = new Redis(sharedRedisUrl, { maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await client.del(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}

export interface PrivateRedis {
  readonly port: number;
  readonly url: string;
  /** Kills the server (SIGKILL: an outage, not a shutdown) and waits for it to be gone. */
  stop(): Promise<void>;
}

/** A redis-server of our own (on a free port unless given), without persistence, for outage tests. */
export async function startPrivateRedis(onPort?: number): Promise<PrivateRedis> {
  const port = onPort ?? (await freePort());
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    output += d;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `redis://127.0.0.1:${port}`;
  // Ready when it answers PING (bounded).
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  let ready = false;
  for (let attempt = 0; attempt < 100 && !ready; attempt++) {
    try {
      await client.connect();
      ready = (await client.ping()) === 'PONG';
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  client.disconnect();
  if (!ready) {
    child.kill('SIGKILL');
    throw new Error(`redis-server on port ${port} did not start:\n${output}`);
  }
  return {
    port,
    url,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
