import Type, { type Static } from 'typebox';
import { CONTINUE, type PolicyFactory, respond, type Verdict } from '../../types.ts';
import {
  CertificateMatch,
  callerOf,
  certificateOf,
  compileCertificateMatch,
  notAuthenticated,
} from '../conditions.ts';

const CertificatesConfig = Type.Array(CertificateMatch, {
  minItems: 1,
  description:
    'The verified client certificate must match at least one of these, otherwise 403 `forbidden`. ' +
    'Without a client certificate (no mTLS) the request is refused.',
});
export type CertificatesConfig = Static<typeof CertificatesConfig>;

const noCertificate = respond('forbidden', 'this route requires a verified client certificate');
const noMatch = respond('forbidden', 'the client certificate is not one this route accepts');

/** `authorize: { certificates: [...] }`: the client certificate names one of the accepted peers. */
export const certificates: PolicyFactory<CertificatesConfig> = {
  name: 'certificates',
  stage: 'authorize',
  schema: CertificatesConfig,
  compile(config) {
    const matchers = config.map((match, index) => {
      try {
        return compileCertificateMatch(match);
      } catch (err) {
        throw new TypeError(`certificate ${index}: ${(err as Error).message}`);
      }
    });
    return {
      name: 'certificates',
      handle(ctx): Verdict {
        const identity = callerOf(ctx);
        if (identity === null) return notAuthenticated;
        const cert = certificateOf(ctx, identity);
        if (cert === null) return noCertificate;
        for (const matches of matchers) if (matches(cert)) return CONTINUE;
        return noMatch;
      },
    };
  },
};
