import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { CompiledListener, Plan } from '../plan/types.ts';
import { contextForServerName } from '../plan/tls.ts';
import { handleClientError } from './client-errors.ts';
import { type GatewayListener, GatewayResponse } from './gateway-response.ts';

/**
 * Creates the server of one listener. Certificates are looked up on the current plan at each
 * handshake, so a reload rotates them without rebinding; limits that Node fixes at creation
 * (header size, client-certificate mode) need a restart, which `listenersCompatible` enforces.
 */
export function createListenerServer(
  listener: CompiledListener,
  plan: () => Plan,
  onRequest: GatewayListener,
): Server {
  const { limits } = plan();
  const options = {
    maxHeaderSize: limits.maxHeaderBytes,
    requestTimeout: limits.requestTimeoutMs,
    headersTimeout: Math.min(limits.requestTimeoutMs, 60_000),
    keepAliveTimeout: limits.idleTimeoutMs,
    connectionsCheckingInterval: 1_000,
    requireHostHeader: true,
    joinDuplicateHeaders: false,
    insecureHTTPParser: false,
    ServerResponse: GatewayResponse,
  };
  let server: Server;
  if (listener.tls) {
    const mode = listener.spec.tls?.clientAuth?.mode ?? 'none';
    const name = listener.spec.name;
    server = createHttpsServer(
      {
        ...options,
        ...listener.tls.defaultOptions,
        requestCert: mode !== 'none',
        rejectUnauthorized: mode === 'require',
        SNICallback(serverName, callback) {
          const current = plan().listeners.find((l) => l.spec.name === name)?.tls;
          callback(null, current ? contextForServerName(current, serverName) : undefined);
        },
      },
      onRequest,
    );
  } else {
    server = createHttpServer(options, onRequest);
  }
  server.on('clientError', handleClientError);
  return server;
}

/** Applies limits Node lets us change on a live server. */
export function applyLiveLimits(server: Server, plan: Plan, listener: CompiledListener): void {
  server.requestTimeout = plan.limits.requestTimeoutMs;
  server.headersTimeout = Math.min(plan.limits.requestTimeoutMs, 60_000);
  server.keepAliveTimeout = plan.limits.idleTimeoutMs;
  if (listener.tls && 'setSecureContext' in server) {
    (server as unknown as { setSecureContext(o: object): void }).setSecureContext(
      listener.tls.defaultOptions,
    );
  }
}

/** Why a new plan cannot be applied to the running listeners, or null if it can. */
export function listenersIncompatible(running: Plan, next: Plan): string | null {
  const describe = (p: Plan) =>
    JSON.stringify({
      listeners: p.listeners.map((l) => ({
        name: l.spec.name,
        port: l.spec.port,
        address: l.spec.address,
        protocol: l.spec.protocol,
        clientAuth: l.spec.tls?.clientAuth?.mode ?? 'none',
      })),
      admin: p.gateway.admin ?? null,
      maxHeaderBytes: p.limits.maxHeaderBytes,
    });
  return describe(running) === describe(next)
    ? null
    : 'listeners, admin port or maxHeaderBytes changed: restart the gateway to apply';
}
