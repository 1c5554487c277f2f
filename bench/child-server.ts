import type { Server } from 'node:http';

/**
 * How every helper process of the benchmarks serves: listen on 127.0.0.1, print one JSON line
 * {"msg":"ready","port":N} on stdout, stop on SIGTERM/SIGINT and, with `exitWithStdin`, when stdin
 * closes (the runner went away). `cleanup` runs before the exit (e.g. closing a client pool).
 */
export function serveAsBenchChild(
  server: Server,
  options: { port: number; exitWithStdin: boolean; cleanup?: () => Promise<unknown> },
): void {
  server.listen(options.port, '127.0.0.1', () => {
    const { port } = server.address() as { port: number };
    process.stdout.write(`${JSON.stringify({ msg: 'ready', port })}\n`);
  });
  const stop = () => {
    server.closeAllConnections();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    Promise.all([closed, options.cleanup?.()]).finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 1_000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  if (options.exitWithStdin) process.stdin.on('end', stop).on('error', stop).resume();
}
