import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TlsOptions } from 'node:tls';
import type { Logger } from '../telemetry/logger.ts';
import { createApiModule } from './api/module.ts';
import { createOperatorAuthenticator, type OperatorAuthConfig } from './api/operator-auth.ts';
import { operatorMay } from './api/roles.ts';
import { readJsonBody } from './body.ts';
import { type ControlPlaneMetrics, createControlPlaneMetrics } from './metrics.ts';
import { sendJson, sendProblem } from './problem-answer.ts';
import { RouteTable } from './router.ts';
import {
  type ControlPlaneContext,
  type ControlPlaneModule,
  HttpProblem,
  type Route,
  type RouteCall,
} from './routes.ts';
import type { GatewayAuthenticator } from './security/types.ts';
import { meteredStore } from './store/metered.ts';
import type { ResourceStore } from './store/types.ts';

/** The control plane's own settings, resolved from the ControlPlane resource (options.ts). */
export interface ControlPlaneServerConfig {
  listen: { address: string; port: number };
  /** Default: http(s)://address:port. */
  publicUrl?: string;
  dataDir: string;
  operators: OperatorAuthConfig;
  /** Heartbeat comments on watch streams; default 15 s. */
  watchHeartbeatMs?: number;
  /** Time allowed to receive a whole request (headers and body); default 30 s. */
  requestTimeoutMs?: number;
  /** Who may read GET /metrics: anyone (default, as Prometheus scrapes), operators with viewer, or off. */
  metricsAccess?: MetricsAccess;
}

export type MetricsAccess = 'none' | 'viewer' | 'off';

export interface StartControlPlaneOptions {
  config: ControlPlaneServerConfig;
  store: ResourceStore;
  logger: Logger;
  /** Other modules (security, distribution, analytics); the admin API module is always added. */
  modules: ControlPlaneModule[];
  /** Serve HTTPS. `requestCert` asks for (never requires) a client certificate: gateways present one, operators need not. */
  tls?: TlsOptions;
  /** Context the modules were made with (controlPlaneContext()); made from `config` when absent. */
  context?: ControlPlaneContext;
  env?: Readonly<Record<string, string | undefined>>;
}

export interface RunningControlPlane {
  url: string;
  port: number;
  server: Server;
  context: ControlPlaneContext;
  close(): Promise<void>;
}

/** The context modules are created with, before the server starts. */
export function controlPlaneContext(
  config: ControlPlaneServerConfig,
  store: ResourceStore,
  logger: Logger,
  tls: boolean,
  now: () => number = Date.now,
): ControlPlaneContext {
  const host = config.listen.address.includes(':') ? `[${config.listen.address}]` : config.listen.address;
  const publicUrl = (config.publicUrl ?? `${tls ? 'https' : 'http'}://${host}:${config.listen.port}`).replace(
    /\/+$/,
    '',
  );
  const metrics = createControlPlaneMetrics();
  return {
    store: meteredStore(store, (result) => metrics.storeWrite(result)),
    logger,
    now,
    publicUrl,
    dataDir: config.dataDir,
    metrics,
  };
}

/**
 * One HTTP(S) server for every module's routes: operators (admin tokens, JWTs) and gateways
 * (client certificates or bearer JWTs, checked by the module that provides the authenticator)
 * share the port. Every error is problem+json; every request gets one access-log line.
 */
export async function startControlPlane(options: StartControlPlaneOptions): Promise<RunningControlPlane> {
  const { config, store, logger } = options;
  const ctx = options.context ?? controlPlaneContext(config, store, logger, options.tls !== undefined);
  // A context made by hand has no metrics: the server counts into its own registry then.
  const metrics = ctx.metrics ?? createControlPlaneMetrics();
  const operators = createOperatorAuthenticator(config.operators, {
    now: ctx.now,
    logger,
    env: options.env ?? process.env,
  });
  const gatewayAuthenticators = options.modules.flatMap((m) => (m.gatewayAuthenticator ? [m] : []));
  if (gatewayAuthenticators.length > 1)
    throw new TypeError(
      `only one module may authenticate gateways (${gatewayAuthenticators.map((m) => m.name).join(', ')})`,
    );
  const gatewayAuthenticator: GatewayAuthenticator | undefined =
    gatewayAuthenticators[0]?.gatewayAuthenticator;

  let table: RouteTable | null = null;
  const allRoutes: Route[] = [];
  const health: Route[] = [
    {
      method: 'GET',
      path: '/healthz',
      auth: { kind: 'none' },
      summary: 'Liveness: the process answers.',
      handle: (call) => call.json({ status: 'ok' }),
    },
    {
      method: 'GET',
      path: '/readyz',
      auth: { kind: 'none' },
      summary: 'Readiness: the store answers and operator JWTs can be checked.',
      async handle(call) {
        const revision = await store.revision().catch(() => null);
        const ready = revision !== null && operators.ready();
        call.json(
          {
            status: ready ? 'ready' : 'not ready',
            store: revision !== null,
            operatorKeys: operators.ready(),
          },
          ready ? 200 : 503,
        );
      },
    },
  ];
  const access = config.metricsAccess ?? 'none';
  if (access !== 'off') health.push(metricsRoute(metrics, access));
  const api = createApiModule(ctx, {
    routes: () => allRoutes,
    heartbeatMs: config.watchHeartbeatMs ?? 15_000,
  });
  const modules = [api, ...options.modules];
  allRoutes.push(...health, ...modules.flatMap((m) => m.routes()));
  table = new RouteTable(allRoutes);
  const routes = table;

  const handle = async (req: IncomingMessage, res: ServerResponse, log: AccessLog) => {
    const url = new URL(req.url ?? '/', 'http://control-plane');
    let match: ReturnType<RouteTable['match']>;
    try {
      match = routes.match(req.method ?? 'GET', url.pathname);
    } catch {
      throw new HttpProblem('bad_path', 'the path is not valid percent-encoding');
    }
    if (match === null) throw new HttpProblem('route_not_found', `no route for ${url.pathname}`);
    if (!match.found) {
      req.resume();
      sendProblem(res, 'method_not_allowed', `${req.method} is not allowed here`, undefined, {
        allow: match.allowed.join(', '),
      });
      return;
    }
    const { route, params } = match;
    log.route = route.path;
    let bodyRead: Promise<unknown> | null = null;
    const call: RouteCall = {
      req,
      res,
      params,
      query: url.searchParams,
      body: () => {
        bodyRead ??= readJsonBody(req);
        return bodyRead;
      },
      json: (value, status) => sendJson(res, value, status),
    };
    const auth = route.auth;
    if (auth.kind === 'operator') {
      const check = await operators.authenticate(req);
      if (!check.ok) {
        metrics.authFailure('operator', check.code);
        const challenge =
          check.code === 'invalid_token'
            ? `Bearer realm="gatehouse", error="invalid_token"`
            : `Bearer realm="gatehouse"`;
        req.resume();
        sendProblem(
          res,
          check.code,
          check.detail,
          undefined,
          check.code === 'identity_provider_unavailable' ? {} : { 'www-authenticate': challenge },
        );
        return;
      }
      const operator = check.operator;
      log.operator = operator.name;
      const namespace = auth.namespaceParam ? params[auth.namespaceParam] : undefined;
      // anyNamespace: the handler checks each namespace it touches (and names it when refusing).
      const allowed = auth.anyNamespace === true || operatorMay(operator, namespace ?? '*', auth.role);
      if (!allowed) {
        metrics.authFailure('operator', 'forbidden');
        const where = namespace ? `in namespace ${namespace}` : 'in every namespace (*)';
        throw new HttpProblem('forbidden', `${operator.name} needs role ${auth.role} ${where}`, {
          requiredRole: auth.role,
          namespace: namespace ?? '*',
        });
      }
      call.operator = operator;
    } else if (auth.kind === 'gateway') {
      // Fail closed: without a module that can tell gateways apart, no call is a gateway's.
      if (!gatewayAuthenticator)
        throw new HttpProblem(
          'unauthenticated',
          'this control plane does not authenticate gateways (no security configured)',
        );
      const gateway = await gatewayAuthenticator.authenticate(req);
      if (!gateway) throw new HttpProblem('unauthenticated', 'a registered gateway’s credential is required');
      log.gateway = gateway.id;
      call.gateway = gateway;
    }
    await route.handle(call);
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    const log: AccessLog = {};
    res.once('close', () => {
      const seconds = (performance.now() - started) / 1000;
      // Event streams last as long as the connection: their duration says nothing about latency.
      const streamed = String(res.getHeader('content-type') ?? '').startsWith('text/event-stream');
      metrics.request(
        log.route ?? 'unmatched',
        req.method ?? 'GET',
        res.writableFinished ? `${Math.floor(res.statusCode / 100)}xx` : 'aborted',
        streamed ? null : seconds,
      );
      logger.info(
        {
          method: req.method,
          path: (req.url ?? '/').split('?')[0],
          status: res.statusCode,
          durationMs: Math.round(performance.now() - started),
          ...(log.operator ? { operator: log.operator } : {}),
          ...(log.gateway ? { gateway: log.gateway } : {}),
          ...(res.writableFinished ? {} : { aborted: true }),
        },
        'request',
      );
    });
    handle(req, res, log).catch((err: unknown) => {
      if (err instanceof HttpProblem) {
        req.resume();
        sendProblem(res, err.code, err.detail, err.extra);
        return;
      }
      logger.error({ err, path: (req.url ?? '/').split('?')[0] }, 'control-plane route failed');
      sendProblem(res, 'internal_error', 'the control plane could not answer this request');
    });
  };

  const server: Server = options.tls
    ? createHttpsServer(
        // Operators call without a certificate: the handshake never requires one; gateway routes
        // are refused by the authenticator instead.
        { ...options.tls, requestCert: options.tls.requestCert ?? false, rejectUnauthorized: false },
        onRequest,
      )
    : createHttpServer(onRequest);
  server.requestTimeout = config.requestTimeoutMs ?? 30_000;
  server.headersTimeout = Math.min(server.requestTimeout, 10_000);
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 100;
  server.on('clientError', (_err, socket) => {
    if (socket.writable)
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = config.listen.address.includes(':') ? `[${config.listen.address}]` : config.listen.address;
  const url = `${options.tls ? 'https' : 'http'}://${host}:${port}`;

  let closing: Promise<void> | null = null;
  return {
    url,
    port,
    server,
    context: ctx,
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        for (const m of modules) await m.close?.();
        operators.close();
        // Long-lived streams (watch, gateway config) end with the modules; what remains is cut.
        const cut = setTimeout(() => server.closeAllConnections(), 2_000);
        await stopped;
        clearTimeout(cut);
      })();
      return closing;
    },
  };
}

interface AccessLog {
  /** The matched route's template (the metrics label). */
  route?: string;
  operator?: string;
  gateway?: string;
}

/** GET /metrics: Prometheus text of the control plane (and of analytics ingestion when it runs here). */
function metricsRoute(metrics: ControlPlaneMetrics, access: 'none' | 'viewer'): Route {
  return {
    method: 'GET',
    path: '/metrics',
    auth: access === 'viewer' ? { kind: 'operator', role: 'viewer' } : { kind: 'none' },
    summary: 'Prometheus metrics of the control plane (spec.metrics.access: none, viewer or off).',
    async handle(call) {
      const text = await metrics.registry.metrics();
      call.res.writeHead(200, { 'content-type': metrics.registry.contentType, 'cache-control': 'no-store' });
      call.res.end(text);
    },
  };
}
