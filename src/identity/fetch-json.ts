import { type Dispatcher, request } from 'undici';
import { withClientSpan } from '../telemetry/tracing.ts';

/** Why a document could not be fetched; the message is safe to log (no body, no credentials). */
export class FetchJsonError extends Error {
  override readonly name = 'FetchJsonError';
}

export interface FetchJsonOptions {
  signal: AbortSignal;
  maxBytes: number;
  dispatcher: Dispatcher;
  /** Name of the client span made when the calling request is traced (default `HTTP <method>`). */
  spanName?: string;
}

/** GETs a JSON object (a key set, a discovery document) — see fetchJsonObject. */
export function getJsonObject(url: string, options: FetchJsonOptions): Promise<Record<string, unknown>> {
  return fetchJsonObject(url, {
    spanName: 'key-set fetch',
    ...options,
    method: 'GET',
    headers: { accept: 'application/json, application/jwk-set+json' },
  });
}

/**
 * One bounded call answered by a JSON object: within `signal`'s deadline, at most `maxBytes` of
 * body, status 200. undici's request rather than fetch: redirects are not followed (a key set or
 * an introspection answer must come from where the config or the issuer's own discovery document
 * says) and the body is streamed, so the cap holds before it is buffered.
 */
export function fetchJsonObject(
  url: string,
  options: FetchJsonOptions & { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string },
): Promise<Record<string, unknown>> {
  return withClientSpan(options.spanName ?? `HTTP ${options.method}`, { 'url.full': url }, () =>
    fetchBoundedJson(url, options),
  );
}

async function fetchBoundedJson(
  url: string,
  options: FetchJsonOptions & { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string },
): Promise<Record<string, unknown>> {
  const { signal, maxBytes } = options;
  let response: Dispatcher.ResponseData;
  try {
    response = await request(url, {
      method: options.method,
      headers: options.headers,
      body: options.body,
      dispatcher: options.dispatcher,
      signal,
    });
  } catch (err) {
    throw new FetchJsonError(signal.aborted ? 'timed out' : `unreachable (${errorCode(err)})`);
  }
  const { statusCode, body } = response;
  // Destroying an undici body without an error makes it emit one (UND_ERR_ABORTED): with no
  // listener, that would be an uncaught exception.
  body.on('error', () => {});
  if (statusCode !== 200) {
    body.destroy();
    throw new FetchJsonError(`answered HTTP ${statusCode}`);
  }
  const tooLarge = () => new FetchJsonError(`response larger than ${maxBytes} bytes`);
  if (Number(response.headers['content-length']) > maxBytes) {
    body.destroy();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) throw tooLarge();
      chunks.push(chunk);
    }
  } catch (err) {
    body.destroy();
    if (err instanceof FetchJsonError) throw err;
    throw new FetchJsonError(signal.aborted ? 'timed out' : `response body failed (${errorCode(err)})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new FetchJsonError('response is not JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new FetchJsonError('response is not a JSON object');
  return parsed as Record<string, unknown>;
}

function errorCode(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  return typeof e.code === 'string' ? e.code : String(e.message ?? 'error');
}

/** `<issuer>/.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §4). */
export function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
}

/** The issuer's discovery document; it must name the same issuer (§4.3), or this throws FetchJsonError. */
export async function discoveryDocument(
  issuer: string,
  options: FetchJsonOptions,
): Promise<Record<string, unknown>> {
  const doc = await getJsonObject(discoveryUrl(issuer), options);
  if (doc.issuer !== issuer) throw new FetchJsonError('document names another issuer');
  return doc;
}
