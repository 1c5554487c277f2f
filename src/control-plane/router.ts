import type { Route } from './routes.ts';

interface CompiledRoute {
  route: Route;
  segments: ReadonlyArray<{ literal: string } | { param: string }>;
}

export type RouteMatch =
  | { found: true; route: Route; params: Record<string, string> }
  /** The path exists but not for this method: 405 with these in `Allow`. */
  | { found: false; allowed: string[] };

/**
 * Matches request paths against every module's route templates. Literal segments win over
 * `{param}` segments, so a module's `/api/v1/gateways` is not shadowed by a template; two routes
 * with the same method and template are a startup error rather than a silent override.
 */
export class RouteTable {
  readonly #routes: CompiledRoute[] = [];

  constructor(routes: readonly Route[]) {
    const seen = new Set<string>();
    for (const route of routes) {
      const segments = route.path
        .split('/')
        .slice(1)
        .map((s) => (/^\{[A-Za-z][A-Za-z0-9]*\}$/.test(s) ? { param: s.slice(1, -1) } : { literal: s }));
      const shape = `${route.method} /${segments.map((s) => ('param' in s ? '{}' : s.literal)).join('/')}`;
      if (seen.has(shape)) throw new TypeError(`two control-plane routes for ${route.method} ${route.path}`);
      seen.add(shape);
      this.#routes.push({ route, segments });
    }
  }

  /** `path` without the query; returns null when no route has this path. Throws URIError on bad encoding. */
  match(method: string, path: string): RouteMatch | null {
    const parts = path.split('/').slice(1);
    let best: { route: Route; params: Record<string, string>; score: number } | null = null;
    const allowed = new Set<string>();
    for (const { route, segments } of this.#routes) {
      if (segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let score = 0;
      let ok = true;
      for (let i = 0; i < segments.length; i++) {
        const segment = segments[i]!;
        const part = parts[i]!;
        if ('literal' in segment) {
          if (segment.literal !== part) {
            ok = false;
            break;
          }
          // Earlier literal segments weigh more: /a/{x} beats /{y}/b for /a/b.
          score += 2 ** (segments.length - i);
        } else {
          if (part === '') {
            ok = false;
            break;
          }
          params[segment.param] = decodeURIComponent(part);
        }
      }
      if (!ok) continue;
      allowed.add(route.method);
      if (route.method !== method && !(method === 'HEAD' && route.method === 'GET')) continue;
      if (!best || score > best.score) best = { route, params, score };
    }
    if (best) return { found: true, route: best.route, params: best.params };
    return allowed.size > 0 ? { found: false, allowed: [...allowed].sort() } : null;
  }
}
