import { type ConfigError, formatConfigError } from '../../config/errors.ts';
import type { StoredResource, WriteContext } from './types.ts';

/** A validate() that has not answered by then fails the write rather than hold the write lock. */
export const validateTimeoutMs = 30_000;

/** Runs the caller's validate() with a bound on its time; a throw or a timeout rejects the write. */
export async function runValidate(
  validate: NonNullable<WriteContext['validate']>,
  after: readonly StoredResource[],
): Promise<ConfigError[]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => reject(new Error(`store write: validate() did not finish within ${validateTimeoutMs / 1000} s`)),
      validateTimeoutMs,
    );
  });
  try {
    const errors = await Promise.race([Promise.resolve().then(() => validate(after)), timeout]);
    if (!Array.isArray(errors)) throw new TypeError('store write: validate() must return an array of errors');
    return errors;
  } finally {
    clearTimeout(timer);
  }
}

export function invalidMessage(errors: readonly ConfigError[]): string {
  const first = errors
    .slice(0, 3)
    .map((e) =>
      e.line > 0
        ? formatConfigError(e)
        : [e.file, e.path, e.message].filter((part) => part !== '').join(': '),
    )
    .join('; ');
  return errors.length > 3 ? `${first}; and ${errors.length - 3} more` : first;
}
