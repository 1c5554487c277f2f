// The gateway's own signing keys (for the internal tokens of `mutate.token`): generated and kept
// in a directory, or read from files managed elsewhere, rotated with an overlap during which the
// replaced key stays in the published key set.
//
// Loading is synchronous on purpose: the plan compiler, which resolves the keys, is synchronous
// (a reload builds the next plan in one step). Rotation runs on a timer and generates keys
// asynchronously, so an RSA key generation never blocks the request path.

import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

export type SigningAlgorithm = 'ES256' | 'RS256' | 'EdDSA';

export interface SigningKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly privateKey: KeyObject;
  /** Exactly what is published: kty, crv/x/y (EC, OKP) or n/e (RSA), kid, alg, use. */
  readonly publicJwk: Readonly<Record<string, string>>;
  /** When the key was generated (ms since the epoch); 0 for keys read from `files`. */
  readonly createdAt: number;
}

export type KeySource =
  | { readonly kind: 'memory' }
  | { readonly kind: 'dir'; readonly dir: string }
  | {
      readonly kind: 'files';
      readonly files: ReadonlyArray<{ readonly path: string; readonly kid?: string }>;
    };

export type KeyRingLog = (
  level: 'info' | 'warn' | 'error',
  fields: Record<string, unknown>,
  message: string,
) => void;

export interface KeyRingOptions {
  readonly algorithm: SigningAlgorithm;
  readonly source: KeySource;
  readonly rotationIntervalMs: number;
  readonly overlapMs: number;
  readonly now: () => number;
  /** Write generated keys to disk, delete expired ones and rotate on a timer. False for offline compiles. */
  readonly start: boolean;
  readonly log: KeyRingLog;
}

/** A key file or directory that cannot be used; `field` is relative to `spec.tokens`. */
export class SigningKeyError extends TypeError {
  readonly field: ReadonlyArray<string | number>;
  constructor(field: ReadonlyArray<string | number>, message: string) {
    super(message);
    this.field = field;
  }
}

interface Entry {
  readonly key: SigningKey;
  /** When a newer key took over; null for the signing key and for keys from `files`. */
  retiredAt: number | null;
  readonly file: string | null;
}

const keyFileSuffix = '.jwk.json';
const maxTimerMs = 2 ** 31 - 1;
const retryAfterFailureMs = 60_000;
const generateKeyPairAsync = promisify(generateKeyPair);

/** The signing key and the keys still published, with rotation. */
export class SigningKeyRing {
  readonly #options: KeyRingOptions;
  #current: Entry;
  #retired: Entry[] = [];
  #listeners: Array<() => void> = [];
  #timer: NodeJS.Timeout | null = null;
  #nextAttemptAt = 0;
  #closed = false;
  #jwks: { body: string; validUntil: number } | null = null;

  /** Loads (or generates) the keys; throws SigningKeyError when a key cannot be used. */
  constructor(options: KeyRingOptions) {
    this.#options = options;
    const { source } = options;
    if (source.kind === 'files') {
      const entries = source.files.map((f, i) => ({
        key: readKeyFile(f.path, f.kid, options.algorithm, ['keys', 'files', i]),
        retiredAt: null,
        file: null,
      }));
      this.#current = entries[0]!;
      this.#retired = entries.slice(1);
      checkDistinctKids(entries);
      if (options.start) for (const f of source.files) warnIfShared(f.path, options.log);
      return;
    }
    const loaded = source.kind === 'dir' ? this.#readDir(source.dir) : [];
    const now = options.now();
    let current: Entry | undefined;
    for (const e of loaded) if (e.key.alg === options.algorithm) current = e;
    if (!current || now - current.key.createdAt >= options.rotationIntervalMs) {
      current = this.#keep(generateSync(options.algorithm, now));
      loaded.push(current);
    }
    this.#current = current;
    // A replaced key retires when the next newer key was made.
    loaded.forEach((e, i) => {
      if (e !== current) e.retiredAt = loaded[i + 1]?.key.createdAt ?? now;
    });
    this.#retired = loaded.filter((e) => e !== current).reverse();
    this.#prune(now);
    this.#schedule();
  }

  /** The key that signs now. */
  current(): SigningKey {
    return this.#current.key;
  }

  /** The signing key and the replaced keys still in their overlap, newest first. */
  published(): SigningKey[] {
    const now = this.#options.now();
    return [this.#current, ...this.#retired.filter((e) => this.#stillPublished(e, now))].map((e) => e.key);
  }

  /** The JWK Set document (RFC 7517) of the published keys: public members only. */
  jwks(): string {
    const now = this.#options.now();
    if (this.#jwks === null || now >= this.#jwks.validUntil) {
      const keys = this.published().map((k) => k.publicJwk);
      let validUntil = Number.POSITIVE_INFINITY;
      for (const e of this.#retired)
        if (e.retiredAt !== null && this.#stillPublished(e, now))
          validUntil = Math.min(validUntil, e.retiredAt + this.#options.overlapMs);
      this.#jwks = { body: JSON.stringify({ keys }), validUntil };
    }
    return this.#jwks.body;
  }

  /** Longest token lifetime whose tokens stay verifiable across a rotation. */
  maxLifetimeMs(): number {
    return this.#options.source.kind === 'files' ? Number.POSITIVE_INFINITY : this.#options.overlapMs;
  }

  /** Called after every rotation (the token cache is emptied on it). */
  onRotate(listener: () => void): void {
    this.#listeners.push(listener);
  }

  /**
   * Makes a new key the signing key now; the previous one stays published for the overlap.
   * Rotation normally runs on the `rotation.interval` timer; this is what the timer calls.
   */
  async rotate(): Promise<SigningKey> {
    if (this.#options.source.kind === 'files')
      throw new TypeError('keys from files are rotated by changing the files and reloading');
    const { algorithm, now } = this.#options;
    const privateKey = await generateAsync(algorithm);
    if (this.#closed) return this.#current.key;
    const created = now();
    const entry = this.#keep(toSigningKey(privateKey, algorithm, created));
    this.#current.retiredAt = created;
    this.#retired.unshift(this.#current);
    this.#current = entry;
    this.#jwks = null;
    this.#options.log('info', { kid: entry.key.kid, alg: algorithm }, 'signing key rotated');
    for (const listener of this.#listeners) listener();
    this.#schedule();
    return entry.key;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #stillPublished(e: Entry, now: number): boolean {
    return e.retiredAt === null || e.retiredAt + this.#options.overlapMs > now;
  }

  /** Reads `<kid>.jwk.json` files, oldest first. */
  #readDir(dir: string): Entry[] {
    const { start, log } = this.#options;
    let names: string[];
    try {
      if (start) mkdirSync(dir, { recursive: true, mode: 0o700 });
      names = readdirSync(dir).filter((n) => n.endsWith(keyFileSuffix));
    } catch (err) {
      if (!start && (err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new SigningKeyError(
        ['keys', 'dir'],
        `cannot use key directory ${dir}: ${(err as Error).message}`,
      );
    }
    const entries: Entry[] = [];
    for (const name of names) {
      const file = join(dir, name);
      const key = readStoredKey(file);
      if (start) warnIfShared(file, log);
      entries.push({ key, retiredAt: null, file });
    }
    return entries.sort((a, b) => a.key.createdAt - b.key.createdAt);
  }

  /** Writes a generated key to the directory (when there is one and the ring is started). */
  #keep(key: SigningKey): Entry {
    const { source, start } = this.#options;
    if (source.kind !== 'dir' || !start) return { key, retiredAt: null, file: null };
    const file = join(source.dir, `${key.kid}${keyFileSuffix}`);
    const stored = {
      ...(key.privateKey.export({ format: 'jwk' }) as Record<string, unknown>),
      kid: key.kid,
      alg: key.alg,
      use: 'sig',
      created: new Date(key.createdAt).toISOString(),
    };
    // Written beside and renamed, so a crash never leaves a half-written key file.
    const temporary = `${file}.${process.pid}.tmp`;
    try {
      writeFileSync(temporary, `${JSON.stringify(stored)}\n`, { mode: 0o600, flag: 'wx' });
      renameSync(temporary, file);
    } catch (err) {
      throw new SigningKeyError(
        ['keys', 'dir'],
        `cannot write signing key to ${source.dir}: ${(err as Error).message}`,
      );
    }
    return { key, retiredAt: null, file };
  }

  /** Forgets replaced keys past their overlap, deleting their files. */
  #prune(now: number): void {
    const keep: Entry[] = [];
    for (const e of this.#retired) {
      if (this.#stillPublished(e, now)) {
        keep.push(e);
        continue;
      }
      if (e.file && this.#options.start) {
        try {
          unlinkSync(e.file);
        } catch (err) {
          this.#options.log(
            'warn',
            { file: e.file, err: (err as Error).message },
            'cannot delete expired signing key',
          );
        }
      }
    }
    if (keep.length !== this.#retired.length) this.#jwks = null;
    this.#retired = keep;
  }

  /** Next wake-up: the rotation due time or the end of an overlap, whichever comes first. */
  #schedule(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (!this.#options.start || this.#closed || this.#options.source.kind === 'files') return;
    const { now, rotationIntervalMs, overlapMs } = this.#options;
    let next = Math.max(this.#current.key.createdAt + rotationIntervalMs, this.#nextAttemptAt);
    for (const e of this.#retired) if (e.retiredAt !== null) next = Math.min(next, e.retiredAt + overlapMs);
    const delay = Math.min(Math.max(next - now(), 0), maxTimerMs);
    this.#timer = setTimeout(() => void this.#tick(), delay);
    this.#timer.unref();
  }

  async #tick(): Promise<void> {
    this.#timer = null;
    const { now, rotationIntervalMs, log } = this.#options;
    if (now() >= this.#current.key.createdAt + rotationIntervalMs && now() >= this.#nextAttemptAt) {
      try {
        await this.rotate();
      } catch (err) {
        this.#nextAttemptAt = now() + Math.min(rotationIntervalMs, retryAfterFailureMs);
        log(
          'error',
          { err: (err as Error).message },
          'signing key rotation failed: the current key keeps signing',
        );
      }
    }
    if (this.#closed) return;
    this.#prune(now());
    this.#schedule();
  }
}

function generateSync(alg: SigningAlgorithm, createdAt: number): SigningKey {
  const { privateKey } =
    alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : alg === 'RS256'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ed25519');
  return toSigningKey(privateKey, alg, createdAt);
}

async function generateAsync(alg: SigningAlgorithm): Promise<KeyObject> {
  const { privateKey } =
    alg === 'ES256'
      ? await generateKeyPairAsync('ec', { namedCurve: 'P-256' })
      : alg === 'RS256'
        ? await generateKeyPairAsync('rsa', { modulusLength: 2048 })
        : await generateKeyPairAsync('ed25519', {});
  return privateKey;
}

/** Why a key cannot sign with `alg`, or null when it can. */
function unsuitable(key: KeyObject, alg: SigningAlgorithm): string | null {
  const type = key.asymmetricKeyType;
  if (alg === 'ES256')
    return type === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1'
      ? null
      : 'ES256 needs an EC P-256 key';
  if (alg === 'RS256')
    return type === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048
      ? null
      : 'RS256 needs an RSA key of at least 2048 bits';
  return type === 'ed25519' ? null : 'EdDSA needs an Ed25519 key';
}

const publicMembers: Record<string, readonly string[]> = {
  EC: ['crv', 'kty', 'x', 'y'],
  RSA: ['e', 'kty', 'n'],
  OKP: ['crv', 'kty', 'x'],
};

/**
 * RFC 7638 thumbprint: SHA-256 of the required public members in lexicographic order. Written
 * here rather than taken from jose because jose's is async and key loading must be sync.
 */
function thumbprint(jwk: Record<string, unknown>): string {
  const members = publicMembers[jwk.kty as string] ?? [];
  const canonical = `{${members.map((m) => `${JSON.stringify(m)}:${JSON.stringify(jwk[m])}`).join(',')}}`;
  return createHash('sha256').update(canonical).digest('base64url');
}

function toSigningKey(
  privateKey: KeyObject,
  alg: SigningAlgorithm,
  createdAt: number,
  kid?: string,
): SigningKey {
  const full = createPublicKey(privateKey).export({ format: 'jwk' }) as Record<string, unknown>;
  const id = kid ?? thumbprint(full);
  const publicJwk: Record<string, string> = {};
  for (const m of publicMembers[full.kty as string] ?? []) publicJwk[m] = String(full[m]);
  Object.assign(publicJwk, { kid: id, alg, use: 'sig' });
  return Object.freeze({ kid: id, alg, privateKey, publicJwk: Object.freeze(publicJwk), createdAt });
}

/** A key file written by this module: a private JWK with `created`. */
function readStoredKey(file: string): SigningKey {
  const field = ['keys', 'dir'];
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SigningKeyError(field, `cannot read signing key ${file}: ${(err as Error).message}`);
  }
  let stored: Record<string, unknown>;
  try {
    stored = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // JSON.parse quotes the text in its message: never let key material reach a log.
    throw new SigningKeyError(field, `${file} is not JSON`);
  }
  const { created, kid: _kid, alg, use: _use, ...jwk } = stored;
  const createdAt = typeof created === 'string' ? Date.parse(created) : Number.NaN;
  if (Number.isNaN(createdAt) || (alg !== 'ES256' && alg !== 'RS256' && alg !== 'EdDSA'))
    throw new SigningKeyError(field, `${file} is not a signing key written by the gateway (created, alg)`);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: jwk as never, format: 'jwk' });
  } catch {
    throw new SigningKeyError(field, `${file} holds no usable private key`);
  }
  const problem = unsuitable(privateKey, alg);
  if (problem) throw new SigningKeyError(field, `${file}: ${problem}`);
  // The kid is recomputed from the key, never taken from the file.
  return toSigningKey(privateKey, alg, createdAt);
}

/** A key from `files`: PEM (PKCS#8, SEC1, PKCS#1) or a JSON private JWK. */
function readKeyFile(
  path: string,
  kid: string | undefined,
  alg: SigningAlgorithm,
  field: Array<string | number>,
): SigningKey {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SigningKeyError([...field, 'private'], `cannot read ${path}: ${(err as Error).message}`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = text.trimStart().startsWith('{')
      ? createPrivateKey({ key: JSON.parse(text) as never, format: 'jwk' })
      : createPrivateKey(text);
  } catch {
    // The library's message can quote key material; say only what is wrong.
    throw new SigningKeyError(
      [...field, 'private'],
      `${path} holds no usable private key (PEM or JSON JWK; encrypted keys are not supported)`,
    );
  }
  const problem = unsuitable(privateKey, alg);
  if (problem) throw new SigningKeyError([...field, 'private'], `${path}: ${problem}`);
  return toSigningKey(privateKey, alg, 0, kid);
}

function checkDistinctKids(entries: readonly Entry[]): void {
  const seen = new Set<string>();
  entries.forEach((e, i) => {
    if (seen.has(e.key.kid))
      throw new SigningKeyError(['keys', 'files', i], `kid ${e.key.kid} is used by two keys`);
    seen.add(e.key.kid);
  });
}

function warnIfShared(file: string, log: KeyRingLog): void {
  try {
    if ((statSync(file).mode & 0o077) !== 0)
      log('warn', { file }, 'signing key file is readable by group or others: chmod 600 it');
  } catch {
    // Unreadable files fail when read; nothing to add here.
  }
}
