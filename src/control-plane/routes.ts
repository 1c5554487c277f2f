import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ProblemCode } from '../errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { ControlPlaneMetrics } from './metrics.ts';
import type { GatewayAuthenticator, GatewayIdentity } from './security/types.ts';
import type { ResourceStore } from './store/types.ts';

/**
 * How the parts of the control plane plug into its HTTP server: each module contributes routes;
 * the server matches them, authenticates the caller as the route asks, enforces the role, parses
 * bounded JSON bodies and turns thrown `HttpProblem`s into problem+json answers.
 */

export type Role = 'viewer' | 'editor' | 'admin';

/** An operator (human or CI) calling the admin API: an admin token or a JWT from an IdentityProvider. */
export interface OperatorIdentity {
  name: string;
  /** Roles by namespace; namespace `*` means every namespace. */
  roles: ReadonlyArray<{ namespace: string; role: Role }>;
}

export type RouteAuth =
  /**
   * An operator with at least `role` in the namespace of path parameter `namespaceParam` (or in `*`
   * when absent). With `anyNamespace`, any authenticated operator gets in and the handler itself
   * checks the namespaces it touches (lists across namespaces, apply, watch, audit), so that a
   * refusal names the namespace: see `requireRole` / `operatorMay` in api/roles.ts.
   */
  | { kind: 'operator'; role: Role; namespaceParam?: string; anyNamespace?: boolean }
  /** A registered gateway (client certificate in mtls mode, bearer JWT in jwt mode). */
  | { kind: 'gateway' }
  /** No credential (registration with a bootstrap token, the JWKS, the CA certificate). */
  | { kind: 'none' };

export interface RouteCall {
  req: IncomingMessage;
  res: ServerResponse;
  /** `{name}` segments of the route's path. */
  params: Readonly<Record<string, string>>;
  query: URLSearchParams;
  /** The JSON body (bounded; invalid JSON → 400 problem). */
  body(): Promise<unknown>;
  /** Set for `operator` routes. */
  operator?: OperatorIdentity;
  /** Set for `gateway` routes. */
  gateway?: GatewayIdentity;
  /** Answers with JSON (status 200 unless given). */
  json(value: unknown, status?: number): void;
}

export interface RouteDocs {
  query?: readonly string[];
  /** A component schema name (a kind, e.g. `APIRule`, or one openapi.ts defines). */
  requestSchema?: string;
  responseSchema?: string;
  /** The answer is a Server-Sent Events stream. */
  stream?: boolean;
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Template: literal segments and `{name}` segments, e.g. `/api/v1/namespaces/{namespace}/{plural}/{name}`. */
  path: string;
  auth: RouteAuth;
  /** One line for the OpenAPI description. */
  summary: string;
  /** Optional details for the OpenAPI description (openapi.ts): query parameters, bodies by component name. */
  docs?: RouteDocs;
  handle(call: RouteCall): Promise<void> | void;
}

/** Thrown from a route handler: answered as problem+json with this code (src/errors.ts). */
export class HttpProblem extends Error {
  readonly code: ProblemCode;
  readonly detail: string | undefined;
  readonly extra: Readonly<Record<string, unknown>> | undefined;
  constructor(code: ProblemCode, detail?: string, extra?: Record<string, unknown>) {
    super(detail ?? code);
    this.code = code;
    this.detail = detail;
    this.extra = extra;
  }
}

/** What every module gets from the server. */
export interface ControlPlaneContext {
  store: ResourceStore;
  logger: Logger;
  now: () => number;
  /** The control plane's own base URL as gateways reach it (for links in answers, the JWKS URL). */
  publicUrl: string;
  /** Where the control plane keeps files (CA material when not in the store, spools, ...). */
  dataDir: string;
  /**
   * The control plane's Prometheus metrics (served at GET /metrics); modules count on it and may
   * register their own on `metrics.registry`. Built by controlPlaneContext(); absent in contexts
   * made by hand (tests), where nothing is counted.
   */
  metrics?: ControlPlaneMetrics;
}

export interface ControlPlaneModule {
  readonly name: string;
  routes(): Route[];
  /** Authenticates gateways for `gateway` routes (exactly one module — security — provides it). */
  gatewayAuthenticator?: GatewayAuthenticator;
  close?(): Promise<void> | void;
}
