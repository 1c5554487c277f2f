import { writeSync } from 'node:fs';
import { pino, type Logger } from 'pino';

export interface AccessEntry {
  requestId: string;
  route: string | null;
  method: string;
  host: string | null;
  path: string | null;
  status: number;
  ms: number;
  upstreamMs: number | null;
  bytesIn: number;
  bytesOut: number;
  client: string | null;
  error: string | null;
  completed: boolean;
}

/** Longest an access-log line waits before it is written, and the batch size that is written at once. */
const flushDelayMs = 20;
const flushBytes = 16_384;

const needsEscape = /["\\\u0000-\u001f\u007f-\uffff]/;

function str(value: string | null): string {
  if (value === null) return 'null';
  return needsEscape.test(value) ? JSON.stringify(value) : `"${value}"`;
}

function num(value: number | null): string {
  return value === null ? 'null' : String(Math.round(value * 100) / 100);
}

/** What each access log still has batched, written synchronously when the process exits. */
const atExit = new Set<() => void>();
// process.exit() (the end of a shutdown) runs no timers: batched lines are written synchronously,
// after what the destination already holds (as pino does for its own lines at exit).
process.prependListener('exit', () => {
  for (const write of atExit) {
    try {
      write();
    } catch {
      // Nothing more can be done about a log write at exit.
    }
  }
});

/**
 * The access log: one JSON line per request, written into the logger's own destination so lines
 * interleave with other logs. Formatted by hand because it runs once per request: through pino's
 * generic serialiser it cost 11–19 µs of CPU per request in bench/ (a fifth of the gateway's
 * budget); this costs about one. Fields are chosen, never copied from headers: no credentials.
 */
export function createAccessLog(logger: Logger, name = 'gatehouse'): (entry: AccessEntry) => void {
  const stream = (logger as unknown as Record<symbol, { write(line: string): void }>)[pino.symbols.streamSym];
  if (!stream) return (entry) => logger.info({ type: 'access', ...entry });
  const prefix = `{"level":30,"name":${JSON.stringify(name)},"type":"access","time":`;
  // Lines go to the destination in batches: at the latest `flushDelayMs` after they were logged, at
  // once past `flushBytes`. A write per event-loop turn cost ~5 µs of main-thread CPU per request
  // (fs.write of a few lines) plus ~4 µs on libuv's pool under load (bench/RESULTS.md).
  let pending = '';
  let timer: NodeJS.Timeout | null = null;
  const flush = () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    if (pending === '') return;
    const lines = pending;
    pending = '';
    stream.write(lines);
  };
  atExit.add(() => {
    if (pending === '') return;
    const destination = stream as { fd?: unknown; flushSync?: () => void };
    destination.flushSync?.();
    if (typeof destination.fd === 'number' && destination.fd >= 0) writeSync(destination.fd, pending);
    pending = '';
  });
  return (e) => {
    pending +=
      `${prefix}${Date.now()},"requestId":${str(e.requestId)},"route":${str(e.route)},"method":${str(e.method)},` +
      `"host":${str(e.host)},"path":${str(e.path)},"status":${e.status},"ms":${num(e.ms)},` +
      `"upstreamMs":${num(e.upstreamMs)},"bytesIn":${e.bytesIn},"bytesOut":${e.bytesOut},` +
      `"client":${str(e.client)},"error":${str(e.error)},"completed":${e.completed}}\n`;
    if (pending.length > flushBytes) flush();
    else if (timer === null) timer = setTimeout(flush, flushDelayMs);
  };
}
