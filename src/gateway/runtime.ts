import { watch, type FSWatcher, statSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { basename, dirname, resolve } from 'node:path';
import { ConfigInvalidError, formatConfigError } from '../config/errors.ts';
import { loadConfig } from '../config/load.ts';
import { CredentialStore } from '../egress/credentials.ts';
import { ForwardProxy } from '../egress/forward-proxy.ts';
import { type CompileOptions, compilePlan } from '../plan/compile.ts';
import { ProviderRegistry } from '../identity/providers.ts';
import { TokenIssuerRegistry } from '../identity/token-issuers.ts';
import { RateLimiterRegistry } from '../ratelimit/registry.ts';
import type { ShadowDenialRecorder } from '../plan/shadow.ts';
import type { Plan } from '../plan/types.ts';
import type { Logger } from '../telemetry/logger.ts';
import { createGatewayMetrics, type GatewayMetrics } from '../telemetry/metrics.ts';
import { startGatewayAnalytics } from '../analytics/gateway-hook.ts';
import type { EventShipper } from '../analytics/shipper.ts';
import type { SubsystemCredentials } from '../control-plane/security/types.ts';
import { createRequestTracing, type RequestTracing } from '../telemetry/tracing.ts';
import { createAdminServer } from './admin.ts';
import { withDecisionEndpoint } from './decision.ts';
import { createRequestHandler, type GatewayState } from './handler.ts';
import { withJwksEndpoint } from './jwks-endpoint.ts';
import { applyLiveLimits, createListenerServer, listenersIncompatible } from './listeners.ts';
import { UpstreamRegistry } from './upstream/registry.ts';
import { createUpgradeHandler } from './upgrade.ts';

export interface GatewayOptions {
  configPaths: readonly string[];
  gatewayName?: string;
  logger: Logger;
  /** Where secrets referenced as `{ env: NAME }` are read from. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Reload when a config file changes (debounced). */
  watch?: boolean;
  /** Connected mode: the gateway's credentials from the control plane (analytics `auth: control-plane`). */
  subsystemCredentials?: SubsystemCredentials;
}

/** Loads and compiles the config; throws ConfigInvalidError with every problem found. */
export function buildPlan(
  paths: readonly string[],
  options: Omit<CompileOptions, 'now'> = {},
): { plan: Plan; files: string[] } {
  const loaded = loadConfig(paths);
  if (loaded.errors.length > 0) throw new ConfigInvalidError(loaded.errors);
  const compiled = compilePlan(loaded.resources, options);
  if (!compiled.ok) throw new ConfigInvalidError(compiled.errors);
  return { plan: compiled.plan, files: loaded.files };
}

/**
 * A running gateway in local mode: its listeners, admin server, the plan being served and how it
 * is replaced. A reload builds a new plan beside the old one and swaps one reference: requests in
 * flight finish on the plan they started with.
 */
export class GatewayRuntime implements GatewayState {
  plan: Plan;
  /** Upstream targets (pools, health checks, circuits): like providers, they outlive plans. */
  readonly upstreams: UpstreamRegistry;
  readonly providers: ProviderRegistry;
  /** Token issuers (signing keys, minted-token caches): like providers, they outlive plans. */
  readonly tokens: TokenIssuerRegistry;
  /** Secrets and client-credentials token caches of egress policies: like providers, they outlive plans. */
  readonly credentials: CredentialStore;
  /** Rate-limit backends and their Redis connections: like providers, they outlive plans. */
  readonly rateLimiters: RateLimiterRegistry;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  draining = false;
  /** The API event shipper (spec.analytics, fixed at start); null when off. */
  analytics: EventShipper | null = null;
  /** OpenTelemetry spans (spec.tracing, fixed at start); null when off. */
  tracing: RequestTracing | null = null;
  readonly #options: GatewayOptions;
  readonly #servers: Array<{ name: string; server: Server }> = [];
  #admin: Server | null = null;
  #watchers: FSWatcher[] = [];
  #reloadTimer: NodeJS.Timeout | null = null;
  readonly #reloads = { applied: 0, rejected: 0, lastError: null as string | null };
  #active = 0;
  #forwardProxy: ForwardProxy | null = null;

  private constructor(
    plan: Plan,
    options: GatewayOptions,
    providers: ProviderRegistry,
    metrics: GatewayMetrics,
    tokens: TokenIssuerRegistry,
    credentials: CredentialStore,
    rateLimiters: RateLimiterRegistry,
  ) {
    this.plan = plan;
    this.providers = providers;
    this.tokens = tokens;
    this.credentials = credentials;
    this.rateLimiters = rateLimiters;
    this.metrics = metrics;
    this.#options = options;
    this.logger = options.logger;
    this.metrics.planInfo.labels(plan.version).set(1);
    this.metrics.setInFlightSource(() => this.#active);
    this.upstreams = new UpstreamRegistry({
      now: Date.now,
      start: true,
      log: (level, fields, message) => this.logger[level](fields, message),
    });
    void this.upstreams.retainOnly(plan);
    this.metrics.setUpstreamTargetSource(() => this.upstreams.status(this.plan));
  }

  static async start(options: GatewayOptions): Promise<GatewayRuntime> {
    const logger = options.logger;
    const providers = new ProviderRegistry({
      now: Date.now,
      start: true,
      env: options.env ?? {},
      log: (level, fields, message) => logger[level](fields, message),
    });
    const tokens = new TokenIssuerRegistry({
      now: Date.now,
      start: true,
      log: (level, fields, message) => logger[level](fields, message),
    });
    const credentials = new CredentialStore({
      env: options.env ?? {},
      now: Date.now,
      log: (level, fields, message) => logger[level](fields, message),
    });
    const metrics = createGatewayMetrics();
    const rateLimiters = new RateLimiterRegistry({
      start: true,
      env: options.env ?? {},
      now: Date.now,
      log: (level, fields, message) => logger[level](fields, message),
    });
    rateLimiters.metrics.register(metrics.registry);
    const recordShadowDenial = shadowDenialRecorder(logger, metrics);
    let plan: Plan;
    try {
      plan = buildPlan(options.configPaths, {
        gatewayName: options.gatewayName,
        providers,
        tokens,
        recordShadowDenial,
        credentials,
        rateLimiters,
      }).plan;
    } catch (err) {
      providers.closeAll();
      tokens.closeAll();
      credentials.close();
      void rateLimiters.closeAll();
      throw err;
    }
    const runtime = new GatewayRuntime(plan, options, providers, metrics, tokens, credentials, rateLimiters);
    try {
      runtime.analytics = startGatewayAnalytics({
        plan,
        planNow: () => runtime.plan,
        registry: metrics.registry,
        logger,
        subsystemCredentials: options.subsystemCredentials,
      });
      const tracing = plan.gateway.tracing;
      if (tracing?.enabled) runtime.tracing = createRequestTracing(tracing, plan.gatewayName);
    } catch (err) {
      void runtime.analytics?.close(0);
      void runtime.upstreams.closeAll();
      providers.closeAll();
      tokens.closeAll();
      credentials.close();
      void rateLimiters.closeAll();
      throw err;
    }
    await runtime.#listen();
    if (options.watch) runtime.#watch();
    return runtime;
  }

  async #listen(): Promise<void> {
    const plan = this.plan;
    // Egress forward proxy: absolute-form requests and CONNECT go to it while the plan has one
    // (spec.forwardProxy); otherwise absolute-form stays a 400 bad_target and so does CONNECT.
    const forwardProxy = new ForwardProxy(this);
    this.#forwardProxy = forwardProxy;
    for (const listener of plan.listeners) {
      const name = listener.spec.name;
      const info = { name, protocol: listener.spec.protocol };
      const handle = withJwksEndpoint(
        this,
        name,
        withDecisionEndpoint(this, info, createRequestHandler(this, info)),
      );
      const server = createListenerServer(
        listener,
        () => this.plan,
        (req, res) => {
          this.#active++;
          res.on('close', () => this.#active--);
          if (forwardProxy.accepts(req)) forwardProxy.handleRequest(req, res, info);
          else handle(req, res);
        },
      );
      server.on('upgrade', createUpgradeHandler(this, { name, protocol: listener.spec.protocol }));
      server.on('connect', (req, socket, head) =>
        forwardProxy.handleConnect(req, socket as Socket, head, info),
      );
      await listen(server, listener.spec.port, listener.spec.address);
      this.#servers.push({ name, server });
      this.logger.info(
        {
          listener: name,
          address: `${listener.spec.protocol}://${listener.spec.address}:${listener.spec.port}`,
        },
        'listening',
      );
    }
    const admin = plan.gateway.admin;
    if (admin) {
      this.#admin = createAdminServer(() => ({
        plan: this.plan,
        ready: this.ready(),
        metrics: this.metrics,
        reloads: this.#reloads,
      }));
      await listen(this.#admin, admin.port, admin.address);
      this.logger.info({ address: `http://${admin.address}:${admin.port}` }, 'admin listening');
    }
  }

  /** Ready to serve: not draining and every identity provider of the plan has its keys. */
  ready(): boolean {
    if (this.draining) return false;
    for (const provider of this.plan.providers.values()) if (!provider.jwt.ready()) return false;
    return true;
  }

  /** Bound ports, by listener name (and `admin`). */
  ports(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const { name, server } of this.#servers) out[name] = (server.address() as AddressInfo).port;
    if (this.#admin) out.admin = (this.#admin.address() as AddressInfo).port;
    return out;
  }

  /** Why the last reload was refused (every problem, one per line), or null after an applied one. */
  get lastReloadError(): string | null {
    return this.#reloads.lastError;
  }

  /**
   * Builds a new plan from the config and swaps it in; on any problem the old plan keeps serving.
   * `paths` replaces the configured paths for this reload only (connected mode: a received snapshot
   * is tried from its own file before it becomes the last good one).
   */
  reload(reason: string, paths: readonly string[] = this.#options.configPaths): boolean {
    let next: Plan;
    try {
      next = buildPlan(paths, {
        gatewayName: this.#options.gatewayName,
        providers: this.providers,
        tokens: this.tokens,
        recordShadowDenial: shadowDenialRecorder(this.logger, this.metrics),
        credentials: this.credentials,
        rateLimiters: this.rateLimiters,
      }).plan;
    } catch (err) {
      this.providers.retainOnly(this.plan.providers.values());
      this.tokens.retainOnly(this.plan.tokens);
      void this.rateLimiters.retainOnly([this.plan.rateLimiter]);
      const lines =
        err instanceof ConfigInvalidError ? err.errors.map(formatConfigError) : [(err as Error).message];
      return this.#rejectReload(reason, lines);
    }
    const incompatible = listenersIncompatible(this.plan, next);
    if (incompatible) {
      this.providers.retainOnly(this.plan.providers.values());
      this.tokens.retainOnly(this.plan.tokens);
      void this.rateLimiters.retainOnly([this.plan.rateLimiter]);
      return this.#rejectReload(reason, [incompatible]);
    }
    const previous = this.plan;
    this.plan = next;
    for (const { name, server } of this.#servers) {
      const listener = next.listeners.find((l) => l.spec.name === name);
      if (listener) applyLiveLimits(server, next, listener);
    }
    this.metrics.planInfo.reset();
    this.metrics.planInfo.labels(next.version).set(1);
    this.metrics.reloads.labels('applied').inc();
    this.#reloads.applied++;
    this.#reloads.lastError = null;
    void this.upstreams.retainOnly(next);
    this.providers.retainOnly(next.providers.values());
    this.tokens.retainOnly(next.tokens);
    void this.rateLimiters.retainOnly([next.rateLimiter]);
    this.logger.info({ reason, from: previous.version, to: next.version }, 'config reloaded');
    return true;
  }

  #rejectReload(reason: string, errors: string[]): false {
    this.metrics.reloads.labels('rejected').inc();
    this.#reloads.rejected++;
    this.#reloads.lastError = errors.join('\n');
    this.logger.error(
      { reason, errors, serving: this.plan.version },
      'config rejected: the previous plan keeps serving',
    );
    return false;
  }

  #watch(): void {
    // Watch directories, not files: editors save by renaming, which a file watch would lose.
    const targets = new Map<string, string | null>();
    for (const path of this.#options.configPaths) {
      const full = resolve(path);
      if (statSync(full).isDirectory()) targets.set(full, null);
      else targets.set(dirname(full), basename(full));
    }
    for (const [dir, file] of targets) {
      const watcher = watch(dir, { recursive: file === null, persistent: false }, (_event, changed) => {
        if (file !== null && changed !== file) return;
        this.#scheduleReload('file changed');
      });
      watcher.on('error', (err) => this.logger.warn({ err: err.message, dir }, 'config watch failed'));
      this.#watchers.push(watcher);
    }
  }

  #scheduleReload(reason: string): void {
    if (this.#reloadTimer) clearTimeout(this.#reloadTimer);
    this.#reloadTimer = setTimeout(() => {
      this.#reloadTimer = null;
      this.reload(reason);
    }, 200);
  }

  /**
   * Graceful stop: refuse new connections, let requests in flight finish within the drain
   * timeout (responses carry `Connection: close`), then close what is left.
   */
  async shutdown(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    for (const w of this.#watchers) w.close();
    if (this.#reloadTimer) clearTimeout(this.#reloadTimer);
    const closed = this.#servers.map(({ server }) => new Promise<void>((done) => server.close(() => done())));
    for (const { server } of this.#servers) server.closeIdleConnections();
    const deadline = Date.now() + this.plan.limits.drainTimeoutMs;
    while (this.#active > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
      for (const { server } of this.#servers) server.closeIdleConnections();
    }
    if (this.#active > 0)
      this.logger.warn({ unfinished: this.#active }, 'drain timeout: closing remaining connections');
    for (const { server } of this.#servers) server.closeAllConnections();
    this.#forwardProxy?.close(); // CONNECT tunnels are no longer the server's connections
    await Promise.all(closed);
    await this.analytics?.close(); // before the token keys go: the last uploads are signed with them
    await this.tracing?.close(); // exports the spans still queued
    await this.upstreams.closeAll();
    this.providers.closeAll();
    this.tokens.closeAll();
    this.credentials.close();
    await this.rateLimiters.closeAll();
    if (this.#admin) {
      this.#admin.closeAllConnections();
      await new Promise<void>((done) => this.#admin!.close(() => done()));
    }
    this.logger.info({ plan: this.plan.version }, 'stopped');
  }
}

/** Shadow-mode denials: one log line each and a counter (the request itself goes on). */
function shadowDenialRecorder(logger: Logger, metrics: GatewayMetrics): ShadowDenialRecorder {
  return ({ policy, route, code, detail, requestId }) => {
    metrics.shadowDenials.labels(policy, route, code).inc();
    logger.info({ type: 'shadow', policy, route, code, detail, requestId }, 'shadow deny');
  };
}

function listen(server: Server, port: number, address: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => {
      server.off('error', reject);
      resolvePromise();
    });
  });
}
