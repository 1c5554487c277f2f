import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { createSecureContext } from 'node:tls';
import { toMillis } from '../config/duration.ts';
import type { UpstreamSpec } from '../config/schemas/upstream.ts';
import type { CompiledTarget, CompiledUpstream, HashOn, RetryReason, UpstreamTlsOptions } from './types.ts';

type Report = (path: Array<string | number>, message: string) => void;

/**
 * Compiles one Upstream resource: targets, balancing, health, retries and TLS, with the TLS files
 * read now (a reload reads them again). Problems are reported at their field; the result is still
 * returned so rules that name the upstream do not report it missing too.
 */
export function compileUpstream(
  id: string,
  spec: UpstreamSpec,
  resolvePath: (p: string) => string,
  report: Report,
  /** False: the TLS files named are not read (the control plane validates configs of other hosts). */
  readFiles = true,
): CompiledUpstream {
  const urls = spec.targets.map((t) => new URL(t.url));
  const first = urls[0]!;
  const basePath = pathOf(first);
  const seen = new Set<string>();
  urls.forEach((url, index) => {
    if (pathOf(url) !== basePath)
      report(['spec', 'targets', index, 'url'], `every target must have the same path (${basePath || '/'})`);
    const origin = url.origin;
    if (seen.has(origin)) report(['spec', 'targets', index, 'url'], `${origin} is listed twice`);
    seen.add(origin);
  });

  const hasHttps = urls.some((u) => u.protocol === 'https:');
  const tlsFiles: string[] = [];
  const tls = spec.tls && readFiles ? compileTls(spec.tls, resolvePath, report, tlsFiles) : null;
  if (spec.tls && !hasHttps) report(['spec', 'tls'], 'tls needs at least one https:// target');

  const options = {
    connections: spec.connections,
    connectTimeoutMs: toMillis(spec.timeouts.connect),
    responseTimeoutMs: toMillis(spec.timeouts.response),
    idleTimeoutMs: toMillis(spec.timeouts.idle),
  };
  const healthCheck = spec.healthCheck
    ? Object.freeze({
        path: spec.healthCheck.path,
        intervalMs: positive(spec.healthCheck.interval, ['spec', 'healthCheck', 'interval'], report),
        timeoutMs: positive(spec.healthCheck.timeout, ['spec', 'healthCheck', 'timeout'], report),
        healthyThreshold: spec.healthCheck.healthyThreshold,
        unhealthyThreshold: spec.healthCheck.unhealthyThreshold,
        expectedStatuses: new Set(spec.healthCheck.expectedStatuses),
      })
    : null;
  const outlier = spec.outlierDetection;
  const outlierDetection = outlier
    ? Object.freeze({
        consecutiveFailures: outlier.consecutiveFailures,
        baseEjectionMs: positive(
          outlier.baseEjectionTime,
          ['spec', 'outlierDetection', 'baseEjectionTime'],
          report,
        ),
        maxEjectionMs: toMillis(outlier.maxEjectionTime),
        maxEjectionPercent: outlier.maxEjectionPercent,
      })
    : null;
  if (outlierDetection && outlierDetection.maxEjectionMs < outlierDetection.baseEjectionMs)
    report(['spec', 'outlierDetection', 'maxEjectionTime'], 'must not be shorter than baseEjectionTime');
  const breaker = spec.circuitBreaker;
  const circuitBreaker = breaker
    ? Object.freeze({
        failureRatio: breaker.failureRatio,
        minRequests: breaker.minRequests,
        windowMs: positive(breaker.window, ['spec', 'circuitBreaker', 'window'], report),
        openForMs: positive(breaker.openFor, ['spec', 'circuitBreaker', 'openFor'], report),
        halfOpenRequests: breaker.halfOpenRequests,
      })
    : null;
  const retries = spec.retries
    ? Object.freeze({
        attempts: spec.retries.attempts,
        on: new Set(spec.retries.on.map((r) => String(r) as RetryReason)),
        perTryTimeoutMs:
          spec.retries.perTryTimeout === undefined
            ? null
            : positive(spec.retries.perTryTimeout, ['spec', 'retries', 'perTryTimeout'], report),
        retryNonIdempotent: spec.retries.retryNonIdempotent,
        budget: Object.freeze({ ...spec.retries.budget }),
      })
    : null;
  const loadBalancer = Object.freeze({
    algorithm: spec.loadBalancer.algorithm,
    hashOn: compileHashOn(spec.loadBalancer.algorithm, spec.loadBalancer.hashOn, report),
  });

  // Live state survives a reload when nothing it depends on changed, including the TLS files' bytes.
  const fileDigest = digest(tlsFiles.join('\n'));
  const targetSettings = digest(
    JSON.stringify([options, spec.tls ?? null, spec.healthCheck ?? null, outlier ?? null, breaker ?? null]),
  );
  const targets: CompiledTarget[] = spec.targets.map((t, index) => {
    const url = urls[index]!;
    const hostname = url.hostname.replace(/^\[|\]$/g, '');
    return Object.freeze({
      url: t.url,
      origin: url.origin,
      hostHeader: url.host,
      servername:
        url.protocol !== 'https:'
          ? undefined
          : (spec.tls?.serverName ?? (isIP(hostname) ? undefined : hostname)),
      weight: t.weight,
      key: `${id}|${url.origin}|${targetSettings}|${fileDigest}`,
    });
  });
  return Object.freeze({
    id,
    origin: first.origin,
    basePath,
    hostHeader: first.host,
    preserveHost: spec.preserveHost,
    ...options,
    targets: Object.freeze(targets),
    loadBalancer,
    healthCheck,
    outlierDetection,
    circuitBreaker,
    retries,
    tls,
    runtimeKey: `${id}|${digest(JSON.stringify(spec))}|${fileDigest}`,
  });
}

function pathOf(url: URL): string {
  return url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

function positive(duration: string, path: Array<string | number>, report: Report): number {
  const ms = toMillis(duration);
  if (ms <= 0) report(path, 'must be longer than 0');
  return ms;
}

function compileHashOn(
  algorithm: UpstreamSpec['loadBalancer']['algorithm'],
  hashOn: string | undefined,
  report: Report,
): HashOn | null {
  const path = ['spec', 'loadBalancer', 'hashOn'];
  if (algorithm !== 'consistent-hash') {
    if (hashOn !== undefined) report(path, 'only allowed with algorithm consistent-hash');
    return null;
  }
  if (hashOn === undefined) {
    report(path, 'required with algorithm consistent-hash');
    return null;
  }
  if (hashOn === 'client') return Object.freeze({ kind: 'client' });
  if (hashOn === 'subject') return Object.freeze({ kind: 'subject' });
  const colon = hashOn.indexOf(':');
  const kind = hashOn.slice(0, colon) as 'header' | 'cookie';
  const name = hashOn.slice(colon + 1);
  return Object.freeze({ kind, name: kind === 'header' ? name.toLowerCase() : name });
}

function compileTls(
  spec: NonNullable<UpstreamSpec['tls']>,
  resolvePath: (p: string) => string,
  report: Report,
  files: string[],
): UpstreamTlsOptions {
  const read = (file: string, path: Array<string | number>): Buffer | undefined => {
    try {
      const bytes = readFileSync(resolvePath(file));
      files.push(createHash('sha256').update(bytes).digest('hex'));
      return bytes;
    } catch (err) {
      report(path, `cannot read ${resolvePath(file)}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      return undefined;
    }
  };
  const base = ['spec', 'tls'];
  const ca = spec.caCerts === undefined ? undefined : read(spec.caCerts, [...base, 'caCerts']);
  if (ca) {
    try {
      new X509Certificate(ca);
    } catch (err) {
      report([...base, 'caCerts'], `not a PEM certificate: ${(err as Error).message}`);
    }
  }
  const cert = spec.clientCert ? read(spec.clientCert.cert, [...base, 'clientCert', 'cert']) : undefined;
  const key = spec.clientCert ? read(spec.clientCert.key, [...base, 'clientCert', 'key']) : undefined;
  if (cert && key) {
    try {
      createSecureContext({ cert, key });
    } catch (err) {
      report([...base, 'clientCert'], `invalid certificate or key: ${(err as Error).message}`);
    }
  }
  return Object.freeze({
    ...(ca ? { ca } : {}),
    ...(cert && key ? { cert, key } : {}),
    rejectUnauthorized: !spec.insecureSkipVerify,
    minVersion: spec.minVersion,
  });
}
