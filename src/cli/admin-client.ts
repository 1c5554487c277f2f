import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';

/** The flags every admin command shares. */
export const adminFlags = {
  server: { type: 'string' },
  token: { type: 'string' },
  ca: { type: 'string' },
} as const;

export interface AdminClient {
  server: string;
  /** Whether a token is sent (for the message of a 401). */
  hasToken: boolean;
  request(method: string, path: string, body?: unknown): Promise<AdminAnswer>;
  close(): Promise<void>;
}

export interface AdminAnswer {
  status: number;
  /** Parsed JSON (problem+json for refusals); null when the body is empty or not JSON. */
  body: Record<string, unknown> | null;
}

/** A refusal or failure with the one-line message to print. */
export class AdminError extends Error {
  readonly status: number;
  constructor(message: string, status = 0) {
    super(message);
    this.status = status;
  }
}

const maxAnswerBytes = 64 * 1024 * 1024;

/** `--server` (GATEHOUSE_SERVER, default http://127.0.0.1:9400), `--token` (GATEHOUSE_TOKEN), `--ca` for https. */
export function adminClient(
  values: { server?: string | undefined; token?: string | undefined; ca?: string | undefined },
  env: Readonly<Record<string, string | undefined>> = process.env,
): AdminClient {
  const server = (values.server ?? env.GATEHOUSE_SERVER ?? 'http://127.0.0.1:9400').replace(/\/+$/, '');
  const token = values.token || env.GATEHOUSE_TOKEN || undefined;
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new AdminError(`--server ${server} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new AdminError(`--server ${server} must be http(s)://`);
  let ca: string | undefined;
  if (values.ca !== undefined) {
    try {
      ca = readFileSync(values.ca, 'utf8');
    } catch (err) {
      throw new AdminError(
        `cannot read --ca ${values.ca}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  }
  const dispatcher = new Agent({
    connect: { timeout: 10_000, ...(ca ? { ca } : {}) },
    headersTimeout: 60_000,
    bodyTimeout: 60_000,
  });
  return {
    server,
    hasToken: token !== undefined,
    async request(method, path, body) {
      const headers: Record<string, string> = { accept: 'application/json, application/problem+json' };
      if (token) headers.authorization = `Bearer ${token}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      let answer: Awaited<ReturnType<typeof request>>;
      try {
        answer = await request(`${server}${path}`, {
          method: method as 'GET',
          headers,
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          dispatcher,
        });
      } catch (err) {
        const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
        throw new AdminError(
          `cannot reach the control plane at ${server}: ${e.code ?? e.cause?.code ?? ''} ${e.message}`.replace(
            / +/g,
            ' ',
          ),
        );
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of answer.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > maxAnswerBytes) {
          answer.body.destroy();
          throw new AdminError(`the control plane at ${server} answered more than ${maxAnswerBytes} bytes`);
        }
        chunks.push(chunk);
      }
      const text = Buffer.concat(chunks).toString('utf8');
      let parsed: Record<string, unknown> | null = null;
      try {
        const value: unknown = text ? JSON.parse(text) : null;
        parsed = value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : null;
      } catch {
        parsed = null;
      }
      return { status: answer.statusCode, body: parsed };
    },
    close: () => dispatcher.close(),
  };
}

/** The one line to print for a refusal (anything but 2xx), by status and problem code. */
export function refusalMessage(answer: AdminAnswer, server: string, hadToken: boolean): string {
  const p = answer.body ?? {};
  const detail = typeof p.detail === 'string' ? p.detail : '';
  const code = typeof p.code === 'string' ? p.code : '';
  switch (answer.status) {
    case 401:
      return hadToken && code !== 'unauthenticated'
        ? `not authenticated: the control plane at ${server} does not accept this token${detail ? ` (${detail})` : ''}`
        : 'not authenticated: pass --token or set GATEHOUSE_TOKEN';
    case 403: {
      const role = typeof p.requiredRole === 'string' ? p.requiredRole : null;
      const ns = typeof p.namespace === 'string' ? p.namespace : null;
      if (role)
        return `forbidden: this needs role ${role} ${ns === null ? 'in some namespace' : ns === '*' ? 'in every namespace (*)' : `in namespace ${ns}`}${detail ? ` (${detail})` : ''}`;
      return `forbidden: ${detail || 'access denied'}`;
    }
    case 409:
      if (code === 'conflict') {
        const sent = p.resourceVersion ?? '?';
        const now = p.currentResourceVersion ?? 'deleted';
        return `changed by someone else since you read it (resourceVersion ${sent}, now ${now}): get it again and retry`;
      }
      return detail || 'already exists';
    case 404:
      return detail ? `not found: ${detail}` : 'not found';
    case 503:
      return `the control plane cannot answer now: ${detail || code || 'unavailable'}`;
    default:
      return `the control plane refused (${answer.status}${code ? ` ${code}` : ''}): ${detail || 'no detail'}`;
  }
}

/** `spec.rules[0].path` → `['spec', 'rules', 0, 'path']` (for ResourceSource.locate). */
export function parseFieldPath(path: string): Array<string | number> {
  const out: Array<string | number> = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) {
    if (m[2] !== undefined) out.push(Number(m[2]));
    else out.push(m[1]!);
  }
  return out;
}

/** `12s`, `5m`, `3h`, `2d` since an ISO time. */
export function age(iso: unknown, now = Date.now()): string {
  const at = typeof iso === 'string' ? Date.parse(iso) : Number.NaN;
  if (Number.isNaN(at)) return '?';
  const s = Math.max(0, Math.floor((now - at) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** Columns padded to the widest cell. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows)
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]! + 3)))
        .join('')
        .trimEnd(),
    )
    .join('\n');
}

/**
 * Runs a command's body with an admin client made from its flags: an AdminError (unreachable
 * server, bad flags, an oversized answer) is printed as its one line and the command exits 1.
 */
export async function withAdminClient(
  values: Parameters<typeof adminClient>[0],
  body: (client: AdminClient) => Promise<number>,
): Promise<number> {
  let client: AdminClient | null = null;
  try {
    client = adminClient(values);
    return await body(client);
  } catch (err) {
    if (err instanceof AdminError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    await client?.close();
  }
}
