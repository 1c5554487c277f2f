import type { CompiledUpstream } from '../../plan/types.ts';

type Config = NonNullable<CompiledUpstream['outlierDetection']>;

/** The passive-ejection state of a target, kept with it across reloads. */
export interface OutlierState {
  consecutiveFailures: number;
  /** Ejected until this time (ms); 0 or past: not ejected. */
  ejectedUntil: number;
  /** Ejections so far; each lasts base × this, up to the maximum. */
  ejections: number;
  /** Active health: a target the checks took out counts as failing when deciding the cap. */
  healthy: boolean;
}

/**
 * Whether `candidate`, which just reached its failure threshold, may be ejected: while fewer than
 * `maxEjectionPercent` of the targets (rounded down) are ejected; past that, only when every other
 * target is ejected, unhealthy or failing too, so a healthy remainder is never all taken out at once.
 */
export function mayEject(
  candidate: OutlierState,
  targets: readonly OutlierState[],
  config: Config,
  now: number,
): boolean {
  let ejected = 0;
  let othersAllFailing = true;
  for (const t of targets) {
    if (t.ejectedUntil > now) ejected++;
    else if (t !== candidate && t.healthy && t.consecutiveFailures < config.consecutiveFailures)
      othersAllFailing = false;
  }
  const cap = Math.floor((targets.length * config.maxEjectionPercent) / 100);
  return ejected < cap || othersAllFailing;
}

/**
 * Ejects the target: for base × its number of ejections (capped), counting from scratch when its
 * last ejection ended more than the maximum ejection time ago. Returns how long it lasts (ms).
 */
export function eject(target: OutlierState, config: Config, now: number): number {
  if (target.ejections > 0 && now - target.ejectedUntil > config.maxEjectionMs) target.ejections = 0;
  target.ejections++;
  const ms = Math.min(config.baseEjectionMs * target.ejections, config.maxEjectionMs);
  target.ejectedUntil = now + ms;
  target.consecutiveFailures = 0;
  return ms;
}
