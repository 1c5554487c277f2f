import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, type RunningProcess, runCli, tempConfigDir, writeConfig } from './process.ts';

export type TestRole = 'viewer' | 'editor' | 'admin';

export interface TestOperator {
  name: string;
  roles: Array<{ namespace: string; role: TestRole }>;
}

export interface TestControlPlane {
  url: string;
  port: number;
  /** The temp dir holding the config and the sqlite store (removed by stop()). */
  dir: string;
  dbPath: string;
  /** The bearer token of each operator, by name. */
  tokens: Record<string, string>;
  proc: RunningProcess;
  /** fetch against the control plane as `operator` (by name; none → no Authorization). */
  call(
    method: string,
    path: string,
    options?: { as?: string; token?: string; body?: unknown; headers?: Record<string, string> },
  ): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }>;
  /** `gatehouse <args>` against this control plane as `operator`, to completion. */
  cli(args: string[], as?: string | null): Promise<{ code: number | null; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

export const defaultOperators: TestOperator[] = [
  { name: 'root', roles: [{ namespace: '*', role: 'admin' }] },
];

/**
 * Starts `gatehouse control-plane` as a real process on a free port with an sqlite store in a temp
 * dir, one admin token per operator (random; the config holds their sha256), and waits for ready.
 * `spec` adds YAML lines under the ControlPlane's spec (indented by two spaces); `extraYaml` adds
 * documents to the config file (e.g. an IdentityProvider for operator JWTs).
 */
export async function startControlPlane(
  options: {
    operators?: TestOperator[];
    spec?: string;
    extraYaml?: string;
    env?: Record<string, string>;
  } = {},
): Promise<TestControlPlane> {
  const operators = options.operators ?? defaultOperators;
  const dir = tempConfigDir('gatehouse-cp-');
  const port = await freePort();
  const tokens: Record<string, string> = {};
  const tokenLines = operators.map((o) => {
    const token = randomBytes(24).toString('base64url');
    tokens[o.name] = token;
    const sha = createHash('sha256').update(token).digest('hex');
    const roles = o.roles.map((r) => `{ namespace: '${r.namespace}', role: ${r.role} }`).join(', ');
    return `      - { name: ${o.name}, sha256: ${sha}, roles: [${roles}] }`;
  });
  const yaml = `apiVersion: gatehouse.dev/v1
kind: ControlPlane
metadata: { name: test }
spec:
  listen: { address: 127.0.0.1, port: ${port} }
  dataDir: ./data
  operators:
    tokens:
${tokenLines.join('\n')}
${options.spec ?? ''}
${options.extraYaml ? `---\n${options.extraYaml}` : ''}`;
  writeConfig(dir, 'control-plane.yaml', yaml);
  const proc = runCli(['control-plane', '--config', join(dir, 'control-plane.yaml')], options.env ?? {});
  try {
    await proc.waitFor(/"msg":"control plane ready"/, 20_000);
  } catch (err) {
    await proc.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const url = `http://127.0.0.1:${port}`;
  const tokenOf = (as: string | undefined | null) => {
    if (as === undefined || as === null) return undefined;
    const t = tokens[as];
    if (t === undefined) throw new Error(`no test operator ${as}`);
    return t;
  };
  return {
    url,
    port,
    dir,
    dbPath: join(dir, 'data', 'control-plane.db'),
    tokens,
    proc,
    async call(method, path, { as, token, body, headers = {} } = {}) {
      const auth = token ?? tokenOf(as);
      const res = await fetch(`${url}${path}`, {
        method,
        headers: {
          ...(auth ? { authorization: `Bearer ${auth}` } : {}),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...headers,
        },
        ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(15_000),
      });
      const text = await res.text();
      let parsed: Record<string, unknown> = {};
      try {
        parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
      } catch {
        parsed = { text };
      }
      return { status: res.status, headers: res.headers, body: parsed };
    },
    async cli(args, as = 'root') {
      const env: Record<string, string> = { GATEHOUSE_SERVER: url };
      const token = tokenOf(as);
      env.GATEHOUSE_TOKEN = token ?? '';
      const p = runCli(args, env);
      const { code } = await p.exited;
      return { code, stdout: p.stdout(), stderr: p.stderr() };
    },
    async stop() {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
