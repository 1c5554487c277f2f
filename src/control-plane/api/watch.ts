import type { ServerResponse } from 'node:http';
import type { Kind } from '../../config/schemas/index.ts';
import { type ControlPlaneContext, HttpProblem, type OperatorIdentity, type Route } from '../routes.ts';
import type { Change } from '../store/types.ts';
import { kindNamed } from './kinds.ts';
import { operatorMay, requireRole } from './roles.ts';

/** Changes read from the audit log per round, so that a far-behind watcher catches up in bounded steps. */
const pageSize = 200;

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  revision: number;
  at: string;
  actor: string;
  /** The resource after the change; for DELETED, as it was before. */
  object: Change['after'];
}

export function watchEvent(change: Change): WatchEvent {
  return {
    type: change.action === 'create' ? 'ADDED' : change.action === 'update' ? 'MODIFIED' : 'DELETED',
    revision: change.revision,
    at: change.at,
    actor: change.actor,
    object: change.after ?? change.before,
  };
}

/**
 * GET /api/v1/watch: Server-Sent Events of every change after `resourceVersion` (from the audit
 * log, so nothing is missed between a list and a watch), then live ones as the store commits
 * them. Each event's `id` is its revision: a client reconnecting with Last-Event-ID resumes
 * there. Comments every heartbeat keep proxies and load balancers from closing an idle stream.
 */
export function watchRoute(
  ctx: ControlPlaneContext,
  options: { heartbeatMs: number; streams: Set<ServerResponse> },
): Route {
  return {
    method: 'GET',
    path: '/api/v1/watch',
    auth: { kind: 'operator', role: 'viewer', anyNamespace: true },
    summary: 'Changes after ?resourceVersion= as Server-Sent Events (history from the audit log, then live).',
    docs: { query: ['resourceVersion', 'kind', 'namespace'], stream: true },
    async handle(call) {
      const operator = call.operator as OperatorIdentity;
      requireRole(operator, null, 'viewer');
      const lastEventId = call.req.headers['last-event-id'];
      const from =
        (typeof lastEventId === 'string' ? lastEventId : null) ?? call.query.get('resourceVersion');
      let cursor: number;
      if (from === null || from === '') cursor = await ctx.store.revision();
      else if (/^(0|[1-9][0-9]*)$/.test(from)) cursor = Number(from);
      else throw new HttpProblem('bad_request', 'resourceVersion must be a revision number');
      const kindParam = call.query.get('kind');
      const kind: Kind | null = kindParam === null ? null : kindNamed(kindParam);
      if (kindParam !== null && kind === null)
        throw new HttpProblem('bad_request', `unknown kind ${kindParam}`);
      const namespace = call.query.get('namespace');
      if (namespace !== null) requireRole(operator, namespace, 'viewer');

      const res = call.res;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-accel-buffering': 'no',
        connection: 'keep-alive',
      });
      res.write(`retry: 2000\n: watching after ${cursor}\n\n`);
      options.streams.add(res);

      let closed = false;
      let running = false;
      let again = false;
      const visible = (c: Change) =>
        (kind === null || c.key.kind === kind) &&
        (namespace === null || c.key.namespace === namespace) &&
        operatorMay(operator, c.key.namespace, 'viewer');
      const drained = () =>
        new Promise<void>((resolve) => {
          const done = () => {
            res.off('drain', done);
            res.off('close', done);
            resolve();
          };
          res.once('drain', done);
          res.once('close', done);
        });
      const pump = async () => {
        if (running) {
          again = true;
          return;
        }
        running = true;
        try {
          do {
            again = false;
            for (;;) {
              const page = await ctx.store.changes({ after: cursor, limit: pageSize });
              for (const change of page) {
                if (closed) return;
                cursor = change.revision;
                if (!visible(change)) continue;
                const ok = res.write(
                  `id: ${change.revision}\nevent: change\ndata: ${JSON.stringify(watchEvent(change))}\n\n`,
                );
                if (!ok) await drained();
              }
              if (page.length < pageSize) break;
            }
          } while (again && !closed);
        } catch (err) {
          ctx.logger.warn({ err }, 'watch stream: reading changes failed');
          res.destroy();
        } finally {
          running = false;
        }
      };
      const unsubscribe = ctx.store.onChange(() => void pump());
      const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), options.heartbeatMs);
      res.once('close', () => {
        closed = true;
        clearInterval(heartbeat);
        unsubscribe();
        options.streams.delete(res);
      });
      await pump();
    },
  };
}
