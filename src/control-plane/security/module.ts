import { readFileSync } from 'node:fs';
import type { TlsOptions } from 'node:tls';
import { Compile } from 'typebox/compile';
import Value from 'typebox/value';
import { toMillis } from '../../config/duration.ts';
import { formatFieldPath } from '../../config/errors.ts';
import { readableSchemaErrors } from '../../config/schema-errors.ts';
import type { ControlPlaneContext, ControlPlaneModule } from '../routes.ts';
import { bearerAuthenticator, certificateAuthenticator } from './authenticator.ts';
import { bootstrapTokenRoutes } from './bootstrap-routes.ts';
import { loadOrCreateCa } from './ca.ts';
import { pruneAssertionJtis } from './client-assertion.ts';
import { GatewayRecords } from './gateway-records.ts';
import { JwtKeyRing } from './keys.ts';
import { registrationRoutes } from './registration-routes.ts';
import { SecuritySpec } from './schema.ts';
import type { GatewayAuthenticator, SubsystemSecurityMode } from './types.ts';

export interface SecurityModule extends ControlPlaneModule {
  readonly name: 'security';
  readonly mode: SubsystemSecurityMode;
  readonly gatewayAuthenticator: GatewayAuthenticator;
  /**
   * Options for the control plane's HTTPS listener (`https.createServer(tlsOptions())`), or
   * undefined for plain HTTP (jwt mode behind a TLS-terminating load balancer). mtls: the server
   * certificate (generated and signed by the CA, or `spec.tls`), the CA as the only trust anchor
   * for client certificates, which are requested but not required at the handshake: registration,
   * the JWKS, the CA and the admin API are called without one, gateway routes refuse with 401.
   */
  tlsOptions(): TlsOptions | undefined;
  /** The CA certificate (PEM) gateways verify the control plane with. */
  readonly caCertificate: string;
  readonly issuer: string;
  readonly jwksUri: string;
  /** Deletes the gateway's record: no more renewal or tokens, and its credentials fail from the next call. */
  revokeGateway(id: string): Promise<boolean>;
  /** The key ring (tests, and a receiver in the same process). */
  readonly keyRing: JwtKeyRing;
  close(): Promise<void>;
}

const specValidator = Compile(SecuritySpec);
const maxTokenLifetimeMs = 3_600_000;
const pruneEveryMs = 5 * 60_000;

/** Subsystem security: CA, signing keys, bootstrap tokens, registration, gateway authentication. */
export async function createSecurityModule(
  ctx: ControlPlaneContext,
  input: Partial<SecuritySpec> = {},
): Promise<SecurityModule> {
  const spec = checkedSpec(input);
  const certificateLifetimeMs = toMillis(spec.certificateLifetime);
  const tokenLifetimeMs = toMillis(spec.tokenLifetime);
  const rotationMs = toMillis(spec.keyRotation);
  if (tokenLifetimeMs < 1000 || tokenLifetimeMs > maxTokenLifetimeMs)
    throw new TypeError('security.tokenLifetime: must be between 1s and 1h');
  if (certificateLifetimeMs < 1000) throw new TypeError('security.certificateLifetime: must be at least 1s');
  if (rotationMs < 4 * tokenLifetimeMs)
    throw new TypeError('security.keyRotation: must be at least four times tokenLifetime');

  const base = ctx.publicUrl.replace(/\/+$/, '');
  const issuer = base;
  const jwksUri = `${base}/.well-known/jwks.json`;
  const tokenEndpoint = `${base}/v1/token`;

  const ca = await loadOrCreateCa(ctx.store, ctx.now);
  const keyRing = await JwtKeyRing.open({
    store: ctx.store,
    now: ctx.now,
    logger: ctx.logger,
    rotationMs,
    tokenLifetimeMs,
  });
  const records = new GatewayRecords(ctx.store, ctx.now);
  const tls = await serverTls(spec, ca);

  const onRefused = (reason: string) => ctx.metrics?.authFailure('gateway', reason);
  const gatewayAuthenticator =
    spec.mode === 'mtls'
      ? certificateAuthenticator(records, ctx.now, onRefused)
      : bearerAuthenticator(keyRing, records, issuer, onRefused);

  const pruneTimer = setInterval(() => {
    pruneAssertionJtis(ctx.store, ctx.now()).catch((err: Error) =>
      ctx.logger.warn({ err: err.message }, 'cannot prune used client assertion ids'),
    );
  }, pruneEveryMs);
  pruneTimer.unref();

  const routes = [
    ...bootstrapTokenRoutes(ctx.store, ctx.now),
    ...registrationRoutes({
      store: ctx.store,
      records,
      ca,
      keyRing,
      logger: ctx.logger,
      now: ctx.now,
      mode: spec.mode,
      certificateLifetimeMs,
      tokenLifetimeMs,
      issuer,
      controlPlaneUrl: base,
      tokenEndpoint,
      jwksUri,
      ...(ctx.metrics ? { metrics: ctx.metrics } : {}),
    }),
  ];

  return {
    name: 'security',
    mode: spec.mode,
    gatewayAuthenticator,
    caCertificate: ca.certificatePem,
    issuer,
    jwksUri,
    keyRing,
    routes: () => routes,
    tlsOptions: () => tls,
    revokeGateway: (id) => records.revoke(id),
    async close() {
      clearInterval(pruneTimer);
      keyRing.close();
    },
  };
}

function checkedSpec(input: Partial<SecuritySpec>): SecuritySpec {
  const spec = Value.Default(SecuritySpec, structuredClone(input)) as SecuritySpec;
  if (!specValidator.Check(spec)) {
    const problems = readableSchemaErrors(specValidator.Errors(spec)).map(
      (p) => `security${p.path.length ? '.' : ''}${formatFieldPath(p.path)}: ${p.message}`,
    );
    throw new TypeError(problems.join('; '));
  }
  return spec;
}

async function serverTls(
  spec: SecuritySpec,
  ca: Awaited<ReturnType<typeof loadOrCreateCa>>,
): Promise<TlsOptions | undefined> {
  let server: { cert: string; key: string } | undefined;
  if (spec.tls)
    server = {
      cert: readPem(spec.tls.cert, 'security.tls.cert'),
      key: readPem(spec.tls.key, 'security.tls.key'),
    };
  else if (spec.mode === 'mtls')
    server = await ca.serverCredentials(spec.hostnames ?? ['localhost', '127.0.0.1']);
  if (!server) return undefined;
  if (spec.mode === 'jwt') return { ...server, minVersion: 'TLSv1.2' };
  return {
    ...server,
    ca: [ca.certificatePem],
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
  };
}

/** A PEM given inline, or the file holding it. */
function readPem(value: string, field: string): string {
  if (value.startsWith('-----BEGIN')) return value;
  try {
    return readFileSync(value, 'utf8');
  } catch (err) {
    throw new TypeError(
      `${field}: cannot read ${value}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}
