/**
 * Node/V8 flags the gateway process is started with (bin/gatehouse.ts shebang, npm scripts, tests,
 * bench). They must be on the command line: set from inside the process they come too late.
 *
 * --no-allocation-site-pretenuring: V8 learns, from objects that survive start-up (modules, config,
 * plan), to allocate some short-lived per-request objects of the proxy path straight in the old
 * generation; they die there and cost 8–15 ms scavenges and frequent full GCs. Off, the gateway
 * uses 15–30 µs less CPU per proxied request and its p99 halves (bench/RESULTS.md).
 */
export const gatewayNodeFlags = ['--no-allocation-site-pretenuring'] as const;
