import { randomBytes } from 'node:crypto';
import Type from 'typebox';
import type { Logger } from '../../telemetry/logger.ts';
import type { ControlPlaneMetrics } from '../metrics.ts';
import { HttpProblem, type Route } from '../routes.ts';
import type { ResourceStore } from '../store/types.ts';
import {
  bootstrapTokensCollection,
  type BootstrapTokenRecord,
  consumeBootstrapToken,
} from './bootstrap-tokens.ts';
import { type ControlPlaneCa, importP256PublicKey } from './ca.ts';
import { ClientAssertionError, clientAssertionType, verifyClientAssertion } from './client-assertion.ts';
import {
  type GatewayRecord,
  type GatewayRecords,
  gatewaysCollection,
  identityOf,
} from './gateway-records.ts';
import type { JwtKeyRing } from './keys.ts';
import { bodyParser } from './request-body.ts';
import { audiences, type GatewayIdentity, type SubsystemSecurityMode } from './types.ts';

/** What `POST /v1/register` answers, and what the gateway keeps in `<dataDir>/identity/`. */
export interface RegistrationAnswer {
  identity: GatewayIdentity;
  mode: SubsystemSecurityMode;
  /** The control plane CA (PEM): verifies the control plane's server certificate when it generated one. */
  caCertificate: string;
  /** mtls: the gateway's client certificate (PEM). */
  certificate?: string;
  certificateNotAfter?: string;
  jwksUri: string;
  issuer: string;
  controlPlaneUrl: string;
  tokenEndpoint: string;
}

export interface RegistrationDeps {
  store: ResourceStore;
  records: GatewayRecords;
  ca: ControlPlaneCa;
  keyRing: JwtKeyRing;
  logger: Logger;
  now: () => number;
  mode: SubsystemSecurityMode;
  certificateLifetimeMs: number;
  tokenLifetimeMs: number;
  issuer: string;
  controlPlaneUrl: string;
  tokenEndpoint: string;
  jwksUri: string;
  /** Counts credentials issued and refused registrations and client assertions. */
  metrics?: ControlPlaneMetrics;
}

const PublicKeyPem = Type.String({
  minLength: 1,
  maxLength: 4096,
  description: 'SPKI PEM of an EC P-256 key.',
});
const parseRegister = bodyParser<{ token: string; publicKey: string }>(
  Type.Object(
    { token: Type.String({ minLength: 1, maxLength: 200 }), publicKey: PublicKeyPem },
    { additionalProperties: false },
  ),
);
const parseRenew = bodyParser<{ publicKey: string }>(
  Type.Object({ publicKey: PublicKeyPem }, { additionalProperties: false }),
);
const parseToken = bodyParser<{ client_assertion_type: string; client_assertion: string }>(
  Type.Object(
    {
      grant_type: Type.Optional(Type.Literal('client_credentials')),
      client_assertion_type: Type.Literal(clientAssertionType),
      client_assertion: Type.String({ minLength: 1, maxLength: 4096 }),
    },
    { additionalProperties: false },
  ),
);

async function checkedPublicKey(pem: string): Promise<void> {
  try {
    await importP256PublicKey(pem);
  } catch (err) {
    throw new HttpProblem('bad_request', `publicKey: ${(err as Error).message}`);
  }
}

/** Registration, renewal, tokens, and the public material (JWKS, CA). */
export function registrationRoutes(deps: RegistrationDeps): Route[] {
  const { store, records, ca, keyRing, logger, now, mode } = deps;
  const routes: Route[] = [
    {
      method: 'POST',
      path: '/v1/register',
      auth: { kind: 'none' },
      summary:
        'Register a gateway with a bootstrap token and the public key it generated; answers its identity.',
      async handle(call) {
        const body = parseRegister(await call.body());
        // Bad input is refused before a use of the token is spent.
        await checkedPublicKey(body.publicKey);
        const token = await consumeBootstrapToken(store, now(), body.token);
        if (!token) {
          deps.metrics?.authFailure('registration', 'bootstrap_token_invalid');
          throw new HttpProblem(
            'bootstrap_token_invalid',
            'bootstrap token is unknown, expired, revoked or used up',
          );
        }
        try {
          const answer = await register(deps, token, body.publicKey);
          logger.info(
            {
              gateway: answer.identity.id,
              name: answer.identity.name,
              namespace: answer.identity.namespace,
              bootstrapToken: token.id,
            },
            'gateway registered',
          );
          call.res.setHeader('cache-control', 'no-store');
          call.json(answer, 201);
        } catch (err) {
          // Nothing was registered: give the use back.
          await store
            .recordUpdate<BootstrapTokenRecord>(bootstrapTokensCollection, token.id, (current) =>
              current === null ? undefined : { ...current, used: Math.max(0, current.used - 1) },
            )
            .catch(() => {});
          throw err;
        }
      },
    },
    {
      method: 'POST',
      path: '/v1/token',
      auth: { kind: 'none' },
      summary:
        'A short-lived JWT for a registered gateway, for a client assertion signed with its registered key.',
      async handle(call) {
        const body = parseToken(await call.body());
        let record: GatewayRecord;
        try {
          record = await verifyClientAssertion(body.client_assertion, {
            records,
            store,
            now,
            tokenEndpoint: deps.tokenEndpoint,
          });
        } catch (err) {
          if (err instanceof ClientAssertionError) {
            deps.metrics?.authFailure('token', 'client_assertion_invalid');
            throw new HttpProblem('client_assertion_invalid', err.message);
          }
          throw err;
        }
        const identity = identityOf(record);
        const accessToken = await keyRing.sign(
          {
            iss: deps.issuer,
            sub: identity.id,
            aud: [audiences.controlPlane, audiences.analytics],
            jti: randomBytes(12).toString('base64url'),
            gateway: { name: identity.name, namespace: identity.namespace, labels: identity.labels },
          },
          deps.tokenLifetimeMs,
        );
        deps.metrics?.issued('access_token');
        call.res.setHeader('cache-control', 'no-store');
        call.json({
          access_token: accessToken,
          token_type: 'Bearer',
          expires_in: Math.floor(deps.tokenLifetimeMs / 1000),
        });
      },
    },
    {
      method: 'GET',
      path: '/v1/identity',
      auth: { kind: 'gateway' },
      summary: 'Who the calling gateway is, as the control plane sees it.',
      handle(call) {
        call.json({ identity: call.gateway, mode });
      },
    },
    {
      method: 'GET',
      path: '/.well-known/jwks.json',
      auth: { kind: 'none' },
      summary: 'The public keys that verify subsystem JWTs (JWK Set).',
      handle(call) {
        call.res.setHeader('cache-control', 'public, max-age=60');
        call.json(keyRing.jwks());
      },
    },
    {
      method: 'GET',
      path: '/v1/ca.pem',
      auth: { kind: 'none' },
      summary: 'The control plane CA certificate (PEM).',
      handle(call) {
        call.res.writeHead(200, {
          'content-type': 'application/x-pem-file',
          'cache-control': 'public, max-age=300',
        });
        call.res.end(ca.certificatePem);
      },
    },
  ];
  if (mode === 'mtls')
    routes.push({
      method: 'POST',
      path: '/v1/renew',
      auth: { kind: 'gateway' },
      summary:
        'A new client certificate for the calling gateway (authenticated by its current one) and a new key.',
      async handle(call) {
        const body = parseRenew(await call.body());
        await checkedPublicKey(body.publicKey);
        const identity = call.gateway!;
        const issued = await ca.issueGatewayCertificate({
          identity,
          publicKeyPem: body.publicKey,
          lifetimeMs: deps.certificateLifetimeMs,
        });
        const after = await store.recordUpdate<GatewayRecord>(gatewaysCollection, identity.id, (current) =>
          current === null
            ? undefined
            : {
                ...current,
                publicKey: body.publicKey,
                ...(current.certificate ? { previousCertificate: current.certificate } : {}),
                certificate: { serialNumber: issued.serialNumber, notAfter: issued.notAfter },
                renewedAt: new Date(now()).toISOString(),
              },
        );
        records.forget(identity.id);
        deps.metrics?.issued('certificate');
        if (!after) throw new HttpProblem('unauthenticated', 'the gateway is no longer registered');
        logger.info({ gateway: identity.id, notAfter: issued.notAfter }, 'gateway certificate renewed');
        call.res.setHeader('cache-control', 'no-store');
        call.json({
          certificate: issued.certificatePem,
          certificateNotAfter: issued.notAfter,
          caCertificate: ca.certificatePem,
        });
      },
    });
  return routes;
}

async function register(
  deps: RegistrationDeps,
  token: BootstrapTokenRecord,
  publicKey: string,
): Promise<RegistrationAnswer> {
  const identity: GatewayIdentity = {
    id: `gw_${randomBytes(10).toString('hex')}`,
    name: token.gateway,
    namespace: token.namespace,
    labels: { ...token.labels },
  };
  const issued =
    deps.mode === 'mtls'
      ? await deps.ca.issueGatewayCertificate({
          identity,
          publicKeyPem: publicKey,
          lifetimeMs: deps.certificateLifetimeMs,
        })
      : null;
  if (issued) deps.metrics?.issued('certificate');
  const record: GatewayRecord = {
    ...identity,
    publicKey,
    registeredAt: new Date(deps.now()).toISOString(),
    mode: deps.mode,
    bootstrapTokenId: token.id,
    ...(issued ? { certificate: { serialNumber: issued.serialNumber, notAfter: issued.notAfter } } : {}),
  };
  await deps.store.recordPut(gatewaysCollection, identity.id, record);
  return {
    identity,
    mode: deps.mode,
    caCertificate: deps.ca.certificatePem,
    ...(issued ? { certificate: issued.certificatePem, certificateNotAfter: issued.notAfter } : {}),
    jwksUri: deps.jwksUri,
    issuer: deps.issuer,
    controlPlaneUrl: deps.controlPlaneUrl,
    tokenEndpoint: deps.tokenEndpoint,
  };
}
