import type { ProblemCode } from '../errors.ts';

export type UpstreamFailure = 'connect' | 'reset' | 'timeout' | 'bad_response';

/**
 * Maps an undici error to what the client is told. Connection refused or not opened in time, or
 * no TLS connection that verifies (a certificate refused either way): nothing is serving, 503. The
 * connection broke before a whole response: 502. Headers not in time: 504. Anything undici says the
 * upstream got wrong: 502.
 */
export function classifyUpstreamError(err: unknown): { failure: UpstreamFailure; code: ProblemCode } {
  const code = (err as { code?: string }).code ?? '';
  switch (code) {
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return { failure: 'connect', code: 'upstream_unavailable' };
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return { failure: 'timeout', code: 'upstream_timeout' };
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
      return { failure: 'reset', code: 'upstream_reset' };
    default:
      if (tlsFailure(code)) return { failure: 'connect', code: 'upstream_unavailable' };
      return { failure: 'bad_response', code: 'upstream_bad_response' };
  }
}

/** Certificate checks (OpenSSL's verify codes) and TLS alerts: no trusted connection could be made. */
const certificateFailures = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'HOSTNAME_MISMATCH',
]);

function tlsFailure(code: string): boolean {
  return code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || certificateFailures.has(code);
}
