import { createServer, type Server } from 'node:http';

/**
 * The small API `gatehouse dev` puts behind the gateway: it answers with what it received, so a
 * newcomer can see what the gateway forwards (canonical path, forwarding headers, request id).
 */
export function startDemoUpstream(port: number, host = '127.0.0.1'): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 65536) chunks.push(c);
    });
    req.on('end', () => {
      const seen = Object.fromEntries(
        Object.entries(req.headers).filter(
          ([name]) => name.startsWith('x-') || name === 'forwarded' || name === 'host',
        ),
      );
      const body = JSON.stringify({
        service: 'demo',
        message: messageFor(req.url ?? ''),
        method: req.method,
        path: req.url,
        headers: seen,
        bodyBytes: size,
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

function messageFor(url: string): string | undefined {
  if (url.startsWith('/hello')) return 'Hello from behind Gatehouse';
  if (url.startsWith('/orders')) return 'Orders: only callers whose token grants demo.read get here';
  return undefined;
}
