import type { Logger } from '../telemetry/logger.ts';

/**
 * SIGTERM / SIGINT: run `stop` (drain, close), then exit 0, or 1 when it fails. `boundMs` is a
 * last bound whatever hangs (a log write to a stdout nobody reads, a stuck socket).
 */
export function exitOnStopSignals(logger: Logger, boundMs: () => number, stop: () => Promise<unknown>): void {
  const onSignal = (signal: string) => {
    logger.info({ signal }, 'shutting down');
    setTimeout(() => process.exit(1), boundMs()).unref();
    stop().then(
      () => {
        logger.flush();
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        logger.flush();
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
}
