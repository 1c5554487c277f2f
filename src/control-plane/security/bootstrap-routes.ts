import Type from 'typebox';
import { Duration, toMillis } from '../../config/duration.ts';
import { HttpProblem, type Route } from '../routes.ts';
import type { ResourceStore } from '../store/types.ts';
import {
  createBootstrapToken,
  listBootstrapTokens,
  revokeBootstrapToken,
  viewOf,
} from './bootstrap-tokens.ts';
import { bodyParser } from './request-body.ts';

const dnsLabelName = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$';
const maxTtlMs = 7 * 24 * 3_600_000;

const CreateBody = Type.Object(
  {
    gateway: Type.String({
      pattern: dnsLabelName,
      description: 'Name of the Gateway resource the gateway will serve.',
    }),
    namespace: Type.String({ pattern: dnsLabelName, default: 'default' }),
    labels: Type.Record(Type.String({ minLength: 1, maxLength: 63 }), Type.String({ maxLength: 63 }), {
      default: {},
      maxProperties: 32,
    }),
    ttl: Duration('How long the token can be used.', '1h'),
    uses: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 1,
      description: 'How many registrations it allows.',
    }),
  },
  { additionalProperties: false },
);
type CreateBody = {
  gateway: string;
  namespace: string;
  labels: Record<string, string>;
  ttl: string;
  uses: number;
};
const parseCreate = bodyParser<CreateBody>(CreateBody);

/** Admin API for bootstrap tokens: create (shown once), list (no secrets), revoke. */
export function bootstrapTokenRoutes(store: ResourceStore, now: () => number): Route[] {
  return [
    {
      method: 'POST',
      path: '/api/v1/bootstrap-tokens',
      auth: { kind: 'operator', role: 'admin' },
      summary: 'Create a bootstrap token for registering a gateway; the token is in this answer only.',
      async handle(call) {
        const body = parseCreate(await call.body());
        const ttlMs = toMillis(body.ttl);
        if (ttlMs <= 0 || ttlMs > maxTtlMs)
          throw new HttpProblem('bad_request', 'ttl: must be between 1ms and 168h');
        const { token, record } = await createBootstrapToken(store, now(), {
          gateway: body.gateway,
          namespace: body.namespace,
          labels: body.labels,
          ttlMs,
          uses: body.uses,
          actor: call.operator?.name ?? 'unknown',
        });
        call.res.setHeader('cache-control', 'no-store');
        call.json({ token, ...viewOf(record, now()) }, 201);
      },
    },
    {
      method: 'GET',
      path: '/api/v1/bootstrap-tokens',
      auth: { kind: 'operator', role: 'admin' },
      summary: 'List bootstrap tokens with their status (never the tokens themselves).',
      async handle(call) {
        call.json({ items: await listBootstrapTokens(store, now()) });
      },
    },
    {
      method: 'DELETE',
      path: '/api/v1/bootstrap-tokens/{id}',
      auth: { kind: 'operator', role: 'admin' },
      summary: 'Revoke a bootstrap token: it registers no more gateways.',
      async handle(call) {
        const revoked = await revokeBootstrapToken(store, now(), call.params.id ?? '');
        if (!revoked)
          throw new HttpProblem('bootstrap_token_not_found', `no bootstrap token ${call.params.id}`);
        call.json(revoked);
      },
    },
  ];
}
