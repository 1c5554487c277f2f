// The error catalogue: every error the gateway answers with has a stable code, mapped to an HTTP
// status and a title here and nowhere else. Clients and dashboards key on `code`; never rename one.

export const problems = {
  bad_request: { status: 400, title: 'Bad request' },
  bad_target: { status: 400, title: 'Request target not allowed' },
  bad_path: { status: 400, title: 'Request path not allowed' },
  bad_host: { status: 400, title: 'Host header not allowed' },
  duplicate_header: { status: 400, title: 'Header must not be repeated' },
  bad_framing: { status: 400, title: 'Ambiguous message framing' },
  unauthenticated: { status: 401, title: 'Authentication required' },
  invalid_token: { status: 401, title: 'Credential not accepted' },
  invalid_api_key: { status: 401, title: 'API key not accepted' },
  bootstrap_token_invalid: { status: 401, title: 'Bootstrap token not valid, expired, revoked or used up' },
  client_assertion_invalid: { status: 401, title: 'Client assertion not accepted' },
  forbidden: { status: 403, title: 'Access denied' },
  insufficient_scope: { status: 403, title: 'Token lacks a required scope' },
  client_certificate_invalid: { status: 403, title: 'Client certificate not accepted' },
  ip_not_allowed: { status: 403, title: 'Client address not allowed' },
  cors_rejected: { status: 403, title: 'Cross-origin request not allowed' },
  egress_denied: { status: 403, title: 'Destination not allowed' },
  route_not_found: { status: 404, title: 'No route matches the request' },
  resource_not_found: { status: 404, title: 'No such resource' },
  method_not_allowed: { status: 405, title: 'Method not allowed on this path' },
  gateway_not_found: { status: 404, title: 'No registered gateway with this id' },
  bootstrap_token_not_found: { status: 404, title: 'No bootstrap token with this id' },
  request_timeout: { status: 408, title: 'Request not received in time' },
  conflict: { status: 409, title: 'Resource changed since it was read' },
  already_exists: { status: 409, title: 'Resource already exists' },
  payload_too_large: { status: 413, title: 'Request body too large' },
  unsupported_media_type: { status: 415, title: 'Request body must be application/json' },
  invalid_config: { status: 422, title: 'Configuration is invalid' },
  analytics_batch_too_large: { status: 413, title: 'Event batch too large' },
  analytics_unsupported_encoding: { status: 415, title: 'Event batch encoding not supported' },
  analytics_batch_invalid: { status: 422, title: 'Event batch not valid' },
  rate_limited: { status: 429, title: 'Too many requests' },
  header_too_large: { status: 431, title: 'Request headers too large' },
  internal_error: { status: 500, title: 'Internal gateway error' },
  upstream_reset: { status: 502, title: 'Upstream closed the connection' },
  upstream_bad_response: { status: 502, title: 'Upstream sent an invalid response' },
  upstream_unavailable: { status: 503, title: 'Upstream not reachable' },
  shutting_down: { status: 503, title: 'Gateway is shutting down' },
  identity_provider_unavailable: { status: 503, title: 'Credential could not be checked' },
  rate_limit_unavailable: { status: 503, title: 'Rate limit could not be checked' },
  upstream_credential_unavailable: {
    status: 503,
    title: 'Credential for the upstream could not be obtained',
  },
  analytics_store_unavailable: { status: 503, title: 'Events could not be stored' },
  analytics_query_invalid: { status: 400, title: 'Analytics query not valid' },
  upstream_timeout: { status: 504, title: 'Upstream did not answer in time' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ProblemCode = keyof typeof problems;

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ProblemCode;
  detail?: string;
  instance?: string;
}

export const problemContentType = 'application/problem+json';

export function problemTypeUri(code: ProblemCode): string {
  return `https://gatehouse.dev/problems/${code}`;
}

/** Builds the RFC 9457 body. `detail` must never carry stack traces or internal addresses. */
export function problem(code: ProblemCode, detail?: string, requestId?: string): Problem {
  const entry = problems[code];
  const body: Problem = { type: problemTypeUri(code), title: entry.title, status: entry.status, code };
  if (detail !== undefined) body.detail = detail;
  if (requestId !== undefined) body.instance = `urn:request:${requestId}`;
  return body;
}

/**
 * A whole HTTP/1.1 response as bytes, for answering on a raw socket before the HTTP server has
 * produced a request object (parse errors, oversized headers, request timeouts).
 */
export function rawProblemResponse(
  code: ProblemCode,
  detail?: string,
  requestId?: string,
  headers: Readonly<Record<string, string>> = {},
): string {
  const entry = problems[code];
  const body = JSON.stringify(problem(code, detail, requestId));
  let head = `HTTP/1.1 ${entry.status} ${entry.title}\r\ncontent-type: ${problemContentType}\r\n`;
  if (requestId !== undefined) head += `x-request-id: ${requestId}\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  return `${head}content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}
