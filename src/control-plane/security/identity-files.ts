import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { GatewayIdentity, SubsystemSecurityMode } from './types.ts';

/**
 * What a connected gateway keeps in `<dataDir>/identity/`, so it starts with no network:
 * identity.json (who it is and where the control plane is), key.pem (0600, its private key),
 * cert.pem (mtls: its client certificate), ca.pem (the control plane CA), server-ca.pem (the CA
 * it verifies the control plane's TLS with, when one was given: otherwise the system CAs).
 * identity.json is written last: its presence means a complete registration.
 */
export interface StoredIdentity {
  identity: GatewayIdentity;
  mode: SubsystemSecurityMode;
  /** Where this gateway reaches the control plane. */
  controlPlaneUrl: string;
  /** The `aud` of client assertions: the token endpoint as the control plane names it. */
  tokenEndpoint: string;
  issuer: string;
  jwksUri: string;
  registeredAt: string;
}

export interface IdentityFiles {
  stored: StoredIdentity;
  keyPem: string;
  certPem: string | null;
  caPem: string;
  serverCaPem: string | null;
}

export function identityDir(dataDir: string): string {
  return join(dataDir, 'identity');
}

const names = {
  identity: 'identity.json',
  key: 'key.pem',
  cert: 'cert.pem',
  ca: 'ca.pem',
  serverCa: 'server-ca.pem',
} as const;

/** Written beside and renamed, so a crash never leaves a half-written file. */
async function writeAtomic(path: string, text: string, mode: number): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, text, { mode });
  await rename(temporary, path);
}

export async function writeIdentityFiles(dataDir: string, files: IdentityFiles): Promise<void> {
  const dir = identityDir(dataDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await rm(join(dir, names.identity), { force: true });
  await writeAtomic(join(dir, names.key), files.keyPem, 0o600);
  if (files.certPem !== null) await writeAtomic(join(dir, names.cert), files.certPem, 0o644);
  else await rm(join(dir, names.cert), { force: true });
  await writeAtomic(join(dir, names.ca), files.caPem, 0o644);
  if (files.serverCaPem !== null) await writeAtomic(join(dir, names.serverCa), files.serverCaPem, 0o644);
  else await rm(join(dir, names.serverCa), { force: true });
  await writeAtomic(join(dir, names.identity), `${JSON.stringify(files.stored, null, 2)}\n`, 0o644);
}

/**
 * A renewed key and certificate. Both are written as `.new` first, then renamed key before cert;
 * a crash between the two renames leaves `cert.pem.new` matching `key.pem`, which the next load
 * finishes.
 */
export async function writeRenewedCertificate(
  dataDir: string,
  keyPem: string,
  certPem: string,
): Promise<void> {
  const dir = identityDir(dataDir);
  await writeFile(join(dir, `${names.key}.new`), keyPem, { mode: 0o600 });
  await writeFile(join(dir, `${names.cert}.new`), certPem, { mode: 0o644 });
  await rename(join(dir, `${names.key}.new`), join(dir, names.key));
  await rename(join(dir, `${names.cert}.new`), join(dir, names.cert));
}

export class IdentityFileError extends Error {}

/** The stored identity, or null when the gateway never registered here. */
export async function readIdentityFiles(dataDir: string): Promise<IdentityFiles | null> {
  const dir = identityDir(dataDir);
  const read = async (name: string): Promise<string | null> => {
    try {
      return await readFile(join(dir, name), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new IdentityFileError(`cannot read ${join(dir, name)}: ${(err as Error).message}`);
    }
  };
  const identityText = await read(names.identity);
  if (identityText === null) return null;
  let stored: StoredIdentity;
  try {
    stored = JSON.parse(identityText) as StoredIdentity;
  } catch {
    throw new IdentityFileError(`${join(dir, names.identity)} is not JSON`);
  }
  if (
    typeof stored?.identity?.id !== 'string' ||
    (stored.mode !== 'mtls' && stored.mode !== 'jwt') ||
    typeof stored.controlPlaneUrl !== 'string' ||
    typeof stored.tokenEndpoint !== 'string'
  )
    throw new IdentityFileError(
      `${join(dir, names.identity)} is not a gateway identity written by gatehouse`,
    );
  const keyPem = await read(names.key);
  const caPem = await read(names.ca);
  if (keyPem === null || caPem === null)
    throw new IdentityFileError(
      `${dir} is incomplete (key.pem, ca.pem): register again with a new bootstrap token`,
    );
  let certPem = await read(names.cert);
  if (stored.mode === 'mtls') {
    const pending = await read(`${names.cert}.new`);
    if (pending !== null && matches(pending, keyPem)) {
      await rename(join(dir, `${names.cert}.new`), join(dir, names.cert));
      certPem = pending;
    }
    if (certPem === null || !matches(certPem, keyPem))
      throw new IdentityFileError(`${dir}: cert.pem is missing or does not match key.pem: register again`);
  }
  return {
    stored,
    keyPem,
    certPem: stored.mode === 'mtls' ? certPem : null,
    caPem,
    serverCaPem: await read(names.serverCa),
  };
}

function matches(certPem: string, keyPem: string): boolean {
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}
