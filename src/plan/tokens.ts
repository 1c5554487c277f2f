import Value from 'typebox/value';
import { type GatewaySpec, TokensSpec } from '../config/schemas/gateway.ts';
import { SigningKeyError } from '../identity/signing-keys.ts';
import type { TokenIssuer } from '../identity/token-issuer.ts';
import { TokenIssuerRegistry } from '../identity/token-issuers.ts';

/** The token issuer of one plan. */
export interface PlanTokens {
  /**
   * The issuer policies mint with. Without `spec.tokens` it is made on first use with the defaults
   * (in-memory keys); null when `spec.tokens` has errors (already reported).
   */
  issuer(): TokenIssuer | null;
  /** The issuer the plan holds (served at /.well-known/jwks.json); null when nothing needs one. */
  used(): TokenIssuer | null;
}

function offlineIssuers(): TokenIssuerRegistry {
  return new TokenIssuerRegistry({ now: Date.now, start: false, log: () => {} });
}

/** Resolves `spec.tokens` of the Gateway: at once when it is written, else when a policy asks. */
export function compileTokens(
  spec: GatewaySpec,
  gatewayName: string,
  registry: TokenIssuerRegistry | undefined,
  resolvePath: (path: string) => string,
  listenerNames: ReadonlySet<string>,
  fail: (path: Array<string | number>, message: string) => void,
): PlanTokens {
  const issuers = registry ?? offlineIssuers();
  let issuer: TokenIssuer | null = null;
  let failed = false;
  const resolve = (tokens: GatewaySpec['tokens'] & object) => {
    try {
      issuer = issuers.resolve({ gatewayName, spec: tokens, resolvePath });
    } catch (err) {
      if (!(err instanceof SigningKeyError)) throw err;
      failed = true;
      fail(['spec', 'tokens', ...err.field], err.message);
    }
  };
  if (spec.tokens !== undefined) {
    const publishOn = spec.tokens.publishOn;
    if (publishOn !== undefined && !listenerNames.has(publishOn))
      fail(['spec', 'tokens', 'publishOn'], `no listener named ${publishOn}`);
    resolve(spec.tokens);
  }
  return {
    issuer() {
      if (issuer === null && !failed)
        resolve(Value.Default(TokensSpec, {}) as GatewaySpec['tokens'] & object);
      return issuer;
    },
    used: () => issuer,
  };
}
