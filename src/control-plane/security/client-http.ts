import { Agent, request } from 'undici';

/** Why a call from the gateway to the control plane failed: `code` is the problem code when it answered one. */
export class ControlPlaneCallError extends Error {
  readonly status: number | null;
  readonly code: string | null;
  constructor(message: string, status: number | null, code: string | null, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ControlPlaneCallError';
    this.status = status;
    this.code = code;
  }
}

const maxAnswerBytes = 256 * 1024;

export function controlPlaneAgent(tls: { ca?: string; cert?: string; key?: string }): Agent {
  return new Agent({ connections: 2, connect: { ...tls } });
}

/** POST JSON, answer JSON: bounded in time and size; a non-2xx answer throws with its problem code. */
export async function postJson(
  url: string,
  body: unknown,
  options: { dispatcher: Agent; timeoutMs: number; headers?: Record<string, string> },
): Promise<Record<string, unknown>> {
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(url, {
      method: 'POST',
      dispatcher: options.dispatcher,
      headers: { 'content-type': 'application/json', accept: 'application/json', ...options.headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(options.timeoutMs),
    });
  } catch (err) {
    throw new ControlPlaneCallError(`${url}: ${describeNetworkError(err)}`, null, null, { cause: err });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of res.body) {
      total += (chunk as Buffer).length;
      if (total > maxAnswerBytes) {
        res.body.destroy();
        throw new ControlPlaneCallError(
          `${url}: answer larger than ${maxAnswerBytes} bytes`,
          res.statusCode,
          null,
        );
      }
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (err instanceof ControlPlaneCallError) throw err;
    throw new ControlPlaneCallError(`${url}: ${describeNetworkError(err)}`, res.statusCode, null, {
      cause: err,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    json = null;
  }
  const answer =
    typeof json === 'object' && json !== null && !Array.isArray(json)
      ? (json as Record<string, unknown>)
      : null;
  if (res.statusCode < 200 || res.statusCode > 299) {
    const code = typeof answer?.code === 'string' ? answer.code : null;
    const detail = typeof answer?.detail === 'string' ? answer.detail : (answer?.title ?? '');
    throw new ControlPlaneCallError(
      `${url}: ${res.statusCode}${code ? ` ${code}` : ''}${detail ? `: ${String(detail)}` : ''}`,
      res.statusCode,
      code,
    );
  }
  if (!answer) throw new ControlPlaneCallError(`${url}: answer is not a JSON object`, res.statusCode, null);
  return answer;
}

const untrustedCodes = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);

function describeNetworkError(err: unknown): string {
  const e = err as { code?: string; message?: string; name?: string };
  if (e.name === 'TimeoutError' || e.code === 'UND_ERR_ABORTED') return 'no answer in time';
  if (e.code && untrustedCodes.has(e.code))
    return `the control plane's TLS certificate is not trusted (${e.code}): give the gateway the CA that signed it (--ca; the control plane serves its own at /v1/ca.pem)`;
  return e.code ? `${e.code}: ${e.message}` : (e.message ?? String(err));
}
