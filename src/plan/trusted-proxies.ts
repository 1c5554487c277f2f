import { BlockList, isIP } from 'node:net';

/** A compiled CIDR list: `test` tells whether an address is in one of its ranges. */
export interface CidrSet {
  readonly test: (address: string) => boolean;
  /** The entries that are not CIDRs (or bare addresses), by index. */
  readonly invalid: Array<{ index: number; value: string }>;
}

/**
 * Compiles CIDR strings (`10.0.0.0/8`, `2001:db8::/32`, or a bare address for one host) into one
 * `BlockList`, so a lookup costs the same whatever the list's length. An address that is not an IP
 * (an X-Forwarded-For entry like `unknown`) is in no range; IPv4-mapped IPv6 addresses are
 * compared as the IPv4 address they carry.
 */
export function compileCidrs(cidrs: readonly string[]): CidrSet {
  const list = new BlockList();
  const invalid: Array<{ index: number; value: string }> = [];
  cidrs.forEach((cidr, index) => {
    const [address, prefixText] = cidr.split('/');
    const family = isIP(address ?? '');
    const prefix = prefixText === undefined ? (family === 6 ? 128 : 32) : Number(prefixText);
    const max = family === 6 ? 128 : 32;
    if (
      !family ||
      !Number.isInteger(prefix) ||
      prefix < 0 ||
      prefix > max ||
      (prefixText !== undefined && !/^[0-9]+$/.test(prefixText))
    ) {
      invalid.push({ index, value: cidr });
      return;
    }
    list.addSubnet(address!, prefix, family === 6 ? 'ipv6' : 'ipv4');
  });
  if (cidrs.length === 0) return { test: () => false, invalid };
  return {
    test(address: string) {
      const plain = unmapIPv4(address);
      const family = isIP(plain);
      return family !== 0 && list.check(plain, family === 6 ? 'ipv6' : 'ipv4');
    },
    invalid,
  };
}

/** Compiles `trustedProxies` into a membership test; returns the CIDRs it could not parse. */
export function compileTrustedProxies(cidrs: readonly string[]): CidrSet {
  return compileCidrs(cidrs);
}

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) → `10.0.0.1`. */
export function unmapIPv4(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
