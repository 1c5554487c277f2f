import type { CompiledUpstream, RetryReason } from '../../plan/types.ts';
import type { UpstreamFailure } from '../upstream-errors.ts';

type Policy = NonNullable<CompiledUpstream['retries']>;

/** Idempotent methods (RFC 9110 §9.2.2) that are retried by default. */
const idempotent = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/**
 * Whether a request may be retried at all: a retry policy, no request body (bodies are streamed
 * upstream as they arrive and not kept, so a second try would have nothing to send), and an
 * idempotent method unless the policy allows any.
 */
export function retryable(policy: Policy | null, method: string, hasBody: boolean): policy is Policy {
  return policy !== null && !hasBody && (policy.retryNonIdempotent || idempotent.has(method));
}

/** The retry reason of an upstream answer, when its status is one retries are about. */
export function statusReason(status: number): RetryReason | null {
  return status === 502 ? '502' : status === 503 ? '503' : status === 504 ? '504' : null;
}

/** The retry reason of a failed call; null for failures never retried (an unparsable answer). */
export function failureReason(failure: UpstreamFailure): RetryReason | null {
  switch (failure) {
    case 'connect':
      return 'connect-failure';
    case 'reset':
      return 'reset';
    case 'timeout':
      return 'timeout';
    default:
      return null;
  }
}
