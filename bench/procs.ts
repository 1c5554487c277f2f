// Child processes of the benchmark: start, wait until ready, measure CPU time, and always clean up.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Text written on stdout (only for children whose stdout is piped to us). */
  stdout(): string;
  stderr(): string;
}

const children = new Set<Child>();

/** A port free right now on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface SpawnOptions {
  cwd?: string;
  /** Send stdout (and stderr) to this file instead of piping it to us. */
  logFile?: string;
  /** Keep stdin as a pipe the child can watch to notice that we are gone. */
  stdinPipe?: boolean;
}

export function start(name: string, command: string, args: string[], options: SpawnOptions = {}): Child {
  let fd: number | null = null;
  if (options.logFile) fd = openSync(options.logFile, 'w');
  const proc = spawn(command, args, {
    cwd: options.cwd,
    env: process.env,
    stdio: [options.stdinPipe ? 'pipe' : 'ignore', fd ?? 'pipe', fd ?? 'pipe'],
  });
  if (fd !== null) closeSync(fd);
  let out = '';
  let err = '';
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
    if (out.length < 1_000_000) out += d;
  });
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
    if (err.length < 1_000_000) err += d;
  });
  // A child that exits early must not take the runner down with EPIPE on its stdin.
  proc.stdin?.on('error', () => {});
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once('exit', (code, signal) => resolve({ code, signal }));
    proc.once('error', () => resolve({ code: -1, signal: null }));
  });
  const child: Child = {
    name,
    proc,
    exited,
    stdout: () => out,
    stderr: () => err,
  };
  children.add(child);
  exited.then(() => children.delete(child));
  return child;
}

function alive(child: Child): boolean {
  return child.proc.exitCode === null && child.proc.signalCode === null && child.proc.pid !== undefined;
}

function describeExit(child: Child, extra = ''): string {
  const { exitCode, signalCode } = child.proc;
  return `${child.name} exited (${signalCode ?? `code ${exitCode}`}) before it was ready${extra}\n${child
    .stderr()
    .slice(-4000)}`;
}

/** Resolves once `ready()` returns a value; rejects if the child exits first or after `ms`. */
export async function waitUntil<T>(
  child: Child,
  ready: () => T | null | Promise<T | null>,
  ms: number,
  what: string,
  logFile?: string,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await ready();
    if (value !== null) return value;
    if (!alive(child)) {
      const log = logFile ? `\n${safeRead(logFile).slice(-4000)}` : '';
      throw new Error(describeExit(child, log));
    }
    if (Date.now() > deadline) throw new Error(`${child.name}: timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Waits for a `{"msg":"ready","port":N}` line on a piped stdout. */
export function waitForReadyPort(child: Child, ms = 10_000): Promise<number> {
  return waitUntil(
    child,
    () => {
      const line = child
        .stdout()
        .split('\n')
        .find((l) => l.includes('"msg":"ready"'));
      return line ? (JSON.parse(line) as { port: number }).port : null;
    },
    ms,
    'its ready line',
  );
}

/** Waits until a line matching `pattern` appears in the child's log file. */
export function waitForLogLine(child: Child, logFile: string, pattern: RegExp, ms: number): Promise<string> {
  return waitUntil(
    child,
    () =>
      safeRead(logFile)
        .split('\n')
        .find((l) => pattern.test(l)) ?? null,
    ms,
    String(pattern),
    logFile,
  );
}

/** Stops one child: SIGTERM, then SIGKILL after `graceMs`. */
export async function stop(child: Child, graceMs = 5_000): Promise<void> {
  if (!alive(child)) return;
  child.proc.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (alive(child)) child.proc.kill('SIGKILL');
  }, graceMs);
  await child.exited;
  clearTimeout(timer);
}

/** Stops every child still running, politely first. */
export async function stopAll(graceMs = 5_000): Promise<void> {
  await Promise.all([...children].map((c) => stop(c, graceMs)));
}

/** Last resort, synchronous (for process 'exit'): SIGKILL whatever is left. */
export function killAllNow(): void {
  for (const child of children) {
    if (alive(child)) child.proc.kill('SIGKILL');
  }
}

const ticksPerSecond = 100; // USER_HZ on Linux; /proc reports CPU time in these ticks.

/** utime + stime of one process in milliseconds, or null without /proc. */
function cpuMsOf(pid: number): number | null {
  const stat = safeRead(`/proc/${pid}/stat`);
  if (!stat) return null;
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / ticksPerSecond;
}

/**
 * CPU milliseconds per thread name of one process (main thread, libuv pool, V8 GC helpers, …); the
 * main thread is keyed "main" whatever its name, and its system time alone "main in kernel".
 */
export function threadCpuMs(pid: number | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (pid === undefined) return out;
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    const stat = safeRead(`/proc/${pid}/task/${tid}/stat`);
    if (!stat) continue;
    const name = Number(tid) === pid ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ms = ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond;
    out.set(name, (out.get(name) ?? 0) + ms);
    // The main thread's time in the kernel too (included in "main"): syscalls vs JavaScript.
    if (name === 'main') out.set('main in kernel', (Number(fields[12]) * 1000) / ticksPerSecond);
  }
  return out;
}

/** Direct children of a process (nginx workers of the master). */
function childPids(pid: number): number[] {
  const found: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return found;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = safeRead(`/proc/${entry}/stat`);
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) found.push(Number(entry));
  }
  return found;
}

/** CPU milliseconds used so far by a process and its direct children (null without /proc). */
export function cpuMs(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  const own = cpuMsOf(pid);
  if (own === null) return null;
  let total = own;
  for (const c of childPids(pid)) total += cpuMsOf(c) ?? 0;
  return total;
}

/** Resident memory of a process and its direct children, in MiB (null without /proc). */
export function rssMiB(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  const read = (p: number) => {
    const m = /VmRSS:\s+(\d+) kB/.exec(safeRead(`/proc/${p}/status`));
    return m ? Number(m[1]) / 1024 : 0;
  };
  const own = safeRead(`/proc/${pid}/status`);
  if (!own) return null;
  return read(pid) + childPids(pid).reduce((sum, c) => sum + read(c), 0);
}
