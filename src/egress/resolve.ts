import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { AddressPolicy, RefusedKind } from './addresses.ts';

/** Resolves a name to every address it has (the shape of `dns.promises.lookup` with `all: true`). */
export type Lookup = (host: string) => Promise<ReadonlyArray<{ address: string; family: number }>>;

export const systemLookup: Lookup = (host) => dnsLookup(host, { all: true, order: 'verbatim' });

export type Resolution =
  /** Connect to exactly this address (never resolve the name again: that would reopen the check). */
  | { readonly ok: true; readonly address: string; readonly family: 4 | 6 }
  | { readonly ok: false; readonly reason: 'refused'; readonly kind: RefusedKind }
  | { readonly ok: false; readonly reason: 'unresolved' | 'timeout' };

/**
 * The address to connect to for `host` (lowercase; IPv6 literals in brackets). An IP literal is
 * checked as it is, with no lookup. A name is resolved once, every address it resolves to is
 * checked, and the first that passes is the one to connect to: the connection then goes to an
 * address that was checked, so a DNS answer that changes between check and connect (rebinding)
 * cannot reach a refused one. Refused when no address passes.
 */
export async function resolveDestination(
  host: string,
  policy: AddressPolicy,
  lookup: Lookup,
  timeoutMs: number,
): Promise<Resolution> {
  const literal = host.startsWith('[') ? host.slice(1, -1) : host;
  const family = isIP(literal);
  if (family !== 0) {
    const check = policy.check(literal);
    if (!check.ok) return { ok: false, reason: 'refused', kind: check.kind };
    return { ok: true, address: literal, family: family as 4 | 6 };
  }
  let timer: NodeJS.Timeout | undefined;
  let addresses: ReadonlyArray<{ address: string; family: number }>;
  try {
    // getaddrinfo has no timeout of its own; a late answer is simply dropped.
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const answer = await Promise.race([lookup(host), timeout]);
    if (answer === 'timeout') return { ok: false, reason: 'timeout' };
    addresses = answer;
  } catch {
    return { ok: false, reason: 'unresolved' };
  } finally {
    clearTimeout(timer);
  }
  let refused: RefusedKind | null = null;
  for (const { address } of addresses) {
    const check = policy.check(address);
    if (check.ok) return { ok: true, address, family: isIP(address) as 4 | 6 };
    refused ??= check.kind;
  }
  if (refused === null) return { ok: false, reason: 'unresolved' };
  return { ok: false, reason: 'refused', kind: refused };
}
