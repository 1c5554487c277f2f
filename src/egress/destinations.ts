import { isIP } from 'node:net';

/** Ports a pattern without a port allows: HTTP's and HTTPS's. */
const defaultPorts: readonly number[] = [80, 443];

/** One entry of `forwardProxy.allow`, compiled. */
interface AllowEntry {
  /** Exact host, or the suffix after `*` (`.example.com`) for a wildcard. */
  readonly host: string;
  readonly wildcard: boolean;
  readonly ports: readonly number[];
  /** The entry as written (normalised), used as the metrics label of what it matches. */
  readonly label: string;
}

/** The allow-list of the forward proxy: which host:port destinations callers may reach. */
export interface DestinationList {
  /**
   * The label of the entry allowing `host:port` (exact entries win over wildcards, longer wildcards
   * over shorter), or null when none does. `host` is lowercase, without a trailing dot; IPv6
   * literals keep their brackets.
   */
  match(host: string, port: number): string | null;
}

const entryPattern = /^(\*\.)?([a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(:(\d{1,5}))?$/;

/**
 * Compiles `forwardProxy.allow`. `api.stripe.com:443` allows that host on that port; without a port
 * an entry allows ports 80 and 443; `*.example.com` allows every name under example.com (at any
 * depth), not example.com itself. Throws TypeError naming the entries that are not valid.
 */
export function compileDestinations(patterns: readonly string[]): DestinationList {
  const exact = new Map<string, AllowEntry>();
  const wildcards: AllowEntry[] = [];
  const invalid: string[] = [];
  for (const pattern of patterns) {
    const match = entryPattern.exec(pattern.toLowerCase());
    const port = match?.[5] === undefined ? null : Number(match[5]);
    const host = match?.[2];
    const wildcard = match?.[1] !== undefined;
    if (!match || host === undefined || (port !== null && (port < 1 || port > 65535))) {
      invalid.push(pattern);
      continue;
    }
    if (host.startsWith('[') && (wildcard || isIP(host.slice(1, -1)) !== 6)) {
      invalid.push(pattern);
      continue;
    }
    const ports = port === null ? defaultPorts : [port];
    if (wildcard) {
      wildcards.push({ host: `.${host}`, wildcard, ports, label: pattern.toLowerCase() });
      continue;
    }
    for (const p of ports) exact.set(`${host}:${p}`, { host, wildcard, ports: [p], label: `${host}:${p}` });
  }
  if (invalid.length > 0) throw new TypeError(`not a host pattern: ${invalid.join(', ')}`);
  wildcards.sort((a, b) => b.host.length - a.host.length);
  return {
    match(host, port) {
      const found = exact.get(`${host}:${port}`);
      if (found) return found.label;
      // A wildcard names DNS names; `*.0.0.1` must not match the address 10.0.0.1.
      if (host.startsWith('[') || isIP(host) !== 0) return null;
      for (const entry of wildcards) {
        if (!entry.ports.includes(port)) continue;
        if (host.length > entry.host.length && host.endsWith(entry.host))
          return entry.ports.length === 1 ? entry.label : `${entry.label}:${port}`;
      }
      return null;
    },
  };
}
