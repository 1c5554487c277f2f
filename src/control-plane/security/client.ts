import { createPrivateKey, generateKeyPair, type KeyObject, randomBytes, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';
import type { Agent } from 'undici';
import { ControlPlaneCallError, controlPlaneAgent, postJson } from './client-http.ts';
import {
  type IdentityFiles,
  readIdentityFiles,
  writeIdentityFiles,
  writeRenewedCertificate,
} from './identity-files.ts';
import {
  audiences,
  type GatewayIdentity,
  type SubsystemCredentials,
  type SubsystemSecurityMode,
} from './types.ts';

export { ControlPlaneCallError } from './client-http.ts';

type Log = (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string) => void;

export interface ClientOptions {
  /** Time allowed for one call to the control plane (default 10000). */
  fetchTimeoutMs?: number;
  /** Renew the mtls certificate on a timer (default true). */
  renew?: boolean;
  log?: Log;
  now?: () => number;
}

export interface RegisterOptions extends ClientOptions {
  controlPlaneUrl: string;
  bootstrapToken: string;
  dataDir: string;
  /** PEM file of the CA that signed the control plane's TLS certificate (default: the system CAs). */
  caFile?: string;
}

/** The credentials of a connected gateway (SubsystemCredentials plus what its clients need). */
export interface GatewayCredentials extends SubsystemCredentials {
  readonly mode: SubsystemSecurityMode;
  /** Where the gateway reaches the control plane (as given at registration, no trailing slash). */
  readonly controlPlaneUrl: string;
  readonly issuer: string;
  readonly jwksUri: string;
  /** mtls: when the current certificate expires (ms since the epoch); null in jwt mode. */
  certificateNotAfter(): number | null;
  /** mtls: a new key and certificate now (the timer calls this after 2/3 of the lifetime). */
  renew(): Promise<void>;
  /** Called after a renewal: rebuild connections with the new `tls()`. */
  onChange(listener: () => void): () => void;
  close(): void;
}

const generateKeyPairAsync = promisify(generateKeyPair);
const assertionLifetimeSec = 60;
const maxTimerMs = 2 ** 31 - 1;

/**
 * Registers this gateway with a bootstrap token: generates an EC P-256 key pair, sends the public
 * key, and stores what comes back in `<dataDir>/identity/` (see identity-files.ts). Registering
 * again replaces the stored identity (a new id); use `loadOrRegisterGateway` to reuse one.
 */
export async function registerGateway(options: RegisterOptions): Promise<GatewayCredentials> {
  const base = checkedUrl(options.controlPlaneUrl);
  if (typeof options.bootstrapToken !== 'string' || options.bootstrapToken.length === 0)
    throw new TypeError('a bootstrap token is required');
  let serverCaPem: string | null = null;
  if (options.caFile !== undefined) {
    try {
      serverCaPem = await readFile(options.caFile, 'utf8');
    } catch (err) {
      throw new TypeError(
        `cannot read the CA file ${options.caFile}: ${(err as NodeJS.ErrnoException).code}`,
      );
    }
  }
  const { privateKey, publicKey } = await generateKeyPairAsync('ec', { namedCurve: 'P-256' });
  const dispatcher = controlPlaneAgent(serverCaPem === null ? {} : { ca: serverCaPem });
  let answer: Record<string, unknown>;
  try {
    answer = await postJson(
      `${base}/v1/register`,
      { token: options.bootstrapToken, publicKey: publicKey.export({ type: 'spki', format: 'pem' }) },
      { dispatcher, timeoutMs: options.fetchTimeoutMs ?? 10_000 },
    );
  } finally {
    await dispatcher.close();
  }
  const files = filesFromAnswer(
    answer,
    base,
    privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    serverCaPem,
    options.now ?? Date.now,
  );
  await writeIdentityFiles(options.dataDir, files);
  return new Credentials(options.dataDir, files, options);
}

/** The stored credentials, with no network call (a gateway starts while the control plane is down); null when not registered. */
export async function loadGatewayCredentials(
  dataDir: string,
  options: ClientOptions = {},
): Promise<GatewayCredentials | null> {
  const files = await readIdentityFiles(dataDir);
  return files === null ? null : new Credentials(dataDir, files, options);
}

/** The stored identity when there is one, else a registration with the bootstrap token. */
export async function loadOrRegisterGateway(options: RegisterOptions): Promise<GatewayCredentials> {
  return (await loadGatewayCredentials(options.dataDir, options)) ?? registerGateway(options);
}

function checkedUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`control plane URL is not a URL: ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')
    throw new TypeError('control plane URL must be http(s)');
  return url.replace(/\/+$/, '');
}

function filesFromAnswer(
  answer: Record<string, unknown>,
  controlPlaneUrl: string,
  keyPem: string,
  serverCaPem: string | null,
  now: () => number,
): IdentityFiles {
  const identity = answer.identity as GatewayIdentity | undefined;
  const mode = answer.mode;
  const str = (v: unknown) => typeof v === 'string' && v.length > 0;
  if (
    typeof identity?.id !== 'string' ||
    typeof identity.name !== 'string' ||
    typeof identity.namespace !== 'string' ||
    (mode !== 'mtls' && mode !== 'jwt') ||
    !str(answer.caCertificate) ||
    !str(answer.tokenEndpoint) ||
    !str(answer.issuer) ||
    !str(answer.jwksUri) ||
    (mode === 'mtls' && !str(answer.certificate))
  )
    throw new ControlPlaneCallError(
      `${controlPlaneUrl}/v1/register: the answer is not a registration`,
      201,
      null,
    );
  return {
    stored: {
      identity: {
        id: identity.id,
        name: identity.name,
        namespace: identity.namespace,
        labels: { ...identity.labels },
      },
      mode,
      controlPlaneUrl,
      tokenEndpoint: answer.tokenEndpoint as string,
      issuer: answer.issuer as string,
      jwksUri: answer.jwksUri as string,
      registeredAt: new Date(now()).toISOString(),
    },
    keyPem,
    certPem: mode === 'mtls' ? (answer.certificate as string) : null,
    caPem: answer.caCertificate as string,
    serverCaPem,
  };
}

class Credentials implements GatewayCredentials {
  readonly identity: GatewayIdentity;
  readonly mode: SubsystemSecurityMode;
  readonly controlPlaneUrl: string;
  readonly issuer: string;
  readonly jwksUri: string;
  readonly #dataDir: string;
  readonly #files: IdentityFiles;
  readonly #timeoutMs: number;
  readonly #log: Log;
  readonly #now: () => number;
  #keyPem: string;
  #privateKey: KeyObject;
  #certPem: string | null;
  #dispatcher: Agent | null = null;
  #token: { value: string; refreshAt: number; expiresAt: number } | null = null;
  #pendingToken: Promise<string> | null = null;
  #pendingRenewal: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #listeners: Array<() => void> = [];
  #closed = false;

  constructor(dataDir: string, files: IdentityFiles, options: ClientOptions) {
    this.#dataDir = dataDir;
    this.#files = files;
    this.identity = files.stored.identity;
    this.mode = files.stored.mode;
    this.controlPlaneUrl = files.stored.controlPlaneUrl;
    this.issuer = files.stored.issuer;
    this.jwksUri = files.stored.jwksUri;
    this.#timeoutMs = options.fetchTimeoutMs ?? 10_000;
    this.#log = options.log ?? (() => {});
    this.#now = options.now ?? Date.now;
    this.#keyPem = files.keyPem;
    this.#privateKey = createPrivateKey(files.keyPem);
    this.#certPem = files.certPem;
    if (this.mode === 'mtls' && options.renew !== false) this.#scheduleRenewal();
  }

  tls(): { ca?: string; cert?: string; key?: string } {
    return {
      ...(this.#files.serverCaPem === null ? {} : { ca: this.#files.serverCaPem }),
      ...(this.#certPem === null ? {} : { cert: this.#certPem, key: this.#keyPem }),
    };
  }

  async headers(audience: string): Promise<Record<string, string>> {
    if (audience !== audiences.controlPlane && audience !== audiences.analytics)
      throw new TypeError(`unknown subsystem audience ${JSON.stringify(audience)}`);
    if (this.mode === 'mtls') return {};
    return { authorization: `Bearer ${await this.#accessToken()}` };
  }

  certificateNotAfter(): number | null {
    return this.#certPem === null ? null : Date.parse(new X509Certificate(this.#certPem).validTo);
  }

  onChange(listener: () => void): () => void {
    this.#listeners.push(listener);
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    };
  }

  renew(): Promise<void> {
    if (this.mode !== 'mtls')
      return Promise.reject(new TypeError('certificates are renewed in mtls mode only'));
    this.#pendingRenewal ??= this.#renewOnce().finally(() => {
      this.#pendingRenewal = null;
    });
    return this.#pendingRenewal;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    void this.#dispatcher?.close();
    this.#dispatcher = null;
  }

  #agent(): Agent {
    this.#dispatcher ??= controlPlaneAgent(this.tls());
    return this.#dispatcher;
  }

  /** A cached token, refreshed after 2/3 of its lifetime; one fetch at a time; the old token while still valid if a refresh fails. */
  async #accessToken(): Promise<string> {
    const now = this.#now();
    const held = this.#token;
    if (held && now < held.refreshAt) return held.value;
    this.#pendingToken ??= this.#fetchToken().finally(() => {
      this.#pendingToken = null;
    });
    try {
      return await this.#pendingToken;
    } catch (err) {
      if (held && this.#now() < held.expiresAt - 5000) {
        this.#log(
          'warn',
          { err: (err as Error).message },
          'cannot refresh the subsystem token: the current one is still valid',
        );
        return held.value;
      }
      throw err;
    }
  }

  async #fetchToken(): Promise<string> {
    const nowSec = Math.floor(this.#now() / 1000);
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
      .setIssuer(this.identity.id)
      .setSubject(this.identity.id)
      .setAudience(this.#files.stored.tokenEndpoint)
      .setIssuedAt(nowSec)
      .setExpirationTime(nowSec + assertionLifetimeSec)
      .setJti(randomBytes(16).toString('base64url'))
      .sign(this.#privateKey);
    const started = this.#now();
    const answer = await postJson(
      `${this.controlPlaneUrl}/v1/token`,
      {
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
      },
      { dispatcher: this.#agent(), timeoutMs: this.#timeoutMs },
    );
    const value = answer.access_token;
    const expiresIn = answer.expires_in;
    if (typeof value !== 'string' || typeof expiresIn !== 'number' || !(expiresIn > 0))
      throw new ControlPlaneCallError(
        `${this.controlPlaneUrl}/v1/token: the answer is not a token`,
        200,
        null,
      );
    const lifetimeMs = expiresIn * 1000;
    this.#token = { value, refreshAt: started + (lifetimeMs * 2) / 3, expiresAt: started + lifetimeMs };
    return value;
  }

  async #renewOnce(): Promise<void> {
    const { privateKey, publicKey } = await generateKeyPairAsync('ec', { namedCurve: 'P-256' });
    const answer = await postJson(
      `${this.controlPlaneUrl}/v1/renew`,
      { publicKey: publicKey.export({ type: 'spki', format: 'pem' }) },
      { dispatcher: this.#agent(), timeoutMs: this.#timeoutMs },
    );
    const certPem = answer.certificate;
    if (typeof certPem !== 'string' || !new X509Certificate(certPem).checkPrivateKey(privateKey))
      throw new ControlPlaneCallError(
        `${this.controlPlaneUrl}/v1/renew: the answer is not a certificate for the new key`,
        200,
        null,
      );
    const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    await writeRenewedCertificate(this.#dataDir, keyPem, certPem);
    this.#keyPem = keyPem;
    this.#privateKey = privateKey;
    this.#certPem = certPem;
    const old = this.#dispatcher;
    this.#dispatcher = null;
    void old?.close();
    this.#log(
      'info',
      { gateway: this.identity.id, notAfter: new Date(this.certificateNotAfter()!).toISOString() },
      'gateway certificate renewed',
    );
    for (const listener of this.#listeners) listener();
  }

  /** Renewal after 2/3 of the certificate's lifetime; retries sooner after a failure. */
  #scheduleRenewal(retryInMs?: number): void {
    if (this.#closed || this.#certPem === null) return;
    const cert = new X509Certificate(this.#certPem);
    const from = Date.parse(cert.validFrom);
    const to = Date.parse(cert.validTo);
    const now = this.#now();
    if (now >= to) {
      this.#log(
        'error',
        { gateway: this.identity.id },
        'gateway certificate expired: register again with a new bootstrap token',
      );
      return;
    }
    const due = from + ((to - from) * 2) / 3;
    const delay = retryInMs ?? Math.max(due - now, 0);
    this.#timer = setTimeout(
      () => {
        this.#timer = null;
        this.renew().then(
          () => this.#scheduleRenewal(),
          (err: Error) => {
            const left = to - this.#now();
            this.#log(
              'warn',
              { err: err.message, expiresInMs: left },
              'gateway certificate renewal failed: retrying',
            );
            this.#scheduleRenewal(Math.min(Math.max(left / 4, 1000), 60_000));
          },
        );
      },
      Math.min(delay, maxTimerMs),
    );
    this.#timer.unref();
  }
}
