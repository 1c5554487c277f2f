import { type Kind, kinds } from '../../config/schemas/index.ts';

/** The kinds the admin API serves: every kind but ControlPlane (which configures the process itself). */
export const apiKinds = kinds.filter((k) => k !== 'ControlPlane');

/** `APIRule` → `apirules`: lowercase plural, as in the URL paths. */
export function pluralOf(kind: Kind): string {
  const lower = kind.toLowerCase();
  return lower.endsWith('y') ? `${lower.slice(0, -1)}ies` : `${lower}s`;
}

const byName = new Map<string, Kind>();
for (const kind of apiKinds) {
  byName.set(pluralOf(kind), kind);
  byName.set(kind.toLowerCase(), kind);
}

/** A kind by plural (`apirules`), singular (`apirule`) or name (`APIRule`); null when unknown. */
export function kindNamed(name: string): Kind | null {
  return byName.get(name.toLowerCase()) ?? null;
}
