import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compileAddressPolicy, embeddedIPv4, refusedKind } from './addresses.ts';

describe('refusedKind', () => {
  const cases: Array<[string, string | null]> = [
    ['8.8.8.8', null],
    ['1.1.1.1', null],
    ['2606:4700:4700::1111', null],
    ['0.0.0.0', 'unspecified'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.5.4', 'private'],
    ['172.32.0.1', null],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'shared'],
    ['169.254.1.1', 'link-local'],
    ['169.254.169.254', 'metadata'],
    ['100.100.100.200', 'metadata'],
    ['168.63.129.16', 'metadata'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['192.0.2.10', 'reserved'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['fd00:ec2::254', 'metadata'],
    ['fe80::1', 'link-local'],
    ['ff02::1', 'multicast'],
    ['2001:db8::1', 'reserved'],
    // IPv6 forms that reach an IPv4 address are judged by that address.
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['::ffff:8.8.8.8', null],
    ['64:ff9b::a00:1', 'private'],
    ['2002:a9fe:a9fe::1', 'metadata'],
    ['not-an-ip', 'reserved'],
  ];
  for (const [address, kind] of cases) {
    test(`${address} → ${kind ?? 'public'}`, () => assert.equal(refusedKind(address), kind));
  }
});

test('embeddedIPv4 reads mapped, NAT64 and 6to4 addresses only', () => {
  assert.equal(embeddedIPv4('::ffff:10.1.2.3'), '10.1.2.3');
  assert.equal(embeddedIPv4('64:ff9b::808:808'), '8.8.8.8');
  assert.equal(embeddedIPv4('2002:0a00:0001::'), '10.0.0.1');
  assert.equal(embeddedIPv4('2001:4860::1'), null);
  assert.equal(embeddedIPv4('10.0.0.1'), null);
});

describe('compileAddressPolicy', () => {
  test('public addresses pass, everything special is refused by default', () => {
    const policy = compileAddressPolicy({ allowPrivate: false, allowAddresses: [] });
    assert.deepEqual(policy.check('93.184.216.34'), { ok: true });
    assert.deepEqual(policy.check('10.0.0.1'), { ok: false, kind: 'private' });
    assert.deepEqual(policy.check('127.0.0.1'), { ok: false, kind: 'loopback' });
    assert.deepEqual(policy.check('169.254.169.254'), { ok: false, kind: 'metadata' });
  });

  test('allowPrivate opens private and shared networks, not loopback, link-local or metadata', () => {
    const policy = compileAddressPolicy({ allowPrivate: true, allowAddresses: [] });
    assert.equal(policy.check('10.0.0.1').ok, true);
    assert.equal(policy.check('fd12::1').ok, true);
    assert.equal(policy.check('100.64.1.1').ok, true);
    assert.equal(policy.check('127.0.0.1').ok, false);
    assert.equal(policy.check('169.254.10.10').ok, false);
    assert.equal(policy.check('169.254.169.254').ok, false);
    assert.equal(policy.check('fd00:ec2::254').ok, false);
    assert.equal(policy.check('100.100.100.200').ok, false);
  });

  test('allowAddresses opens exactly the listed ranges, also in their IPv4-mapped form', () => {
    const policy = compileAddressPolicy({
      allowPrivate: false,
      allowAddresses: ['127.0.0.1/32', '10.1.0.0/16', '::1'],
    });
    assert.equal(policy.check('127.0.0.1').ok, true);
    assert.equal(policy.check('::ffff:127.0.0.1').ok, true);
    assert.equal(policy.check('127.0.0.2').ok, false);
    assert.equal(policy.check('10.1.200.3').ok, true);
    assert.equal(policy.check('10.2.0.1').ok, false);
    assert.equal(policy.check('::1').ok, true);
  });

  test('bad CIDRs are named', () => {
    assert.throws(
      () =>
        compileAddressPolicy({
          allowPrivate: false,
          allowAddresses: ['10.0.0.0/33', 'nope', '::/129', '1.2.3.4/x'],
        }),
      /not a CIDR: 10\.0\.0\.0\/33, nope, ::\/129, 1\.2\.3\.4\/x/,
    );
  });
});
