import { kindSchemas } from '../../config/schemas/index.ts';
import { problems } from '../../errors.ts';
import type { Route } from '../routes.ts';
import { apiKinds } from './kinds.ts';

const queryDocs: Record<string, string> = {
  labelSelector: 'Labels every resource must carry: `app=shop,tier=web`.',
  dryRun: '`true`: check and report, commit nothing.',
  resourceVersion: 'A store revision (optimistic concurrency, or where a watch starts).',
  kind: 'A kind, by name or lowercase plural.',
  namespace: 'A namespace.',
  name: 'A resource name.',
  after: 'Only changes with a revision above this.',
  limit: 'Most entries in one page.',
};

/** JSON copy of a TypeBox schema (drops its symbol-keyed internals). */
function plain(schema: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
}

const storedResource = {
  type: 'object',
  description: 'A stored resource: the kind’s schema plus store metadata.',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { type: 'string' },
    kind: { type: 'string', enum: apiKinds },
    metadata: {
      type: 'object',
      required: ['name', 'namespace', 'resourceVersion', 'uid', 'creationTimestamp'],
      properties: {
        name: { type: 'string' },
        namespace: { type: 'string' },
        labels: { type: 'object', additionalProperties: { type: 'string' } },
        resourceVersion: { type: 'string', description: 'Store revision of the last change.' },
        uid: { type: 'string' },
        creationTimestamp: { type: 'string', format: 'date-time' },
      },
    },
    spec: { type: 'object' },
  },
};

const fieldChange = {
  type: 'object',
  properties: {
    op: { type: 'string', enum: ['add', 'remove', 'change'] },
    path: { type: 'string' },
    before: {},
    after: {},
  },
};

const extraSchemas: Record<string, unknown> = {
  StoredResource: storedResource,
  ResourceList: {
    type: 'object',
    properties: {
      kind: { const: 'List' },
      revision: { type: 'integer' },
      items: { type: 'array', items: { $ref: '#/components/schemas/StoredResource' } },
    },
  },
  ApplyRequest: {
    type: 'object',
    required: ['resources'],
    properties: {
      resources: {
        type: 'array',
        items: { oneOf: apiKinds.map((k) => ({ $ref: `#/components/schemas/${k}` })) },
      },
    },
  },
  ApplyResult: {
    type: 'object',
    properties: {
      dryRun: { type: 'boolean' },
      revision: { type: 'integer' },
      results: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            kind: { type: 'string' },
            namespace: { type: 'string' },
            name: { type: 'string' },
            action: { type: 'string', enum: ['created', 'updated', 'unchanged'] },
            resourceVersion: { type: ['string', 'null'] },
            diff: { type: 'array', items: fieldChange },
            diffText: { type: 'array', items: { type: 'string' } },
          },
        },
      },
    },
  },
  AuditPage: {
    type: 'object',
    properties: {
      next: { type: ['integer', 'null'] },
      revision: { type: 'integer' },
      items: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            revision: { type: 'integer' },
            at: { type: 'string', format: 'date-time' },
            actor: { type: 'string' },
            action: { type: 'string', enum: ['create', 'update', 'delete'] },
            key: { type: 'object' },
            before: { oneOf: [{ $ref: '#/components/schemas/StoredResource' }, { type: 'null' }] },
            after: { oneOf: [{ $ref: '#/components/schemas/StoredResource' }, { type: 'null' }] },
            diff: { type: 'array', items: fieldChange },
          },
        },
      },
    },
  },
  Problem: {
    type: 'object',
    description: 'RFC 9457 problem details; `code` is stable.',
    required: ['type', 'title', 'status', 'code'],
    properties: {
      type: { type: 'string' },
      title: { type: 'string' },
      status: { type: 'integer' },
      code: { type: 'string', enum: Object.keys(problems) },
      detail: { type: 'string' },
      errors: {
        type: 'array',
        description: 'invalid_config: every problem, by resource and field.',
        items: {
          type: 'object',
          properties: {
            kind: { type: 'string' },
            namespace: { type: 'string' },
            name: { type: 'string' },
            path: { type: 'string' },
            message: { type: 'string' },
          },
        },
      },
    },
  },
};

/** OpenAPI 3.1 description of every route of every module, with the kinds' schemas as components. */
export function openApiDocument(routes: readonly Route[], serverUrl: string): Record<string, unknown> {
  const schemas: Record<string, unknown> = { ...extraSchemas };
  for (const kind of apiKinds) schemas[kind] = plain(kindSchemas[kind]);
  const paths: Record<string, Record<string, unknown>> = {};
  const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
  for (const route of routes) {
    const pathParams = [...route.path.matchAll(/\{([A-Za-z0-9]+)\}/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    const queryParams = (route.docs?.query ?? []).map((name) => ({
      name,
      in: 'query',
      required: false,
      description: queryDocs[name] ?? '',
      schema: { type: 'string' },
    }));
    const okContent = route.docs?.stream
      ? { 'text/event-stream': { schema: { type: 'string' } } }
      : { 'application/json': { schema: route.docs?.responseSchema ? ref(route.docs.responseSchema) : {} } };
    const operation: Record<string, unknown> = {
      summary: route.summary,
      operationId: `${route.method.toLowerCase()}${route.path.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
      parameters: [...pathParams, ...queryParams],
      responses: {
        [route.method === 'POST' && route.docs?.requestSchema && route.path !== '/api/v1/apply'
          ? '201'
          : '200']: {
          description: 'OK',
          content: okContent,
        },
        default: {
          description: 'A problem',
          content: { 'application/problem+json': { schema: ref('Problem') } },
        },
      },
      security:
        route.auth.kind === 'operator'
          ? [{ operatorBearer: [] }]
          : route.auth.kind === 'gateway'
            ? [{ gatewayCertificate: [] }, { gatewayBearer: [] }]
            : [],
      'x-gatehouse-auth': route.auth,
    };
    if (route.docs?.requestSchema)
      operation.requestBody = {
        required: true,
        content: { 'application/json': { schema: ref(route.docs.requestSchema) } },
      };
    else if (route.method === 'POST' || route.method === 'PUT' || route.method === 'PATCH')
      operation.requestBody = { required: false, content: { 'application/json': { schema: {} } } };
    paths[route.path] ??= {};
    paths[route.path]![route.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Gatehouse control plane',
      version: '1',
      description:
        'Admin API (resources, apply, watch, audit) and the routes gateways use. Errors are application/problem+json.',
    },
    servers: [{ url: serverUrl }],
    paths,
    components: {
      schemas,
      securitySchemes: {
        operatorBearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'An admin token, or a JWT from the configured IdentityProvider.',
        },
        gatewayBearer: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'A short-lived subsystem JWT (jwt mode).',
        },
        gatewayCertificate: {
          type: 'mutualTLS',
          description: 'A client certificate issued by the control plane CA (mtls mode).',
        },
      },
    },
  };
}
