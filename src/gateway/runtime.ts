import { watch, type FSWatcher, statSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, dirname, resolve } from 'node:path';
import { ConfigInvalidError, formatConfigError } from '../config/errors.ts';
import { loadConfig } from '../config/load.ts';
import { type CompileOptions, compilePlan } from '../plan/compile.ts';
import { ProviderRegistry } from '../identity/providers.ts';
import { TokenIssuerRegistry } from '../identity/token-issuers.ts';
import type { ShadowDenialRecorder } from '../plan/shadow.ts';
import type { Plan } from '../plan/types.ts';
import type { Logger } from '../telemetry/logger.ts';
import { createGatewayMetrics, type GatewayMetrics } from '../telemetry/metrics.ts';
import { createAdminServer } from './admin.ts';
import { withDecisionEndpoint } from './decision.ts';
import { createRequestHandler, type GatewayState } from './handler.ts';
import { withJwksEndpoint } from './jwks-endpoint.ts';
import { applyLiveLimits, createListenerServer, listenersIncompatible } from './listeners.ts';
import { PoolRegistry } from './pools.ts';
import { createUpgradeHandler } from './upgrade.ts';

export interface GatewayOptions {
  configPaths: readonly string[];
  gatewayName?: string;
  logger: Logger;
  /** Where secrets referenced as `{ env: NAME }` are read from. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Reload when a config file changes (debounced). */
  watch?: boolean;
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
  readonly pools = new PoolRegistry();
  readonly providers: ProviderRegistry;
  /** Token issuers (signing keys, minted-token caches): like providers, they outlive plans. */
  readonly tokens: TokenIssuerRegistry;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  draining = false;
  readonly #options: GatewayOptions;
  readonly #servers: Array<{ name: string; server: Server }> = [];
  #admin: Server | null = null;
  #watchers: FSWatcher[] = [];
  #reloadTimer: NodeJS.Timeout | null = null;
  readonly #reloads = { applied: 0, rejected: 0, lastError: null as string | null };
  #active = 0;

  private constructor(
    plan: Plan,
    options: GatewayOptions,
    providers: ProviderRegistry,
    metrics: GatewayMetrics,
    tokens: TokenIssuerRegistry,
  ) {
    this.plan = plan;
    this.providers = providers;
    this.tokens = tokens;
    this.metrics = metrics;
    this.#options = options;
    this.logger = options.logger;
    this.metrics.planInfo.labels(plan.version).set(1);
    this.metrics.setInFlightSource(() => this.#active);
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
    const metrics = createGatewayMetrics();
    const recordShadowDenial = shadowDenialRecorder(logger, metrics);
    let plan: Plan;
    try {
      plan = buildPlan(options.configPaths, {
        gatewayName: options.gatewayName,
        providers,
        tokens,
        recordShadowDenial,
      }).plan;
    } catch (err) {
      providers.closeAll();
      tokens.closeAll();
      throw err;
    }
    const runtime = new GatewayRuntime(plan, options, providers, metrics, tokens);
    await runtime.#listen();
    if (options.watch) runtime.#watch();
    return runtime;
  }

  async #listen(): Promise<void> {
    const plan = this.plan;
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
          res.once('close', () => this.#active--);
          handle(req, res);
        },
      );
      server.on('upgrade', createUpgradeHandler(this, { name, protocol: listener.spec.protocol }));
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

  /** Builds a new plan from the config and swaps it in; on any problem the old plan keeps serving. */
  reload(reason: string): boolean {
    let next: Plan;
    try {
      next = buildPlan(this.#options.configPaths, {
        gatewayName: this.#options.gatewayName,
        providers: this.providers,
        tokens: this.tokens,
        recordShadowDenial: shadowDenialRecorder(this.logger, this.metrics),
      }).plan;
    } catch (err) {
      this.providers.retainOnly(this.plan.providers.values());
      this.tokens.retainOnly(this.plan.tokens);
      const lines =
        err instanceof ConfigInvalidError ? err.errors.map(formatConfigError) : [(err as Error).message];
      return this.#rejectReload(reason, lines);
    }
    const incompatible = listenersIncompatible(this.plan, next);
    if (incompatible) {
      this.providers.retainOnly(this.plan.providers.values());
      this.tokens.retainOnly(this.plan.tokens);
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
    void this.pools.retainOnly(next);
    this.providers.retainOnly(next.providers.values());
    this.tokens.retainOnly(next.tokens);
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
    await Promise.all(closed);
    await this.pools.closeAll();
    this.providers.closeAll();
    this.tokens.closeAll();
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
