import type { Static } from 'typebox';
import { CONTINUE, type PolicyFactory, respond, type Verdict } from '../../types.ts';
import { CidrList, compileCidrList, isAddress, unknownAddress } from '../ip-list.ts';

const IpDenyConfig = CidrList(
  'Client addresses refused with 403 `ip_not_allowed`, before authentication; checked before `ipAllow`, ' +
    'so a denied range wins over an allowed one. The address is the peer’s, or behind `trustedProxies` the ' +
    'first X-Forwarded-For hop that is not a trusted proxy.',
);
export type IpDenyConfig = Static<typeof IpDenyConfig>;

const denied = respond('ip_not_allowed', 'the client address is in a denied range');

/** `request: { ipDeny: [CIDR...] }`: refuses clients whose address is in one of the ranges. */
export const ipDeny: PolicyFactory<IpDenyConfig> = {
  name: 'ipDeny',
  stage: 'request',
  schema: IpDenyConfig,
  compile(config) {
    const inDeniedRange = compileCidrList(config);
    return {
      name: 'ipDeny',
      handle(ctx): Verdict {
        const { address } = ctx.client;
        if (inDeniedRange(address)) return denied;
        return isAddress(address) ? CONTINUE : unknownAddress;
      },
    };
  },
};
