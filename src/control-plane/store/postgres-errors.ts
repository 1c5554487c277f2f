/** Why a PostgreSQL call failed, in words an operator can act on; `connectionLost` says a retry may help. */
export class PostgresStoreError extends Error {
  readonly connectionLost: boolean;
  constructor(message: string, options: { cause: unknown; connectionLost: boolean }) {
    super(message, { cause: options.cause });
    this.name = 'PostgresStoreError';
    this.connectionLost = options.connectionLost;
  }
}

// SQLSTATE classes 08 (connection exception) and 57P0x (the server shut the session down, e.g.
// pg_terminate_backend), node's socket errors, and pg's own words for a dead connection.
const lostCodes = new Set([
  '57P01',
  '57P02',
  '57P03',
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
]);
const lostMessage =
  /Connection terminated|not queryable|Query read timeout|timeout exceeded when trying to connect|connection error|ECONNRESET|ECONNREFUSED/i;

export function isConnectionLost(err: unknown): boolean {
  if (err instanceof PostgresStoreError) return err.connectionLost;
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  if (typeof e.code === 'string' && (lostCodes.has(e.code) || e.code.startsWith('08'))) return true;
  return typeof e.message === 'string' && lostMessage.test(e.message);
}

export function wrapPgError(where: string, what: string, err: unknown): Error {
  if (err instanceof PostgresStoreError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new PostgresStoreError(`PostgreSQL store (${where}): ${what}: ${message}`, {
    cause: err,
    connectionLost: isConnectionLost(err),
  });
}

/** `postgres://user@host:port/db`: the URL without its password, for messages and logs. */
export function describePgUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError('the PostgreSQL store URL is not a valid URL');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new TypeError(`the PostgreSQL store URL must start with postgres:// (got ${parsed.protocol}//)`);
  }
  const user = parsed.username ? `${decodeURIComponent(parsed.username)}@` : '';
  return `${parsed.protocol}//${user}${parsed.host}${parsed.pathname}`;
}
