import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { IncomingHttpHeaders } from 'node:http';
import { fakeContext } from '../../../../test/helpers/fake-context.ts';
import type { PolicyDeps, Verdict } from '../../types.ts';
import { type CorsConfig, cors } from './policy.ts';

const defaults: CorsConfig = {
  allowOrigins: ['https://app.example.com'],
  allowMethods: ['GET', 'HEAD', 'POST'],
  allowHeaders: [],
  exposeHeaders: [],
  allowCredentials: false,
  maxAge: '600s',
};

function compile(config: Partial<CorsConfig>) {
  return cors.compile({ ...defaults, ...config }, {} as PolicyDeps);
}

function run(config: Partial<CorsConfig>, method: string, headers: IncomingHttpHeaders) {
  const ctx = fakeContext({ method, headers });
  const verdict = compile(config).handle(ctx) as Verdict;
  assert.ok(!(verdict instanceof Promise), 'cors answers synchronously');
  return { verdict, recorded: Object.fromEntries(ctx.responseHeaders ?? []) };
}

const preflight = (origin: string, method: string, requestHeaders?: string): IncomingHttpHeaders => ({
  origin,
  'access-control-request-method': method,
  ...(requestHeaders === undefined ? {} : { 'access-control-request-headers': requestHeaders }),
});

describe('request.cors preflights', () => {
  const config: Partial<CorsConfig> = {
    allowOrigins: ['https://app.example.com', 'https://*.example.org'],
    allowMethods: ['GET', 'PUT', 'DELETE'],
    allowHeaders: ['Authorization', 'Content-Type'],
    allowCredentials: true,
    maxAge: '5m',
  };

  test('an allowed preflight is answered 204 with the allow headers and the origin reflected', () => {
    const { verdict } = run(
      config,
      'OPTIONS',
      preflight('https://a.example.org', 'PUT', 'content-type,authorization'),
    );
    assert.deepEqual(verdict, {
      kind: 'answer',
      status: 204,
      headers: {
        'access-control-allow-origin': 'https://a.example.org',
        'access-control-allow-credentials': 'true',
        'access-control-allow-methods': 'GET, PUT, DELETE',
        'access-control-allow-headers': 'Authorization, Content-Type',
        'access-control-max-age': '300',
        vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
      },
    });
  });

  test('GET, HEAD and POST pass the method check unlisted, as browsers never check them', () => {
    const { verdict } = run(
      { ...config, allowMethods: ['PUT'] },
      'OPTIONS',
      preflight('https://app.example.com', 'POST'),
    );
    assert.equal(verdict.kind, 'answer');
  });

  test('a disallowed origin, method or header is refused with 403 cors_rejected and no CORS headers', () => {
    const cases: Array<[IncomingHttpHeaders, RegExp]> = [
      [preflight('https://evil.test', 'GET'), /origin/],
      [preflight('https://app.example.com', 'PATCH'), /method/],
      [preflight('https://app.example.com', 'PUT', 'content-type, x-secret'), /x-secret/],
    ];
    for (const [headers, why] of cases) {
      const { verdict, recorded } = run(config, 'OPTIONS', headers);
      assert.equal(verdict.kind, 'respond');
      assert.ok(verdict.kind === 'respond');
      assert.equal(verdict.code, 'cors_rejected');
      assert.match(verdict.detail ?? '', why);
      assert.equal(verdict.headers, undefined);
      assert.deepEqual(recorded, {});
    }
  });

  test('`*` in allowHeaders allows any header but Authorization, which must be named', () => {
    const any = { allowOrigins: ['*'], allowHeaders: ['*'] };
    assert.equal(run(any, 'OPTIONS', preflight('https://x.test', 'GET', 'x-a, x-b')).verdict.kind, 'answer');
    const refused = run(any, 'OPTIONS', preflight('https://x.test', 'GET', 'x-a, authorization')).verdict;
    assert.ok(refused.kind === 'respond');
    assert.match(refused.detail ?? '', /authorization/);
    const named = { allowOrigins: ['*'], allowHeaders: ['*', 'Authorization'] };
    assert.equal(
      run(named, 'OPTIONS', preflight('https://x.test', 'GET', 'authorization')).verdict.kind,
      'answer',
    );
  });

  test('with every origin allowed and no credentials the answer is `*`, the same for everyone', () => {
    const policy = compile({ allowOrigins: ['*'] });
    const a = policy.handle(fakeContext({ method: 'OPTIONS', headers: preflight('https://a.test', 'GET') }));
    const b = policy.handle(fakeContext({ method: 'OPTIONS', headers: preflight('https://b.test', 'GET') }));
    assert.equal(a, b, 'one prepared verdict');
    assert.ok(!(a instanceof Promise) && a.kind === 'answer');
    assert.equal(a.headers['access-control-allow-origin'], '*');
    assert.equal(a.headers['access-control-allow-credentials'], undefined);
  });

  test('an OPTIONS request that is not a preflight is treated like any request', () => {
    const { verdict, recorded } = run(config, 'OPTIONS', { origin: 'https://app.example.com' });
    assert.equal(verdict.kind, 'continue');
    assert.equal(recorded['access-control-allow-origin'], 'https://app.example.com');
  });
});

describe('request.cors on other requests', () => {
  test('an allowed origin gets the CORS headers recorded for whatever the answer is', () => {
    const { verdict, recorded } = run({ allowCredentials: true, exposeHeaders: ['X-Total', 'ETag'] }, 'GET', {
      origin: 'https://app.example.com',
    });
    assert.equal(verdict.kind, 'continue');
    assert.deepEqual(recorded, {
      vary: 'Origin',
      'access-control-allow-origin': 'https://app.example.com',
      'access-control-allow-credentials': 'true',
      'access-control-expose-headers': 'X-Total, ETag',
    });
  });

  test('another origin, or none, gets only Vary: Origin and is not refused (CORS is no access control)', () => {
    for (const headers of [{ origin: 'https://evil.test' }, {}]) {
      const { verdict, recorded } = run({}, 'POST', headers);
      assert.equal(verdict.kind, 'continue');
      assert.deepEqual(recorded, { vary: 'Origin' });
    }
  });

  test('with every origin allowed: `*` and no Vary, the answer does not depend on the origin', () => {
    assert.deepEqual(run({ allowOrigins: ['*'] }, 'GET', { origin: 'https://x.test' }).recorded, {
      'access-control-allow-origin': '*',
    });
    assert.deepEqual(run({ allowOrigins: ['*'] }, 'GET', {}).recorded, {});
  });
});

describe('request.cors credentials rules', () => {
  test('credentials with `*` origins, methods, headers or exposed headers are refused at compile time', () => {
    const refused: Array<[Partial<CorsConfig>, RegExp]> = [
      [{ allowOrigins: ['*'] }, /not `\*`/],
      [{ allowMethods: ['*'] }, /allowMethods/],
      [{ allowHeaders: ['*'] }, /allowHeaders/],
      [{ exposeHeaders: ['*'] }, /exposeHeaders/],
    ];
    for (const [config, why] of refused)
      assert.throws(
        () => compile({ ...config, allowCredentials: true }),
        (err: Error) => {
          assert.ok(err instanceof TypeError);
          assert.match(err.message, why);
          return true;
        },
      );
  });

  test('without credentials the same wildcards are fine', () => {
    compile({ allowOrigins: ['*'], allowMethods: ['*'], allowHeaders: ['*'], exposeHeaders: ['*'] });
  });
});
