// Test certificates made with the openssl CLI (OpenSSL 3.0+), written into a temp directory.
//
// Every key is EC P-256 and every certificate is produced by a single openssl invocation
// (`req -x509`, which generates the key and signs in one go); the only exception is an
// already-expired leaf, which needs an explicit past validity window and therefore goes
// through `openssl req` (key + CSR) and `openssl ca -startdate/-enddate` (OpenSSL 3.0 has no
// `-not_before/-not_after` options on `x509`/`req`; those arrived in 3.4).
//
// We always pass our own `-config`, so the machine's openssl.cnf (whose default
// `x509_extensions = v3_ca` would mark leaves as CAs) is never consulted.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Pem {
  cert: string;
  key: string;
  certPath: string;
  keyPath: string;
}

export interface IssueOptions {
  /** Subject common name; also used (sanitised) for the file names. */
  cn: string;
  /** Subject organisation; placed before CN so the RFC 4514 form reads `CN=...,O=...`. */
  o?: string;
  dns?: string[];
  ips?: string[];
  /** URI SANs, e.g. SPIFFE ids like `spiffe://corp.test/ns/default/sa/orders`. */
  uris?: string[];
  /** rfc822Name (email) SANs. */
  emails?: string[];
  /** extendedKeyUsage clientAuth. */
  client?: boolean;
  /** extendedKeyUsage serverAuth. Defaults to true when neither `client` nor `server` is set. */
  server?: boolean;
  /** Validity in days (default 365). With `notBefore: 'expired'`, the length of the past window. */
  days?: number;
  /** `'expired'`: the validity window lies entirely in the past (ended one day ago). */
  notBefore?: 'expired';
}

export interface TestCA extends Pem {
  name: string;
  issue(opts: IssueOptions): Pem;
}

/** A fresh directory under os.tmpdir(). The caller removes it (e.g. `rmSync(dir, { recursive: true, force: true })`). */
export function tmpDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

const P256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-noenc'];
const DAY_MS = 86_400_000;

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    const detail = e.stderr?.toString().trim() || e.message;
    throw new Error(`openssl ${args[0]} failed: ${detail}`);
  }
}

/** Random positive 127-bit serial, as accepted by `-set_serial`. */
function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x40; // positive, and no leading zero byte to strip
  return '0x' + b.toString('hex');
}

/** Escape a value for `-subj /K=v/...`: backslash escapes `/`, `+` (RDN separators) and `\`. */
function subjValue(v: string): string {
  return v.replace(/[\\/+]/g, (c) => '\\' + c);
}

function subj(cn: string, o?: string): string {
  return (o === undefined ? '' : `/O=${subjValue(o)}`) + `/CN=${subjValue(cn)}`;
}

/**
 * Escape a value for an openssl config file: `#` starts a comment, `$` expands variables,
 * quotes are stripped and `\` escapes, so all of them are backslash-escaped.
 */
function confValue(v: string): string {
  if (/[\r\n]/.test(v)) throw new Error(`value not representable in an openssl config: ${JSON.stringify(v)}`);
  return v.replace(/[\\#$"']/g, (c) => '\\' + c).replace(/^ | $/g, '\\ ');
}

function sanitize(s: string): string {
  return (
    s
      .replace(/[^A-Za-z0-9._-]+/g, '_')
      .replace(/^[._]+/, '')
      .slice(0, 64) || 'cert'
  );
}

/** `<dir>/<base>.crt` / `.key`, with a numeric suffix if that base is already taken in `dir`. */
function freshBase(dir: string, base: string): string {
  let name = base;
  for (let i = 2; existsSync(join(dir, name + '.crt')) || existsSync(join(dir, name + '.key')); i++) {
    name = `${base}-${i}`;
  }
  return join(dir, name);
}

/** UTCTime (YYMMDDHHMMSSZ) as accepted by `openssl ca -startdate/-enddate`. */
function utcTime(d: Date): string {
  return d.toISOString().replace(/^\d\d(\d\d)-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d).*$/, '$1$2$3$4$5$6Z');
}

function leafConfig(opts: IssueOptions): string {
  const eku: string[] = [];
  const server = opts.server ?? !opts.client;
  if (server) eku.push('serverAuth');
  if (opts.client) eku.push('clientAuth');
  const san: string[] = [];
  const add = (kind: string, values: string[] = []) => {
    values.forEach((v, i) => {
      san.push(`${kind}.${i + 1} = ${confValue(v)}`);
    });
  };
  add('DNS', opts.dns);
  add('IP', opts.ips);
  add('URI', opts.uris);
  add('email', opts.emails);
  return [
    '[req]',
    'distinguished_name = dn',
    'prompt = no',
    'utf8 = yes',
    '[dn]',
    '[leaf]',
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature',
    ...(eku.length > 0 ? [`extendedKeyUsage = ${eku.join(', ')}`] : []),
    ...(san.length > 0 ? ['subjectAltName = @san'] : []),
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid',
    '[san]',
    ...san,
    '',
  ].join('\n');
}

function caDbConfig(dbDir: string, certPath: string, keyPath: string): string {
  const d = confValue(dbDir);
  return [
    '[ca]',
    'default_ca = ca_default',
    '[ca_default]',
    `database = ${d}/index.txt`,
    `new_certs_dir = ${d}`,
    `serial = ${d}/serial`,
    `certificate = ${confValue(certPath)}`,
    `private_key = ${confValue(keyPath)}`,
    'default_md = sha256',
    'policy = policy_any',
    'unique_subject = no',
    'email_in_dn = no',
    'copy_extensions = none',
    '[policy_any]',
    'commonName = optional',
    '',
  ].join('\n');
}

function readPem(base: string): Pem {
  const certPath = base + '.crt';
  const keyPath = base + '.key';
  return { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8'), certPath, keyPath };
}

/** A self-signed EC P-256 CA (basicConstraints CA:true, keyUsage keyCertSign) that can issue leaves. */
export function makeCA(dir: string, name: string): TestCA {
  const base = freshBase(dir, sanitize(name) + '-ca');
  const cfgPath = base + '.cnf';
  writeFileSync(
    cfgPath,
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      'utf8 = yes',
      '[dn]',
      '[ca_ext]',
      'basicConstraints = critical, CA:TRUE',
      'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid:always',
      '',
    ].join('\n'),
  );
  // biome-ignore format: argv reads best grouped by option
  openssl([
    'req', '-x509', '-utf8', '-config', cfgPath, '-extensions', 'ca_ext',
    ...P256, '-keyout', base + '.key', '-out', base + '.crt',
    '-subj', subj(name, 'Gatehouse Test'), '-days', '3650', '-set_serial', serial(),
  ]);
  const ca = readPem(base);
  let dbDir: string | undefined;

  const issue = (opts: IssueOptions): Pem => {
    const leaf = freshBase(dir, sanitize(opts.cn));
    const cfg = leaf + '.cnf';
    const days = opts.days ?? 365;
    if (opts.notBefore !== 'expired') {
      writeFileSync(cfg, leafConfig(opts));
      // biome-ignore format: argv reads best grouped by option
      openssl([
        'req', '-x509', '-utf8', '-config', cfg, '-extensions', 'leaf',
        '-CA', ca.certPath, '-CAkey', ca.keyPath,
        ...P256, '-keyout', leaf + '.key', '-out', leaf + '.crt',
        '-subj', subj(opts.cn, opts.o), '-days', String(days), '-set_serial', serial(),
      ]);
      return readPem(leaf);
    }
    // Already expired: notAfter one day ago, notBefore `days` before that.
    if (dbDir === undefined) {
      dbDir = base + '.db';
      mkdirSync(dbDir);
      writeFileSync(join(dbDir, 'index.txt'), '');
    }
    writeFileSync(cfg, leafConfig(opts) + caDbConfig(dbDir, ca.certPath, ca.keyPath));
    const csr = leaf + '.csr';
    // biome-ignore format: argv reads best grouped by option
    openssl([
      'req', '-new', '-utf8', '-config', cfg, ...P256, '-keyout', leaf + '.key', '-out', csr,
      '-subj', subj(opts.cn, opts.o),
    ]);
    const end = Date.now() - DAY_MS;
    // biome-ignore format: argv reads best grouped by option
    openssl([
      'ca', '-batch', '-utf8', '-config', cfg, '-extensions', 'leaf', '-preserveDN', '-notext',
      '-rand_serial', '-startdate', utcTime(new Date(end - days * DAY_MS)), '-enddate', utcTime(new Date(end)),
      '-in', csr, '-out', leaf + '.crt',
    ]);
    return readPem(leaf);
  };

  return { ...ca, name, issue };
}
