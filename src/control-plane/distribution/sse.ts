import type { ServerResponse } from 'node:http';

/**
 * Server-Sent Events framing: plain HTTP/1.1 with a streamed body, which ordinary proxies and load
 * balancers pass through (unlike upgrades). Buffering proxies are told not to buffer
 * (`X-Accel-Buffering: no`), and heartbeats keep idle-timeout middleboxes from cutting the stream.
 */
export function openEventStream(res: ServerResponse): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-accel-buffering': 'no',
    connection: 'keep-alive',
  });
  res.flushHeaders();
  // Disables Nagle: an event is one write and should leave at once.
  res.socket?.setNoDelay(true);
}

/** One event; `data` must not contain a newline (JSON.stringify output never does). */
export function eventFrame(id: string, event: string, data: string): string {
  return `id: ${id}\nevent: ${event}\ndata: ${data}\n\n`;
}

export const heartbeatFrame = ': heartbeat\n\n';
