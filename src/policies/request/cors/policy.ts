import Type, { type Static } from 'typebox';
import { Duration, toMillis } from '../../../config/duration.ts';
import { type RequestContext, setResponseHeader } from '../../../gateway/context.ts';
import { CONTINUE, type PolicyFactory, respond, type Verdict } from '../../types.ts';
import { compileOrigins } from './origins.ts';

const token = "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$";

const CorsConfig = Type.Object(
  {
    allowOrigins: Type.Array(Type.String({ minLength: 1, maxLength: 256 }), {
      minItems: 1,
      uniqueItems: true,
      description:
        'Origins whose pages may call this route: exact origins as browsers send them ' +
        '(`https://app.example.com`, `http://localhost:3000`), patterns whose first label is `*` ' +
        '(`https://*.example.com`: any subdomain, at any depth, same scheme and port), or `*` alone ' +
        '(every origin; not with `allowCredentials`). `null` cannot be allowed.',
    }),
    allowMethods: Type.Array(Type.String({ pattern: "^[A-Z0-9!#$%&'*+.^_`|~-]+$" }), {
      default: ['GET', 'HEAD', 'POST'],
      uniqueItems: true,
      description:
        'Methods a preflight may ask for (`Access-Control-Allow-Methods`). GET, HEAD and POST are always ' +
        'accepted, as browsers do not preflight-check them; `*` means any (not with `allowCredentials`).',
    }),
    allowHeaders: Type.Array(Type.String({ pattern: token }), {
      default: [],
      uniqueItems: true,
      description:
        'Request headers a preflight may ask for (`Access-Control-Allow-Headers`), e.g. Authorization, ' +
        'Content-Type. `*` means any but Authorization, which must be listed by name (Fetch standard); ' +
        'not with `allowCredentials`.',
    }),
    exposeHeaders: Type.Array(Type.String({ pattern: token }), {
      default: [],
      uniqueItems: true,
      description:
        'Response headers the page may read besides the CORS-safelisted ones (`Access-Control-Expose-Headers`). ' +
        '`*` means all (not with `allowCredentials`).',
    }),
    allowCredentials: Type.Boolean({
      default: false,
      description:
        'Let pages send cookies and HTTP authentication and read the answer (`Access-Control-Allow-Credentials`). ' +
        'Requires exact origins or patterns: with `*` anywhere it is a compile error.',
    }),
    maxAge: Duration(
      'How long a browser may reuse a preflight answer (`Access-Control-Max-Age`, whole seconds; browsers ' +
        'cap it, Chromium at 2h).',
      '600s',
    ),
  },
  {
    additionalProperties: false,
    description:
      'Cross-origin requests from browsers (Fetch standard). Preflights (OPTIONS with Origin and ' +
      'Access-Control-Request-Method) are answered by the gateway — 204 with the allow headers, or 403 ' +
      '`cors_rejected` when the origin, method or a header is not allowed — before authentication and ' +
      'never forwarded, also when the rule’s `methods` leave out OPTIONS. Other requests from an allowed ' +
      'origin get `Access-Control-Allow-Origin` and the rest on every answer, errors included; from ' +
      'another origin they get no CORS headers (the browser then hides the answer) but are not refused: ' +
      'CORS is no access control.',
  },
);
export type CorsConfig = Static<typeof CorsConfig>;

/** Methods browsers never preflight-check (Fetch: CORS-safelisted methods). */
const safelistedMethods = new Set(['GET', 'HEAD', 'POST']);
const headerName = new RegExp(token);
const originRejected = respond('cors_rejected', 'the origin is not allowed');
const methodRejected = respond('cors_rejected', 'the requested method is not allowed');

/** `request: { cors: {...} }`: answers preflights and adds CORS headers to answers for allowed origins. */
export const cors: PolicyFactory<CorsConfig> = {
  name: 'cors',
  stage: 'request',
  schema: CorsConfig,
  answers: true,
  compile(config) {
    const problems: string[] = [];
    const origins = compileOrigins(config.allowOrigins, problems);
    const credentials = config.allowCredentials;
    if (credentials) {
      // With credentials, browsers refuse `Access-Control-Allow-Origin: *` and read `*` in the other
      // headers as a name; reflecting any origin instead would let every site act as the user.
      if (origins.any)
        problems.push('allowCredentials: true needs exact origins or patterns, not `*`: list the origins');
      for (const field of ['allowMethods', 'allowHeaders', 'exposeHeaders'] as const)
        if (config[field].includes('*'))
          problems.push(
            `allowCredentials: true: \`*\` in ${field} is not a wildcard to browsers, list the names`,
          );
    }
    if (problems.length > 0) throw new TypeError(problems.join('; '));

    const methods = new Set(config.allowMethods);
    const anyMethod = methods.has('*');
    const headers = new Set(config.allowHeaders.map((h) => h.toLowerCase()));
    const anyHeader = headers.has('*');
    const exposed = config.exposeHeaders.join(', ');
    // The answer depends on the Origin unless every origin gets `*`: caches must know.
    const varies = !origins.any;
    const preflightHeaders: Record<string, string> = {
      'access-control-allow-methods': config.allowMethods.join(', '),
      'access-control-max-age': String(Math.floor(toMillis(config.maxAge) / 1000)),
      vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
    };
    if (config.allowHeaders.length > 0)
      preflightHeaders['access-control-allow-headers'] = config.allowHeaders.join(', ');
    if (credentials) preflightHeaders['access-control-allow-credentials'] = 'true';
    const anyOriginAnswer: Verdict = Object.freeze({
      kind: 'answer',
      status: 204,
      headers: Object.freeze({ ...preflightHeaders, 'access-control-allow-origin': '*' }),
    });

    /** The header names of Access-Control-Request-Headers that are not allowed; null when all are. */
    const rejectedHeader = (requested: string): string | null => {
      for (const raw of requested.split(',')) {
        const name = raw.trim().toLowerCase();
        if (name === '' || headers.has(name) || (anyHeader && name !== 'authorization')) continue;
        return name;
      }
      return null;
    };

    const preflight = (origin: string, ctx: RequestContext): Verdict => {
      if (!origins.allows(origin)) return originRejected;
      const method = ctx.headers['access-control-request-method'] as string;
      if (!safelistedMethods.has(method) && !anyMethod && !methods.has(method)) return methodRejected;
      const requested = ctx.headers['access-control-request-headers'];
      if (typeof requested === 'string') {
        const name = rejectedHeader(requested);
        if (name !== null)
          return respond(
            'cors_rejected',
            headerName.test(name)
              ? `the request header ${name} is not allowed`
              : 'a request header is not allowed',
          );
      }
      if (origins.any) return anyOriginAnswer;
      return {
        kind: 'answer',
        status: 204,
        headers: { ...preflightHeaders, 'access-control-allow-origin': origin },
      };
    };

    return {
      name: 'cors',
      answersPreflights: true,
      handle(ctx): Verdict {
        const origin = ctx.headers.origin;
        if (
          ctx.method === 'OPTIONS' &&
          origin !== undefined &&
          ctx.headers['access-control-request-method'] !== undefined
        )
          return preflight(origin, ctx);
        if (varies) setResponseHeader(ctx, 'vary', 'Origin');
        if (origin === undefined || !origins.allows(origin)) return CONTINUE;
        setResponseHeader(ctx, 'access-control-allow-origin', origins.any ? '*' : origin);
        if (credentials) setResponseHeader(ctx, 'access-control-allow-credentials', 'true');
        if (exposed !== '') setResponseHeader(ctx, 'access-control-expose-headers', exposed);
        return CONTINUE;
      },
    };
  },
};
