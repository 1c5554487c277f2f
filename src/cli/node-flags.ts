/**
 * Node/V8 flags the gateway process is started with (bin/gatehouse.ts shebang, npm scripts, tests,
 * bench). They must be on the command line: set from inside the process they come too late.
 *
 * --no-allocation-site-pretenuring: V8 learns, from objects that survive start-up (modules, config,
 * plan), to allocate some short-lived per-request objects of the proxy path straight in the old
 * generation; they die there and cost 8–15 ms scavenges and frequent full GCs. Off, the gateway
 * uses 15–30 µs less CPU per proxied request and its p99 halves (bench/RESULTS.md).
 *
 * --heap-growing-percent=300: the old generation may grow to 4× what survived the last full GC (V8's
 * own maximum, which it picks under load) before the next. V8 otherwise recomputes that factor from
 * the old-generation allocation rate it measured lately; measured over a quiet spell (start-up before
 * traffic, a lull) it comes out at its minimum, 1.1, and the limit lands less than a young generation
 * (32–64 MiB under load) above the live heap — below which V8 starts marking at once. The gateway then
 * marks its whole old generation about once a second for as long as the load lasts (seen with
 * --trace-gc-verbose: "factor 1.1 … speed_ratio=1108"; 16–17 full GCs in a 20 s round of load, 0 for an
 * identical process that escaped the trap). The cost is a larger old generation between full GCs,
 * bounded by V8 at halfway to the heap's maximum (in bench/ RSS did not grow: the young generation,
 * 2 × 64 MiB under load, dominates it).
 */
export const gatewayNodeFlags = ['--no-allocation-site-pretenuring', '--heap-growing-percent=300'] as const;
