import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigInvalidError, formatConfigError } from '../../config/errors.ts';
import type { SubsystemCredentials } from '../../control-plane/security/types.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { GatewayRuntime } from '../runtime.ts';
import { type BackoffOptions, backoffDelay, defaultBackoff } from './backoff.ts';
import { ControlPlaneClient, StreamRefusedError } from './control-plane-client.ts';
import type { ServerSentEvent } from './event-stream-parser.ts';
import {
  discardIncoming,
  lastGoodPath,
  promoteIncoming,
  type ReceivedSnapshot,
  readLastGood,
  writeIncoming,
} from './snapshot-files.ts';

export interface ConnectedGatewayOptions {
  controlPlaneUrl: string;
  /** Holds the identity (security module) and the snapshots; relative paths in resources resolve against it. */
  dataDir: string;
  credentials: SubsystemCredentials;
  logger: Logger;
  /** Where secrets referenced as `{ env: NAME }` are read from. */
  env?: Readonly<Record<string, string | undefined>>;
  backoff?: BackoffOptions;
  connectTimeoutMs?: number;
  /** A stream silent this long is dropped and reconnected (the control plane sends a heartbeat every 15 s). */
  inactivityTimeoutMs?: number;
  maxEventBytes?: number;
  /** Called once, when the first plan is being served (from disk or from the control plane). */
  onServing?: (runtime: GatewayRuntime) => void;
  /** Called by stop() once the gateway is stopped (e.g. to stop the credentials' renewal timer). */
  onStop?: () => void;
}

/** What the gateway last reported, resent on every new stream until delivered. */
interface StatusReport {
  servedVersion: number | null;
  servedHash: string | null;
  planVersion: string | null;
  state: 'serving' | 'rejected';
  version: number;
  error?: string;
}

/**
 * A gateway in connected mode: serves the last good snapshot from disk at once (the control plane
 * may be down), follows the control plane's config stream, compiles each snapshot with the same
 * loader and compiler as local mode (an invalid one is refused and the old plan keeps serving),
 * keeps each applied one on disk, reports what it serves, and reconnects with backoff forever.
 */
export class ConnectedGateway {
  runtime: GatewayRuntime | null = null;
  readonly #options: ConnectedGatewayOptions;
  readonly #client: ControlPlaneClient;
  readonly #abort = new AbortController();
  #served: { version: number; hash: string } | null = null;
  #report: StatusReport | null = null;
  #reportDelivered = true;
  #reporting: Promise<void> = Promise.resolve();
  #connected = false;
  #unreachableLogged = false;
  #loop: Promise<void> | null = null;

  private constructor(options: ConnectedGatewayOptions) {
    this.#options = options;
    this.#client = new ControlPlaneClient({
      baseUrl: options.controlPlaneUrl,
      credentials: options.credentials,
      connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
      inactivityTimeoutMs: options.inactivityTimeoutMs ?? 45_000,
      maxEventBytes: options.maxEventBytes ?? 16 * 1024 * 1024,
      requestTimeoutMs: 10_000,
    });
  }

  /** Starts from the snapshot on disk when there is one, then follows the control plane in the background. */
  static async start(options: ConnectedGatewayOptions): Promise<ConnectedGateway> {
    const gateway = new ConnectedGateway(options);
    await gateway.#startFromDisk();
    gateway.#loop = gateway.#run();
    return gateway;
  }

  get served(): { version: number; hash: string } | null {
    return this.#served ? { ...this.#served } : null;
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** SIGHUP: rebuild from the last good snapshot (e.g. after replacing certificate files). */
  reloadLastGood(reason: string): boolean {
    if (!this.runtime) return false;
    return this.runtime.reload(reason, [lastGoodPath(this.#options.dataDir)]);
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop?.catch(() => {});
    await this.#client.close();
    await this.runtime?.shutdown();
    this.#options.onStop?.();
  }

  get #log(): Logger {
    return this.#options.logger;
  }

  async #startFromDisk(): Promise<void> {
    const lastGood = readLastGood(this.#options.dataDir);
    if (!lastGood) {
      this.#log.info(
        { dataDir: this.#options.dataDir },
        'no snapshot on disk: waiting for the control plane',
      );
      return;
    }
    const error = await this.#startRuntime(lastGood.path);
    if (error === null) {
      this.#served = { version: lastGood.version, hash: lastGood.hash };
      this.#log.info({ version: lastGood.version }, 'serving the last good snapshot from disk');
      this.#setReport({ state: 'serving', version: lastGood.version });
    } else {
      this.#log.error(
        { version: lastGood.version, errors: error.split('\n') },
        'snapshot on disk not usable',
      );
    }
  }

  /** Starts the runtime on a config file; returns null, or why it could not start. */
  async #startRuntime(path: string): Promise<string | null> {
    try {
      this.runtime = await GatewayRuntime.start({
        configPaths: [path],
        gatewayName: this.#options.credentials.identity.name,
        logger: this.#log,
        env: this.#options.env,
        watch: false,
        // Analytics with `auth: control-plane` ships with the gateway's subsystem credentials.
        subsystemCredentials: this.#options.credentials,
      });
    } catch (err) {
      return err instanceof ConfigInvalidError
        ? err.errors.map(formatConfigError).join('\n')
        : (err as Error).message;
    }
    this.#options.onServing?.(this.runtime);
    return null;
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    let attempt = 0;
    while (!signal.aborted) {
      let reason: string;
      try {
        await this.#client.stream({
          knownVersion: this.#served?.version ?? null,
          signal,
          onOpen: () => {
            attempt = 0;
            this.#connected = true;
            this.#unreachableLogged = false;
            this.#log.info({ controlPlane: this.#options.controlPlaneUrl }, 'connected to the control plane');
            if (!this.#reportDelivered) this.#sendReport();
          },
          onEvent: (event) => this.#onEvent(event),
        });
        reason = 'the control plane ended the stream';
      } catch (err) {
        if (signal.aborted) break;
        reason =
          err instanceof StreamRefusedError
            ? err.message
            : `${(err as Error).name}: ${(err as Error).message}`;
      }
      if (this.#connected) {
        this.#connected = false;
        this.#log.warn(
          { reason, serving: this.#served?.version ?? null },
          'disconnected from the control plane',
        );
      } else if (!this.#unreachableLogged) {
        this.#unreachableLogged = true;
        this.#log.warn(
          { reason, serving: this.#served?.version ?? null },
          'control plane unreachable: retrying',
        );
      }
      const delay = backoffDelay(attempt++, this.#options.backoff ?? defaultBackoff);
      this.#log.debug({ delay, attempt }, 'reconnecting');
      await sleep(delay, undefined, { signal }).catch(() => {});
    }
  }

  async #onEvent(event: ServerSentEvent): Promise<void> {
    if (event.event !== 'snapshot') return;
    let snapshot: ReceivedSnapshot;
    try {
      snapshot = parseSnapshot(JSON.parse(event.data));
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'malformed snapshot event ignored');
      return;
    }
    await this.#apply(snapshot);
  }

  async #apply(snapshot: ReceivedSnapshot): Promise<void> {
    const dataDir = this.#options.dataDir;
    if (this.runtime && this.#served?.hash === snapshot.hash) {
      // Same content under a new version (e.g. a restarted control plane): record it, no rebuild.
      if (this.#served.version !== snapshot.version) {
        writeIncoming(dataDir, snapshot);
        promoteIncoming(dataDir);
        this.#served = { version: snapshot.version, hash: snapshot.hash };
      }
      this.#setReport({ state: 'serving', version: snapshot.version });
      return;
    }
    let error: string | null;
    let path: string;
    try {
      path = writeIncoming(dataDir, snapshot);
    } catch (err) {
      this.#rejected(snapshot, `cannot write the snapshot: ${(err as Error).message}`);
      return;
    }
    if (this.runtime) {
      error = this.runtime.reload(`snapshot v${snapshot.version}`, [path])
        ? null
        : (this.runtime.lastReloadError ?? 'rejected');
    } else {
      error = await this.#startRuntime(path);
    }
    if (error !== null) {
      discardIncoming(dataDir);
      this.#rejected(snapshot, error);
      return;
    }
    try {
      promoteIncoming(dataDir);
    } catch (err) {
      // Served, but not kept: a restart would start from the previous snapshot.
      this.#log.error({ err: (err as Error).message, version: snapshot.version }, 'snapshot not saved');
    }
    this.#served = { version: snapshot.version, hash: snapshot.hash };
    this.#log.info(
      { version: snapshot.version, plan: this.runtime?.plan.version },
      `snapshot applied v${snapshot.version}`,
    );
    this.#setReport({ state: 'serving', version: snapshot.version });
  }

  #rejected(snapshot: ReceivedSnapshot, error: string): void {
    this.#log.error(
      { version: snapshot.version, errors: error.split('\n'), serving: this.#served?.version ?? null },
      `snapshot rejected v${snapshot.version}`,
    );
    this.#setReport({ state: 'rejected', version: snapshot.version, error });
  }

  #setReport(fields: { state: 'serving' | 'rejected'; version: number; error?: string }): void {
    this.#report = {
      servedVersion: this.#served?.version ?? null,
      servedHash: this.#served?.hash ?? null,
      planVersion: this.runtime?.plan.version ?? null,
      ...fields,
    };
    this.#reportDelivered = false;
    if (this.#connected) this.#sendReport();
  }

  /** Reports are sent one after another; a failed one is sent again on the next stream. */
  #sendReport(): void {
    this.#reporting = this.#reporting.then(async () => {
      const report = this.#report;
      if (report === null || this.#reportDelivered) return;
      try {
        await this.#client.postStatus(report);
        if (this.#report === report) this.#reportDelivered = true;
      } catch (err) {
        this.#log.warn({ err: (err as Error).message }, 'status report not delivered: resent on reconnect');
      }
    });
  }
}

function parseSnapshot(value: unknown): ReceivedSnapshot {
  const v = value as Partial<ReceivedSnapshot> | null;
  if (
    !v ||
    !Number.isSafeInteger(v.version) ||
    typeof v.hash !== 'string' ||
    !/^[0-9a-f]{1,128}$/.test(v.hash) ||
    !Array.isArray(v.resources)
  )
    throw new Error('a snapshot is { version: integer, hash: hex string, resources: [...] }');
  return v as ReceivedSnapshot;
}
