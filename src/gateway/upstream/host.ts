/**
 * Sets the Host header in an undici header list ([name, value, …]) built by upstreamRequestHeaders,
 * for a target other than the first one (whose host the list carries). Only the gateway's own `host`
 * entry can be there: the client's copies are stripped.
 */
export function setHostHeader(headers: string[], host: string): void {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === 'host') {
      headers[i + 1] = host;
      return;
    }
  }
}
