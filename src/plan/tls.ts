import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { ListenerSpec } from '../config/schemas/gateway.ts';
import { certificateIdentity } from '../identity/certificate.ts';
import type { CompiledListener } from './types.ts';

export interface TlsProblem {
  path: Array<string | number>;
  message: string;
}

function readFile(path: string, field: Array<string | number>, problems: TlsProblem[]): Buffer | null {
  try {
    return readFileSync(path);
  } catch (err) {
    problems.push({
      path: field,
      message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    });
    return null;
  }
}

/**
 * Builds the secure contexts of an https listener once per plan: one per certificate, indexed by
 * the DNS names in its SAN so SNI picks the right one; the first certificate is the default.
 * `resolvePath` makes file names relative to the config file.
 */
export function compileListenerTls(
  spec: ListenerSpec,
  listenerPath: Array<string | number>,
  resolvePath: (p: string) => string,
  problems: TlsProblem[],
  /** False: check the structure only, read no file, build no context (null). */
  readFiles = true,
): CompiledListener['tls'] {
  if (spec.protocol !== 'https') {
    if (spec.tls)
      problems.push({ path: [...listenerPath, 'tls'], message: 'tls is only allowed with protocol https' });
    return null;
  }
  if (!spec.tls) {
    problems.push({ path: [...listenerPath, 'tls'], message: 'required for protocol https' });
    return null;
  }
  const clientAuth = spec.tls.clientAuth ?? { mode: 'none' as const };
  let ca: Buffer | null = null;
  if (clientAuth.mode !== 'none') {
    if (!clientAuth.caCerts) {
      problems.push({
        path: [...listenerPath, 'tls', 'clientAuth', 'caCerts'],
        message: `required when mode is ${clientAuth.mode}`,
      });
    } else if (readFiles) {
      ca = readFile(
        resolvePath(clientAuth.caCerts),
        [...listenerPath, 'tls', 'clientAuth', 'caCerts'],
        problems,
      );
    }
  }
  if (!readFiles) return null;
  const byName = new Map<string, SecureContext>();
  const byWildcard = new Map<string, SecureContext>();
  let defaultContext: SecureContext | null = null;
  let defaultOptions: SecureContextOptions | null = null;
  spec.tls.certificates.forEach((entry, index) => {
    const field = [...listenerPath, 'tls', 'certificates', index];
    const cert = readFile(resolvePath(entry.cert), [...field, 'cert'], problems);
    const key = readFile(resolvePath(entry.key), [...field, 'key'], problems);
    if (!cert || !key) return;
    let context: SecureContext;
    let names: string[];
    const options: SecureContextOptions = {
      cert,
      key,
      ...(ca ? { ca } : {}),
      minVersion: spec.tls!.minVersion,
    };
    try {
      context = createSecureContext(options);
      names = dnsNames(new X509Certificate(cert));
    } catch (err) {
      problems.push({ path: field, message: `invalid certificate or key: ${(err as Error).message}` });
      return;
    }
    defaultContext ??= context;
    defaultOptions ??= options;
    for (const name of names) {
      const target = name.startsWith('*.') ? byWildcard : byName;
      const keyName = name.startsWith('*.') ? name.slice(2) : name;
      if (!target.has(keyName)) target.set(keyName, context);
    }
  });
  if (!defaultContext || !defaultOptions) return null;
  return { defaultContext, defaultOptions, byName, byWildcard };
}

function dnsNames(cert: X509Certificate): string[] {
  const identity = certificateIdentity(cert);
  const names = identity.dnsNames.map((n) => n.toLowerCase());
  if (names.length === 0 && identity.commonName) names.push(identity.commonName.toLowerCase());
  return names;
}

/** SNI lookup: exact name, then the wildcard one label up, then the default. */
export function contextForServerName(
  tls: NonNullable<CompiledListener['tls']>,
  serverName: string,
): SecureContext {
  const name = serverName.toLowerCase();
  const exact = tls.byName.get(name);
  if (exact) return exact;
  const dot = name.indexOf('.');
  if (dot > 0) {
    const wildcard = tls.byWildcard.get(name.slice(dot + 1));
    if (wildcard) return wildcard;
  }
  return tls.defaultContext;
}
