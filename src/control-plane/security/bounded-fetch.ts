import { Agent, fetch } from 'undici';

/** A fetch for jose's `customFetch` whose body is read up to `maxBytes` (a huge JWKS is refused). */
export type BoundedFetch = (
  url: string,
  init: { headers: Headers; signal: AbortSignal },
) => Promise<Response>;

export class ResponseTooLargeError extends Error {
  constructor(url: string, maxBytes: number) {
    super(`${url}: response larger than ${maxBytes} bytes`);
    this.name = 'ResponseTooLargeError';
  }
}

/**
 * GET with a body bound and, when `ca` is given, TLS verified against that CA instead of the
 * system's (a control plane whose certificate its own CA signed). Redirects are not followed.
 */
export function boundedFetch(options: { maxBytes: number; ca?: string }): {
  fetch: BoundedFetch;
  close(): Promise<void>;
} {
  const dispatcher = new Agent({
    connections: 4,
    ...(options.ca === undefined ? {} : { connect: { ca: options.ca } }),
  });
  return {
    async fetch(url, init) {
      const res = await fetch(url, {
        method: 'GET',
        headers: Object.fromEntries(init.headers.entries()),
        redirect: 'manual',
        signal: init.signal,
        dispatcher,
      });
      const chunks: Uint8Array[] = [];
      let total = 0;
      if (res.body) {
        for await (const chunk of res.body) {
          total += chunk.byteLength;
          if (total > options.maxBytes) {
            await res.body.cancel().catch(() => {});
            throw new ResponseTooLargeError(url, options.maxBytes);
          }
          chunks.push(chunk);
        }
      }
      return new Response(Buffer.concat(chunks), {
        status: res.status,
        headers: { 'content-type': res.headers.get('content-type') ?? 'application/json' },
      });
    },
    close: () => dispatcher.close(),
  };
}
