import { readFileSync } from 'node:fs';
import type { Registry } from 'prom-client';
import { toMillis } from '../config/duration.ts';
import { audiences, type SubsystemCredentials } from '../control-plane/security/types.ts';
import type { TokenIssuer } from '../identity/token-issuer.ts';
import type { AnalyticsGatewaySpec } from './gateway-schema.ts';
import { createHttpTransport } from './http-transport.ts';
import { createNatsTransport } from './nats-transport.ts';
import { EventShipper } from './shipper.ts';
import type { EventTransport } from './transport.ts';

export interface GatewayAnalyticsDeps {
  readonly gatewayName: string;
  /** Resolves paths of the spec (relative to the Gateway's config file). */
  readonly resolvePath: (path: string) => string;
  /** The gateway's token issuer (`spec.tokens`) as of now: signs the link JWT in `gateway-token` mode. */
  readonly tokenIssuer: () => TokenIssuer | null;
  /** Connected mode: what the control plane gave the gateway (`control-plane` auth). */
  readonly subsystemCredentials?: SubsystemCredentials;
  readonly registry: Registry;
  readonly log: (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string) => void;
}

/** Lifetime of a link JWT minted by the gateway; reused (cached by the issuer) until near its end. */
const LINK_TOKEN_SECONDS = 300;

/** Throws TypeError (a config problem) when the section cannot work as written. */
export function createGatewayAnalytics(spec: AnalyticsGatewaySpec, deps: GatewayAnalyticsDeps): EventShipper {
  if ((spec.http === undefined) === (spec.nats === undefined))
    throw new TypeError('spec.analytics: give exactly one of http and nats');
  if (spec.auth === 'control-plane' && deps.subsystemCredentials === undefined)
    throw new TypeError(
      'spec.analytics.auth: control-plane needs connected mode (a control plane that registered this gateway)',
    );
  if (spec.auth === 'gateway-token' && deps.tokenIssuer() === null)
    throw new TypeError(
      'spec.analytics.auth: gateway-token needs spec.tokens (the keys that sign the link JWT)',
    );
  const credentials =
    spec.auth === 'control-plane'
      ? () => deps.subsystemCredentials!.headers(audiences.analytics)
      : async () => {
          const issuer = deps.tokenIssuer();
          if (issuer === null) throw new Error('no token issuer: spec.tokens was removed');
          const token = await issuer.mint({
            audience: audiences.analytics,
            lifetimeSeconds: LINK_TOKEN_SECONDS,
            subject: deps.gatewayName,
            claims: {},
          });
          return { authorization: `Bearer ${token}` };
        };
  const tls = spec.auth === 'control-plane' ? deps.subsystemCredentials!.tls() : {};
  let transport: EventTransport;
  if (spec.http) {
    const ca = spec.http.caCerts ? readFileSync(deps.resolvePath(spec.http.caCerts), 'utf8') : tls.ca;
    const http = {
      url: spec.http.url,
      timeoutMs: toMillis(spec.http.timeout),
      ca,
      cert: tls.cert,
      key: tls.key,
    };
    // On the event loop: a few hundred µs per batch, compression in the thread pool. A worker thread
    // cost more than it saved — its isolate's collections and the copy in (bench/RESULTS.md).
    transport = createHttpTransport(http);
  } else {
    const nats = spec.nats!;
    transport = createNatsTransport({
      servers: nats.servers,
      subject: nats.subject,
      timeoutMs: toMillis(nats.timeout),
      log: deps.log,
    });
  }
  return new EventShipper({
    gateway: deps.gatewayName,
    transport,
    credentials,
    compression: spec.compression,
    batchMaxEvents: spec.batch.maxEvents,
    batchIntervalMs: toMillis(spec.batch.interval),
    writeIntervalMs: toMillis(spec.spool.writeInterval),
    retryInitialMs: Math.max(1, toMillis(spec.retry.initialDelay)),
    retryMaxMs: Math.max(1, toMillis(spec.retry.maxDelay)),
    queueMaxEvents: spec.queue.maxEvents,
    spool: spec.spool.dir
      ? {
          dir: deps.resolvePath(spec.spool.dir),
          maxBytes: spec.spool.maxBytes,
          segmentBytes: spec.spool.segmentBytes,
          fsyncIntervalMs: Math.max(10, toMillis(spec.spool.fsyncInterval)),
          loopWriteLimitMs: toMillis(spec.spool.loopWriteLimit),
          holdTimeoutMs: toMillis(spec.spool.holdTimeout),
        }
      : null,
    registry: deps.registry,
    log: deps.log,
  });
}
