import { Counter, type Registry } from 'prom-client';

/**
 * What became of a forward-proxy request: forwarded (response relayed or tunnel opened), denied
 * (not on the allow-list), refused (resolves to a non-public address), rejected (a policy
 * answered: 401, 403, 429…), failed (no answer from the destination, or a bad one).
 */
export type EgressResult = 'forwarded' | 'denied' | 'refused' | 'rejected' | 'failed';

/** The destination label of requests to anything not on the allow-list. */
export const otherDestination = 'other';

/**
 * `gatehouse_egress_requests_total{destination, result}`. Destinations are allow-list entries
 * (`api.stripe.com:443`, `*.githubusercontent.com:443`) or `other`: a bounded set fixed by the config.
 */
export function createEgressMetrics(registry: Registry) {
  const requests = new Counter({
    name: 'gatehouse_egress_requests_total',
    help: 'Forward-proxy requests and CONNECT tunnels, by allow-listed destination and result.',
    labelNames: ['destination', 'result'] as const,
    registers: [registry],
  });
  // Children looked up once: labels() hashes its arguments on every call.
  const children = new Map<string, { inc(): void }>();
  return {
    count(destination: string, result: EgressResult): void {
      const key = `${destination}\u0000${result}`;
      let child = children.get(key);
      if (!child) {
        child = requests.labels(destination, result);
        children.set(key, child);
      }
      child.inc();
    },
  };
}
export type EgressMetrics = ReturnType<typeof createEgressMetrics>;
