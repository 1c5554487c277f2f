import { BlockList, isIP } from 'node:net';

/** Compiles CIDR strings into a membership test; returns the CIDRs it could not parse. */
export function compileTrustedProxies(cidrs: readonly string[]): {
  test: (address: string) => boolean;
  invalid: Array<{ index: number; value: string }>;
} {
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

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) → `10.0.0.1`. */
export function unmapIPv4(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
