import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fakeContext } from '../../../../test/helpers/fake-context.ts';
import type { PolicyDeps } from '../../types.ts';
import { ipDeny } from './policy.ts';

function decide(cidrs: string[], address: string): string {
  const ctx = { ...fakeContext(), client: { address, peerAddress: '127.0.0.1', trustedPeer: true } };
  const verdict = ipDeny.compile(cidrs, {} as PolicyDeps).handle(ctx);
  assert.ok(!(verdict instanceof Promise));
  return verdict.kind === 'respond' ? verdict.code : verdict.kind;
}

describe('request.ipDeny', () => {
  const ranges = ['203.0.113.0/24', '198.51.100.7', '2001:db8::/32'];

  test('an address in a denied range is refused with 403 ip_not_allowed', () => {
    assert.equal(decide(ranges, '203.0.113.9'), 'ip_not_allowed');
    assert.equal(decide(ranges, '198.51.100.7'), 'ip_not_allowed');
    assert.equal(decide(ranges, '2001:db8::1'), 'ip_not_allowed');
    assert.equal(
      decide(ranges, '::ffff:203.0.113.9'),
      'ip_not_allowed',
      'IPv4-mapped IPv6 is the IPv4 address',
    );
  });

  test('any other address goes on', () => {
    assert.equal(decide(ranges, '203.0.114.1'), 'continue');
    assert.equal(decide(ranges, '198.51.100.8'), 'continue');
    assert.equal(decide(ranges, '2001:db9::1'), 'continue');
  });

  test('a client address that is not an IP (a proxy wrote `unknown`) is refused, not guessed', () => {
    assert.equal(decide(ranges, 'unknown'), 'ip_not_allowed');
    assert.equal(decide(ranges, '203.0.114.1:5000'), 'ip_not_allowed');
  });

  test('an entry that is not a CIDR is a compile error naming it', () => {
    assert.throws(
      () => ipDeny.compile(['10.0.0.0/8', '10.0.0.0/33', 'example.com'], {} as PolicyDeps),
      /not a CIDR or IP address: 10\.0\.0\.0\/33, example\.com/,
    );
  });
});
