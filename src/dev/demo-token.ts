import { type Dispatcher, getGlobalDispatcher, request } from 'undici';
import { FetchJsonError, getJsonObject } from '../identity/fetch-json.ts';
import { demoAudience, demoClient } from './demo-client.ts';

/** Why no token could be had; the message is safe to print (no credentials, no token). */
export class DemoTokenError extends Error {
  override readonly name = 'DemoTokenError';
}

export interface DemoToken {
  accessToken: string;
  /** Scopes the provider granted (it drops requested scopes the client may not have). */
  scopes: string[];
}

const maxBytes = 65536;

/**
 * Asks the demo identity provider of `gatehouse dev` for an access token with the demo client's
 * credentials (client_credentials grant, RFC 6749 §4.4), for the demo API as resource indicator
 * (RFC 8707) so that the token is a JWT. The token endpoint comes from the issuer's discovery
 * document, as a gateway would find its keys. Both calls share one deadline.
 */
export async function requestDemoToken(options: {
  issuer: string;
  scopes: string[];
  audience?: string;
  timeoutMs?: number;
}): Promise<DemoToken> {
  const issuer = options.issuer.replace(/\/+$/, '');
  const signal = AbortSignal.timeout(options.timeoutMs ?? 5000);
  const dispatcher = getGlobalDispatcher();
  let discovery: Record<string, unknown>;
  try {
    discovery = await getJsonObject(`${issuer}/.well-known/openid-configuration`, {
      signal,
      maxBytes,
      dispatcher,
    });
  } catch (err) {
    const why = err instanceof FetchJsonError ? err.message : 'failed';
    throw new DemoTokenError(
      `cannot read the discovery document of ${issuer}: ${why}. Is \`gatehouse dev\` running?`,
    );
  }
  const endpoint = discovery.token_endpoint;
  if (typeof endpoint !== 'string' || !/^https?:\/\//.test(endpoint))
    throw new DemoTokenError(`${issuer} names no token_endpoint in its discovery document`);

  const form = new URLSearchParams({
    grant_type: 'client_credentials',
    resource: options.audience ?? demoAudience,
  });
  if (options.scopes.length > 0) form.set('scope', options.scopes.join(' '));
  const answer = await postForm(endpoint, form, signal);
  const accessToken = answer.access_token;
  if (typeof accessToken !== 'string' || accessToken === '') {
    const error = typeof answer.error === 'string' ? answer.error : 'no access_token';
    const description = typeof answer.error_description === 'string' ? `: ${answer.error_description}` : '';
    throw new DemoTokenError(`the identity provider refused: ${error}${description}`);
  }
  const scope = typeof answer.scope === 'string' ? answer.scope : '';
  return { accessToken, scopes: scope.split(' ').filter((s) => s !== '') };
}

/** POSTs the form with the demo client's credentials; the JSON answer, success or OAuth error. */
async function postForm(
  url: string,
  form: URLSearchParams,
  signal: AbortSignal,
): Promise<Record<string, unknown>> {
  const basic = Buffer.from(
    `${encodeURIComponent(demoClient.id)}:${encodeURIComponent(demoClient.secret)}`,
  ).toString('base64');
  let response: Dispatcher.ResponseData;
  try {
    response = await request(url, {
      method: 'POST',
      headers: {
        authorization: `Basic ${basic}`,
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body: form.toString(),
      signal,
    });
  } catch (err) {
    throw new DemoTokenError(
      `cannot reach the token endpoint ${url}: ${signal.aborted ? 'timed out' : (err as Error).message}`,
    );
  }
  const { body } = response;
  // Destroying an undici body without an error makes it emit one: keep it from being uncaught.
  body.on('error', () => {});
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes)
        throw new DemoTokenError(`the token endpoint answered more than ${maxBytes} bytes`);
      chunks.push(chunk);
    }
  } catch (err) {
    body.destroy();
    if (err instanceof DemoTokenError) throw err;
    throw new DemoTokenError(`the token endpoint's answer failed: ${signal.aborted ? 'timed out' : 'reset'}`);
  }
  try {
    const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed))
      return parsed as Record<string, unknown>;
  } catch {
    // answered below
  }
  throw new DemoTokenError('the token endpoint did not answer with a JSON object');
}
