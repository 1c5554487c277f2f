import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fakeContext } from '../../../../test/helpers/fake-context.ts';
import type { PolicyDeps } from '../../types.ts';
import { ipAllow } from './policy.ts';

function decide(cidrs: string[], address: string): string {
  const ctx = { ...fakeContext(), client: { address, peerAddress: address, trustedPeer: false } };
  const verdict = ipAllow.compile(cidrs, {} as PolicyDeps).handle(ctx);
  assert.ok(!(verdict instanceof Promise));
  return verdict.kind === 'respond' ? `${verdict.code}: ${verdict.detail}` : verdict.kind;
}

describe('request.ipAllow', () => {
  const ranges = ['10.0.0.0/8', 'fd00::/8'];

  test('an address in an allowed range goes on', () => {
    assert.equal(decide(ranges, '10.1.2.3'), 'continue');
    assert.equal(decide(ranges, '::ffff:10.1.2.3'), 'continue');
    assert.equal(decide(ranges, 'fd12::1'), 'continue');
  });

  test('any other address is refused with 403 ip_not_allowed', () => {
    assert.match(decide(ranges, '11.0.0.1'), /^ip_not_allowed: .*none of the allowed ranges/);
    assert.match(decide(ranges, '::1'), /^ip_not_allowed/);
    assert.match(decide(ranges, 'unknown'), /^ip_not_allowed: .*not an IP address/);
  });

  test('an entry that is not a CIDR is a compile error', () => {
    assert.throws(() => ipAllow.compile(['10.0.0.0/8x'], {} as PolicyDeps), /not a CIDR/);
  });
});
