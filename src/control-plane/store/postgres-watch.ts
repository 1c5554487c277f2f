import pg from 'pg';

export interface PgWatchOptions {
  clientConfig: pg.ClientConfig;
  /** The NOTIFY channel every committed write of this store's schema announces its revision on. */
  channel: string;
  /** The newest committed revision (a cheap query through the pool). */
  readRevision: () => Promise<number>;
  publish: (revision: number) => void;
  pollMs: number;
}

export interface PgWatch {
  start(): void;
  stop(): Promise<void>;
}

const firstRetryMs = 250;
const maxRetryMs = 5000;

/**
 * How a store learns of writes made by other control planes: LISTEN on a dedicated connection
 * (prompt), and a slow poll of the revision (a safety net for a notification lost while that
 * connection was down). A lost connection is reopened with backoff and jitter; after each
 * (re)LISTEN the revision is read once, so a write committed while not listening is still reported.
 * Nothing here throws: failures only delay the news.
 */
export function createPgWatch(options: PgWatchOptions): PgWatch {
  let client: pg.Client | null = null;
  let started = false;
  let stopped = false;
  let generation = 0;
  let retryMs = firstRetryMs;
  let retryTimer: NodeJS.Timeout | undefined;
  let pollTimer: NodeJS.Timeout | undefined;
  let polling = false;

  const poll = () => {
    if (polling || stopped) return;
    polling = true;
    options
      .readRevision()
      .then((revision) => {
        if (!stopped) options.publish(revision);
      })
      .catch(() => {})
      .finally(() => {
        polling = false;
      });
  };

  const dropClient = () => {
    const old = client;
    client = null;
    if (old) {
      old.removeAllListeners('notification');
      old.end().catch(() => {});
    }
  };

  const lost = (ofGeneration: number) => {
    if (stopped || ofGeneration !== generation || retryTimer) return;
    generation++;
    dropClient();
    const delay = retryMs / 2 + Math.random() * (retryMs / 2);
    retryMs = Math.min(retryMs * 2, maxRetryMs);
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      void listen();
    }, delay);
    retryTimer.unref();
  };

  const listen = async () => {
    if (stopped) return;
    const mine = ++generation;
    const c = new pg.Client(options.clientConfig);
    client = c;
    // An 'error' without a listener would crash the process.
    c.on('error', () => lost(mine));
    c.on('end', () => lost(mine));
    c.on('notification', (message) => {
      if (message.channel !== options.channel) return;
      const revision = Number(message.payload);
      if (Number.isSafeInteger(revision)) options.publish(revision);
    });
    try {
      await c.connect();
      await c.query(`LISTEN "${options.channel}"`);
      if (mine !== generation) return;
      retryMs = firstRetryMs;
      poll();
    } catch {
      lost(mine);
    }
  };

  return {
    start() {
      if (started || stopped) return;
      started = true;
      void listen();
      pollTimer = setInterval(poll, options.pollMs);
      pollTimer.unref();
    },
    async stop() {
      stopped = true;
      clearTimeout(retryTimer);
      clearInterval(pollTimer);
      const c = client;
      client = null;
      if (c) await c.end().catch(() => {});
    },
  };
}
