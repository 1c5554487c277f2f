// What ipAllow and ipDeny share: the schema of a CIDR list and its compiled form.

import { isIP } from 'node:net';
import Type from 'typebox';
import { compileCidrs, unmapIPv4 } from '../../plan/trusted-proxies.ts';
import { respond } from '../types.ts';

/** A list of CIDRs in a policy's config. */
export function CidrList(description: string) {
  return Type.Array(
    Type.String({
      minLength: 2,
      maxLength: 64,
      description: 'An IPv4 or IPv6 range in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`) or one address.',
    }),
    { minItems: 1, uniqueItems: true, description },
  );
}

/**
 * Compiles a CIDR list into a membership test (one `BlockList`, built once per plan). An entry that
 * is not a CIDR is a TypeError naming it, reported at the policy's line.
 */
export function compileCidrList(cidrs: readonly string[]): (address: string) => boolean {
  const { test, invalid } = compileCidrs(cidrs);
  if (invalid.length > 0)
    throw new TypeError(`not a CIDR or IP address: ${invalid.map((entry) => entry.value).join(', ')}`);
  return test;
}

/**
 * True when the client address is an IP address. It is not when a trusted proxy put something else
 * in X-Forwarded-For (`unknown`, an address with a port): then no range can be said to hold it and
 * both policies refuse the request rather than guess.
 */
export function isAddress(address: string): boolean {
  return isIP(unmapIPv4(address)) !== 0;
}

export const unknownAddress = respond('ip_not_allowed', 'the client address is not an IP address');
