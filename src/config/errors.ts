/** A problem found in configuration, located as precisely as the source allows. */
export interface ConfigError {
  file: string;
  line: number;
  column: number;
  /** Field path inside the resource, e.g. `spec.listeners[0].port`; empty for the whole document. */
  path: string;
  message: string;
}

export function formatConfigError(e: ConfigError): string {
  const where = `${e.file}:${e.line}:${e.column}`;
  return e.path ? `${where}: ${e.path}: ${e.message}` : `${where}: ${e.message}`;
}

/** `["spec","listeners",0,"port"]` → `spec.listeners[0].port` */
export function formatFieldPath(path: ReadonlyArray<string | number>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${part}` : part;
  }
  return out;
}

/** Thrown by whoever needs a valid config and gets errors: carries them all. */
export class ConfigInvalidError extends Error {
  readonly errors: readonly ConfigError[];
  constructor(errors: readonly ConfigError[]) {
    super(`configuration is invalid:\n${errors.map((e) => `  ${formatConfigError(e)}`).join('\n')}`);
    this.name = 'ConfigInvalidError';
    this.errors = errors;
  }
}
