import Type from 'typebox';

const units = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const durationPattern = '^[0-9]+(ms|s|m|h)$';

/** A duration written as a number and a unit: `500ms`, `30s`, `2m`, `1h`. */
export function Duration(description: string, defaultValue?: string) {
  return Type.String({
    pattern: durationPattern,
    description: `${description} A number followed by ms, s, m or h.`,
    ...(defaultValue === undefined ? {} : { default: defaultValue }),
  });
}

/** Milliseconds in a duration that has passed schema validation. */
export function toMillis(duration: string): number {
  const match = /^([0-9]+)(ms|s|m|h)$/.exec(duration);
  if (!match) throw new TypeError(`not a duration: ${duration}`);
  return Number(match[1]) * units[match[2] as keyof typeof units];
}
