import { Agent, request } from 'undici';
import { audiences, type SubsystemCredentials } from '../../control-plane/security/types.ts';
import { EventStreamParser, type ServerSentEvent } from './event-stream-parser.ts';

export interface ControlPlaneClientOptions {
  /** Base URL of the control plane, e.g. https://cp.example.com:8443 */
  baseUrl: string;
  credentials: SubsystemCredentials;
  connectTimeoutMs: number;
  /** A stream silent this long (no event, no heartbeat) is taken as dead. */
  inactivityTimeoutMs: number;
  maxEventBytes: number;
  /** Time allowed for a status report, headers and body. */
  requestTimeoutMs: number;
}

export class StreamRefusedError extends Error {
  readonly status: number;
  constructor(status: number, detail: string) {
    super(`config stream refused: HTTP ${status}${detail ? ` ${detail}` : ''}`);
    this.name = 'StreamRefusedError';
    this.status = status;
  }
}

const maxProblemBytes = 4096;

/**
 * The gateway's calls to the control plane, with the credentials' TLS material and headers on
 * each. The TLS material is read per connection, so a renewed client certificate is used from the
 * next connection on.
 */
export class ControlPlaneClient {
  readonly #options: ControlPlaneClientOptions;
  #agent: { key: string; agent: Agent } | null = null;

  constructor(options: ControlPlaneClientOptions) {
    this.#options = options;
  }

  #dispatcher(): Agent {
    const tls = this.#options.credentials.tls();
    const key = `${tls.ca ?? ''}\0${tls.cert ?? ''}\0${tls.key ?? ''}`;
    if (this.#agent?.key === key) return this.#agent.agent;
    void this.#agent?.agent.close().catch(() => {});
    const agent = new Agent({
      connect: { ca: tls.ca, cert: tls.cert, key: tls.key, timeout: this.#options.connectTimeoutMs },
      // One stream plus the occasional status report: few connections, kept alive.
      connections: 4,
    });
    this.#agent = { key, agent };
    return agent;
  }

  async #headers(): Promise<Record<string, string>> {
    return this.#options.credentials.headers(audiences.controlPlane);
  }

  /**
   * Reads the config stream until it ends, fails, goes silent, or `signal` aborts. `onOpen` runs
   * once the control plane accepted the stream; `onEvent` gets each event (awaited: a slow apply
   * holds the reading, and TCP pushes back).
   */
  async stream(options: {
    knownVersion: number | null;
    signal: AbortSignal;
    onOpen: () => void;
    onEvent: (event: ServerSentEvent) => Promise<void>;
  }): Promise<void> {
    const url = new URL('/v1/gateways/self/config/stream', this.#options.baseUrl);
    const headers: Record<string, string> = { accept: 'text/event-stream', ...(await this.#headers()) };
    if (options.knownVersion !== null) headers['last-event-id'] = String(options.knownVersion);
    const response = await request(url, {
      method: 'GET',
      headers,
      dispatcher: this.#dispatcher(),
      signal: options.signal,
      headersTimeout: this.#options.connectTimeoutMs + this.#options.requestTimeoutMs,
      // undici's body timeout is the longest gap between body chunks: exactly the inactivity bound.
      bodyTimeout: this.#options.inactivityTimeoutMs,
    });
    if (response.statusCode !== 200) {
      const detail = await readBounded(response.body, maxProblemBytes).catch(() => '');
      throw new StreamRefusedError(response.statusCode, problemDetail(detail));
    }
    options.onOpen();
    const parser = new EventStreamParser(this.#options.maxEventBytes);
    try {
      for await (const chunk of response.body) {
        for (const event of parser.push(chunk as Buffer)) await options.onEvent(event);
      }
    } finally {
      response.body.destroy();
    }
  }

  /** POSTs a status report; throws on a transport error or an answer other than 2xx. */
  async postStatus(report: unknown): Promise<void> {
    const url = new URL('/v1/gateways/self/status', this.#options.baseUrl);
    const response = await request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await this.#headers()) },
      body: JSON.stringify(report),
      dispatcher: this.#dispatcher(),
      headersTimeout: this.#options.requestTimeoutMs,
      bodyTimeout: this.#options.requestTimeoutMs,
      signal: AbortSignal.timeout(this.#options.requestTimeoutMs),
    });
    const text = await readBounded(response.body, maxProblemBytes).catch(() => '');
    if (response.statusCode < 200 || response.statusCode >= 300)
      throw new Error(`status report refused: HTTP ${response.statusCode} ${problemDetail(text)}`);
  }

  async close(): Promise<void> {
    const agent = this.#agent?.agent;
    this.#agent = null;
    await agent?.destroy().catch(() => {});
  }
}

async function readBounded(
  body: AsyncIterable<unknown> & { destroy(): void },
  limit: number,
): Promise<string> {
  let text = '';
  for await (const chunk of body) {
    text += (chunk as Buffer).toString('utf8');
    if (text.length >= limit) {
      body.destroy();
      return text.slice(0, limit);
    }
  }
  return text;
}

function problemDetail(text: string): string {
  try {
    const problem = JSON.parse(text) as { code?: unknown; detail?: unknown };
    return [problem.code, problem.detail].filter((v) => typeof v === 'string').join(': ');
  } catch {
    return text.slice(0, 200);
  }
}
