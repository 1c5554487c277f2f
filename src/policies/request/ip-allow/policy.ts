import type { Static } from 'typebox';
import { CONTINUE, type PolicyFactory, respond, type Verdict } from '../../types.ts';
import { CidrList, compileCidrList, isAddress, unknownAddress } from '../ip-list.ts';

const IpAllowConfig = CidrList(
  'Only client addresses in one of these ranges get through; anyone else gets 403 `ip_not_allowed`, ' +
    'before authentication. `ipDeny` wins over it. The address is the peer’s, or behind `trustedProxies` ' +
    'the first X-Forwarded-For hop that is not a trusted proxy. In Policies at several scopes, each ' +
    'scope’s list must hold the address.',
);
export type IpAllowConfig = Static<typeof IpAllowConfig>;

const notAllowed = respond('ip_not_allowed', 'the client address is in none of the allowed ranges');

/** `request: { ipAllow: [CIDR...] }`: lets only clients whose address is in one of the ranges through. */
export const ipAllow: PolicyFactory<IpAllowConfig> = {
  name: 'ipAllow',
  stage: 'request',
  schema: IpAllowConfig,
  compile(config) {
    const inAllowedRange = compileCidrList(config);
    return {
      name: 'ipAllow',
      handle(ctx): Verdict {
        const { address } = ctx.client;
        if (inAllowedRange(address)) return CONTINUE;
        return isAddress(address) ? notAllowed : unknownAddress;
      },
    };
  },
};
