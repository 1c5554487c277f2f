import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { formatConfigError } from '../config/errors.ts';
import { loadConfig } from '../config/load.ts';
import { createAnalyticsModule } from '../analytics/module.ts';
import { createDistributionModule } from '../control-plane/distribution/module.ts';
import { type ResolvedControlPlane, resolveControlPlane } from '../control-plane/options.ts';
import { createSecurityModule } from '../control-plane/security/module.ts';
import type { ControlPlaneModule } from '../control-plane/routes.ts';
import {
  controlPlaneContext,
  type RunningControlPlane,
  type StartControlPlaneOptions,
  startControlPlane,
} from '../control-plane/server.ts';
import { openStore } from '../control-plane/store/open.ts';
import type { ResourceStore } from '../control-plane/store/types.ts';
import { exitOnStopSignals } from './signals.ts';
import { createLogger, type Logger } from '../telemetry/logger.ts';

const usage = 'usage: gatehouse control-plane --config <file|dir>... [--name <ControlPlane name>]\n';

/** `gatehouse control-plane --config <file|dir>`: the admin API (and every part built in) on one port. */
export async function runControlPlane(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { config: { type: 'string', short: 'c', multiple: true }, name: { type: 'string' } },
  });
  if (!values.config?.length) {
    process.stderr.write(usage);
    return 2;
  }
  const loaded = loadConfig(values.config);
  const resolved =
    loaded.errors.length === 0 ? resolveControlPlane(loaded.resources, process.env, values.name) : null;
  const errors = resolved && !resolved.ok ? resolved.errors : loaded.errors;
  if (!resolved?.ok) {
    process.stderr.write(
      `${errors.map(formatConfigError).join('\n')}\ncontrol plane not started: configuration is invalid\n`,
    );
    return 1;
  }
  const logger = createLogger({ name: 'gatehouse-control-plane' });
  const booted = await bootControlPlane(resolved.value, logger);
  if (!booted.ok) {
    process.stderr.write(`control plane not started: ${booted.message}\n`);
    logger.flush();
    return 1;
  }
  const { running, store } = booted;
  exitOnStopSignals(
    logger,
    () => 10_000,
    () => running.close().then(() => store.close()),
  );
  return -1;
}

export type BootedControlPlane =
  | { ok: true; running: RunningControlPlane; store: ResourceStore }
  | { ok: false; message: string };

/**
 * Opens the store and starts the server with every part built in: security (when `spec.security`
 * is set; its TLS options go to the listener), distribution, analytics (when enabled). Used by
 * `gatehouse control-plane` and `gatehouse dev`.
 */
export async function bootControlPlane(
  resolved: ResolvedControlPlane,
  logger: Logger,
): Promise<BootedControlPlane> {
  const { server: config, store: storeSpec, spec } = resolved;
  let store: ResourceStore;
  try {
    if (storeSpec.backend === 'sqlite') mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    store = await openStore(storeSpec);
  } catch (err) {
    return { ok: false, message: `cannot open the ${storeSpec.backend} store: ${(err as Error).message}` };
  }
  const modules: ControlPlaneModule[] = [];
  try {
    // mtls (the CA certifies the listener) or an operator-supplied certificate: the public URL is https.
    const https =
      spec.security !== undefined && (spec.security.mode === 'mtls' || spec.security.tls !== undefined);
    const ctx = controlPlaneContext(config, store, logger, https);
    let tls: StartControlPlaneOptions['tls'];
    let revokeGateway: ((id: string) => Promise<boolean>) | undefined;
    if (spec.security !== undefined) {
      const security = await createSecurityModule(ctx, spec.security);
      modules.push(security);
      tls = security.tlsOptions();
      // Deregistration through the security module refuses the gateway at once, not after its cache.
      revokeGateway = (id) => security.revokeGateway(id);
    }
    modules.push(createDistributionModule(ctx, revokeGateway ? { revokeGateway } : {}));
    if (spec.analytics?.enabled) modules.push(await createAnalyticsModule(ctx, spec.analytics));
    const running = await startControlPlane({
      config,
      store,
      logger,
      modules,
      context: ctx,
      ...(tls ? { tls } : {}),
    });
    logger.info(
      {
        url: running.url,
        publicUrl: running.context.publicUrl,
        store: store.backend,
        modules: ['api', ...modules.map((m) => m.name)],
      },
      'control plane ready',
    );
    return { ok: true, running, store };
  } catch (err) {
    for (const m of modules) await m.close?.();
    await store.close();
    return { ok: false, message: (err as Error).message };
  }
}
