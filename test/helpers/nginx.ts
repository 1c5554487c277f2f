import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, chmodSync, constants, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { delimiter, join } from 'node:path';

/** The nginx binary on PATH or at /usr/sbin/nginx, or null. */
export function findNginx(): string | null {
  for (const candidate of [
    ...(process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'nginx')),
    '/usr/sbin/nginx',
  ]) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return null;
}

const inCi = process.env.CI === 'true' || process.env.CI === '1';

/** A `skip` value for node:test: a reason when nginx is missing outside CI, else false (in CI a missing nginx fails). */
export function skipWithoutNginx(): string | false {
  return findNginx() === null && !inCi
    ? 'nginx is not installed (Debian: apt-get install -y nginx); set CI=true to make this a failure'
    : false;
}

export interface RunningNginx {
  output(): string;
  stop(): Promise<void>;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * A real nginx terminating TLS on `listenPort` and proxying plain HTTP to `upstreamPort`, set up the
 * way a long-lived event stream needs it: HTTP/1.1 to the upstream, no response buffering, a read
 * timeout far above the control plane's 15 s heartbeat. `prefix` is a fresh directory it owns.
 */
export async function startTlsNginx(options: {
  prefix: string;
  listenPort: number;
  upstreamPort: number;
  cert: { certPath: string; keyPath: string };
}): Promise<RunningNginx> {
  const binary = findNginx();
  if (binary === null)
    throw new Error(
      'nginx is required in CI and was not found on PATH or at /usr/sbin/nginx: apt-get install -y nginx',
    );
  const { prefix } = options;
  chmodSync(prefix, 0o755);
  // Workers run as `nobody` when the tests run as root: give them copies they may read.
  mkdirSync(join(prefix, 'tls'), { mode: 0o755 });
  const certPath = join(prefix, 'tls', 'lb.crt');
  const keyPath = join(prefix, 'tls', 'lb.key');
  writeFileSync(certPath, readFileSync(options.cert.certPath), { mode: 0o644 });
  writeFileSync(keyPath, readFileSync(options.cert.keyPath), { mode: 0o644 });
  const conf = `
worker_processes 1;
pid nginx.pid;
error_log stderr notice;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path client_body_temp;
  proxy_temp_path proxy_temp;
  fastcgi_temp_path fastcgi_temp;
  uwsgi_temp_path uwsgi_temp;
  scgi_temp_path scgi_temp;
  server {
    listen 127.0.0.1:${options.listenPort} ssl;
    ssl_certificate ${certPath};
    ssl_certificate_key ${keyPath};
    location / {
      proxy_pass http://127.0.0.1:${options.upstreamPort};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-Proto https;
      proxy_buffering off;
      proxy_read_timeout 1h;
      proxy_connect_timeout 2s;
    }
  }
}
`;
  const confPath = join(prefix, 'nginx.conf');
  writeFileSync(confPath, conf);
  const child: ChildProcess = spawn(
    binary,
    ['-p', `${prefix}/`, '-c', confPath, '-e', 'stderr', '-g', 'daemon off;'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited at start:\n${output}`);
    if (await accepts(options.listenPort)) break;
    if (i >= 150) {
      child.kill('SIGKILL');
      throw new Error(`nginx did not start listening:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
