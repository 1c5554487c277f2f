import { BlockList, isIP } from 'node:net';

/** Why an address is not reachable through the forward proxy (safe to log and to tell the client). */
export type RefusedKind =
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'shared'
  | 'link-local'
  | 'metadata'
  | 'multicast'
  | 'reserved';

export type AddressCheck = { readonly ok: true } | { readonly ok: false; readonly kind: RefusedKind };

/** Whether a destination address may be connected to; built once per plan. */
export interface AddressPolicy {
  check(address: string): AddressCheck;
}

type Ranges = ReadonlyArray<readonly [string, number]>;

// Cloud instance metadata services: credentials live there, so they are refused even when private
// networks are allowed. Azure's wire server has a public address, so it is listed by name too.
const metadata: Ranges = [
  ['169.254.169.254', 32],
  ['169.254.170.2', 32], // ECS task metadata
  ['100.100.100.200', 32], // Alibaba Cloud
  ['168.63.129.16', 32], // Azure wire server
  ['192.0.0.192', 32], // Oracle Cloud
  ['fd00:ec2::254', 128],
];

// IPv4 special-purpose ranges (RFC 6890 and the IANA registry), by what they are.
const ipv4: ReadonlyArray<readonly [RefusedKind, Ranges]> = [
  ['unspecified', [['0.0.0.0', 8]]],
  ['loopback', [['127.0.0.0', 8]]],
  [
    'private',
    [
      ['10.0.0.0', 8],
      ['172.16.0.0', 12],
      ['192.168.0.0', 16],
    ],
  ],
  ['shared', [['100.64.0.0', 10]]], // carrier-grade NAT
  ['link-local', [['169.254.0.0', 16]]],
  ['multicast', [['224.0.0.0', 4]]],
  [
    'reserved',
    [
      ['192.0.0.0', 24],
      ['192.0.2.0', 24],
      ['198.18.0.0', 15],
      ['198.51.100.0', 24],
      ['203.0.113.0', 24],
      ['240.0.0.0', 4], // includes 255.255.255.255
    ],
  ],
];

const ipv6: ReadonlyArray<readonly [RefusedKind, Ranges]> = [
  ['unspecified', [['::', 128]]],
  ['loopback', [['::1', 128]]],
  ['private', [['fc00::', 7]]], // unique local
  ['link-local', [['fe80::', 10]]],
  ['multicast', [['ff00::', 8]]],
  [
    'reserved',
    [
      ['::', 96], // IPv4-compatible (deprecated)
      ['100::', 64], // discard
      ['2001::', 32], // Teredo: the tunnelled address is hidden
      ['2001:db8::', 32], // documentation
      ['fec0::', 10], // site-local (deprecated)
    ],
  ],
];

function blockList(ranges: Ranges): BlockList {
  const list = new BlockList();
  for (const [network, prefix] of ranges)
    list.addSubnet(network, prefix, isIP(network) === 6 ? 'ipv6' : 'ipv4');
  return list;
}

const metadataList = blockList(metadata);
const ipv4Lists = ipv4.map(([kind, ranges]) => [kind, blockList(ranges)] as const);
const ipv6Lists = ipv6.map(([kind, ranges]) => [kind, blockList(ranges)] as const);
/** Kinds that `allowPrivate` opens: networks of one's own, not the host itself or its link. */
const privateKinds: ReadonlySet<RefusedKind> = new Set(['private', 'shared']);

/**
 * The IPv4 address an IPv6 address carries and would reach: IPv4-mapped (::ffff:a.b.c.d), NAT64
 * (64:ff9b::/96) and 6to4 (2002::/16). Checking only the IPv6 form would let `::ffff:127.0.0.1`
 * or `64:ff9b::a00:1` through to a refused IPv4 address.
 */
export function embeddedIPv4(address: string): string | null {
  const groups = expandIPv6(address);
  if (groups === null) return null;
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  const zeros = (from: number, to: number) => groups.slice(from, to).every((g) => g === 0);
  if (zeros(0, 5) && groups[5] === 0xffff) return v4(groups[6]!, groups[7]!);
  if (groups[0] === 0x64 && groups[1] === 0xff9b && zeros(2, 6)) return v4(groups[6]!, groups[7]!);
  if (groups[0] === 0x2002) return v4(groups[1]!, groups[2]!);
  return null;
}

/** The eight 16-bit groups of an IPv6 address (embedded dotted IPv4 tail allowed), or null. */
function expandIPv6(address: string): number[] | null {
  if (isIP(address) !== 6) return null;
  let text = address;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16)));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  const fill = tail === undefined ? 0 : 8 - left.length - right.length;
  return [...left, ...new Array<number>(fill).fill(0), ...right];
}

/** Classifies an address without any allowance: null when it is an ordinary public address. */
export function refusedKind(address: string): RefusedKind | null {
  const family = isIP(address);
  if (family === 0) return 'reserved';
  const type = family === 6 ? 'ipv6' : 'ipv4';
  if (metadataList.check(address, type)) return 'metadata';
  if (family === 6) {
    const v4 = embeddedIPv4(address);
    if (v4 !== null) return refusedKind(v4);
  }
  for (const [kind, list] of family === 6 ? ipv6Lists : ipv4Lists) if (list.check(address, type)) return kind;
  return null;
}

/**
 * The address rules of the forward proxy. Public addresses are allowed; loopback, private, shared
 * (CGNAT), link-local, metadata, multicast, unspecified and reserved ones are refused unless
 * `allowAddresses` lists them (for private and shared networks, `allowPrivate` is enough; cloud
 * metadata endpoints are only ever opened by `allowAddresses`). Throws TypeError naming the CIDRs
 * that cannot be parsed.
 */
export function compileAddressPolicy(options: {
  allowPrivate: boolean;
  allowAddresses: readonly string[];
}): AddressPolicy {
  const allowed = new BlockList();
  const invalid: string[] = [];
  for (const cidr of options.allowAddresses) {
    const [network = '', prefixText] = cidr.split('/');
    const family = isIP(network);
    const max = family === 6 ? 128 : 32;
    const prefix = prefixText === undefined ? max : Number(prefixText);
    if (family === 0 || (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) || prefix > max) {
      invalid.push(cidr);
      continue;
    }
    allowed.addSubnet(network, prefix, family === 6 ? 'ipv6' : 'ipv4');
  }
  if (invalid.length > 0) throw new TypeError(`not a CIDR: ${invalid.join(', ')}`);
  const { allowPrivate } = options;
  const OK: AddressCheck = Object.freeze({ ok: true });
  return {
    check(address) {
      const family = isIP(address);
      if (family === 0) return { ok: false, kind: 'reserved' };
      if (allowed.check(address, family === 6 ? 'ipv6' : 'ipv4')) return OK;
      const v4 = family === 6 ? embeddedIPv4(address) : null;
      if (v4 !== null && allowed.check(v4, 'ipv4')) return OK;
      const kind = refusedKind(address);
      if (kind === null || (allowPrivate && privateKinds.has(kind))) return OK;
      return { ok: false, kind };
    },
  };
}
