import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RouteConflictError, Router } from './router.ts';

/** The value of the route answering the request, or null; most assertions only care which route won. */
function winner<T>(router: Router<T>, path: string, method = 'GET', host = 'api.example.com'): T | null {
  return router.match(host, method, path)?.value ?? null;
}

function conflictOf(fn: () => void): RouteConflictError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof RouteConflictError, `expected RouteConflictError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a RouteConflictError');
}

describe('path precedence', () => {
  test('literal beats param beats {**}', () => {
    const router = new Router<string>();
    router.add(undefined, undefined, '/a/{**}', 'rest');
    router.add(undefined, undefined, '/a/{id}', 'param');
    router.add(undefined, undefined, '/a/b', 'literal');

    assert.equal(winner(router, '/a/b'), 'literal');
    assert.equal(winner(router, '/a/c'), 'param');
    assert.equal(winner(router, '/a/c/d'), 'rest');
    assert.equal(winner(router, '/a'), 'rest');
    assert.equal(winner(router, '/b'), null);
  });

  test('backtracks from a literal dead end to a param', () => {
    const router = new Router<string>();
    router.add(undefined, undefined, '/a/{x}/c', 'param');
    router.add(undefined, undefined, '/a/b/d', 'literal');

    assert.deepEqual(router.match('h', 'GET', '/a/b/c'), {
      value: 'param',
      params: { x: 'b' },
      template: '/a/{x}/c',
    });
    assert.equal(winner(router, '/a/b/d'), 'literal');
    assert.equal(winner(router, '/a/z/d'), null);
  });

  test('backtracks through several levels and falls back to {**}', () => {
    const router = new Router<string>();
    router.add(undefined, undefined, '/a/b/c/d', 'deep-literal');
    router.add(undefined, undefined, '/a/{x}/{y}/e', 'params');
    router.add(undefined, undefined, '/{**}', 'catch-all');

    assert.equal(winner(router, '/a/b/c/d'), 'deep-literal');
    assert.equal(winner(router, '/a/b/c/e'), 'params');
    assert.deepEqual(router.match('h', 'GET', '/a/b/c/f'), {
      value: 'catch-all',
      params: { '**': 'a/b/c/f' },
      template: '/{**}',
    });
  });

  test('captured params are discarded when their branch fails', () => {
    const router = new Router<string>();
    router.add(undefined, undefined, '/{a}/{b}/x', 'two');
    router.add(undefined, undefined, '/{c}/y', 'one');

    assert.deepEqual(router.match('h', 'GET', '/p/y')?.params, { c: 'p' });
    assert.deepEqual(router.match('h', 'GET', '/p/q/x')?.params, { a: 'p', b: 'q' });
  });

  test('{*} matches one segment without capturing it', () => {
    const router = new Router<string>();
    router.add(undefined, undefined, '/v/{*}/items/{id}', 'v');

    assert.deepEqual(router.match('h', 'GET', '/v/2/items/9'), {
      value: 'v',
      params: { id: '9' },
      template: '/v/{*}/items/{id}',
    });
    assert.equal(winner(router, '/v/items/9'), null);
  });

  test('{**} matches zero or more segments', () => {
    const router = new Router<string>();
    router.add(undefined, undefined, '/files/{**}', 'files');

    assert.deepEqual(router.match('h', 'GET', '/files')?.params, { '**': '' });
    assert.deepEqual(router.match('h', 'GET', '/files/')?.params, { '**': '' });
    assert.deepEqual(router.match('h', 'GET', '/files/a')?.params, { '**': 'a' });
    assert.deepEqual(router.match('h', 'GET', '/files/a/b/')?.params, { '**': 'a/b/' });
    assert.equal(winner(router, '/filesystem'), null);
    assert.equal(winner(router, '/'), null);
  });

  test('root-level {**} matches "/"', () => {
    const router = new Router<string>();
    router.add(undefined, undefined, '/{**}', 'all');
    assert.deepEqual(router.match('h', 'GET', '/')?.params, { '**': '' });
  });

  test('"/a" and "/a/" are different templates and paths', () => {
    const router = new Router<string>();
    router.add(undefined, undefined, '/a', 'bare');
    router.add(undefined, undefined, '/a/', 'slash');
    router.add(undefined, undefined, '/', 'root');

    assert.equal(winner(router, '/a'), 'bare');
    assert.equal(winner(router, '/a/'), 'slash');
    assert.equal(winner(router, '/'), 'root');
    assert.equal(winner(router, '/a//'), null);

    const onlyBare = new Router<string>();
    onlyBare.add(undefined, undefined, '/a', 'bare');
    assert.equal(winner(onlyBare, '/a/'), null);
  });

  test('a param does not match an empty segment', () => {
    const router = new Router<string>();
    router.add(undefined, undefined, '/users/{id}', 'user');
    assert.equal(winner(router, '/users/'), null);
    assert.equal(winner(router, '/users'), null);
    assert.equal(winner(router, '/users/7'), 'user');
  });

  test('literals compare exactly against the raw encoded segment', () => {
    const router = new Router<string>();
    router.add(undefined, undefined, '/Docs', 'upper');
    router.add(undefined, undefined, '/a%20b', 'encoded');

    assert.equal(winner(router, '/Docs'), 'upper');
    assert.equal(winner(router, '/docs'), null);
    assert.equal(winner(router, '/a%20b'), 'encoded');
    assert.equal(winner(router, '/a b'), null);
  });

  test('params are percent-decoded; a broken encoding fails only that branch', () => {
    const router = new Router<string>();
    router.add(undefined, undefined, '/u/{name}', 'user');
    router.add(undefined, undefined, '/u/{**}', 'rest');

    assert.deepEqual(router.match('h', 'GET', '/u/J%C3%BCrgen%20K')?.params, { name: 'Jürgen K' });
    // %E0%A4 is a truncated UTF-8 sequence: the {name} branch fails and {**} is tried, which also
    // decodes and fails, so nothing matches.
    assert.equal(router.match('h', 'GET', '/u/%E0%A4'), null);

    // {*} captures nothing and so never decodes: a branch made of {*} still matches the same request.
    const router2 = new Router<string>();
    router2.add(undefined, undefined, '/u/{name}', 'user');
    router2.add(undefined, undefined, '/{*}/{*}', 'opaque');
    assert.equal(winner(router2, '/u/%E0%A4'), 'opaque');
    assert.equal(winner(router2, '/u/ok'), 'user');
  });
});

describe('methods', () => {
  test('explicit method routes share a node; unknown methods miss', () => {
    const router = new Router<string>();
    router.add(undefined, ['GET', 'HEAD'], '/items', 'read');
    router.add(undefined, ['POST'], '/items', 'write');

    assert.equal(winner(router, '/items', 'GET'), 'read');
    assert.equal(winner(router, '/items', 'HEAD'), 'read');
    assert.equal(winner(router, '/items', 'POST'), 'write');
    assert.equal(winner(router, '/items', 'DELETE'), null);
    // Methods are compared as given; the caller upper-cases standard methods.
    assert.equal(winner(router, '/items', 'get'), null);
  });

  test('an any-method route accepts every method', () => {
    const router = new Router<string>();
    router.add(undefined, [], '/any', 'any');
    assert.equal(winner(router, '/any', 'PATCH'), 'any');
    assert.equal(winner(router, '/any', 'CUSTOM'), 'any');
  });

  test('falls through to a lower-precedence template when the method is not accepted', () => {
    const router = new Router<string>();
    router.add(undefined, ['GET'], '/a/b', 'literal-get');
    router.add(undefined, ['POST'], '/a/{x}', 'param-post');
    router.add(undefined, undefined, '/a/{**}', 'rest-any');

    assert.equal(winner(router, '/a/b', 'GET'), 'literal-get');
    assert.equal(winner(router, '/a/b', 'POST'), 'param-post');
    assert.equal(winner(router, '/a/b', 'DELETE'), 'rest-any');

    const noFallback = new Router<string>();
    noFallback.add(undefined, ['GET'], '/a/b', 'literal-get');
    noFallback.add(undefined, ['GET'], '/a/{x}', 'param-get');
    assert.equal(winner(noFallback, '/a/b', 'PUT'), null);
  });
});

describe('conflicts', () => {
  test('same template and method conflicts, naming both templates', () => {
    const router = new Router<string>();
    router.add(undefined, ['GET'], '/a/{id}', 'first');
    const error = conflictOf(() => router.add(undefined, ['POST', 'GET'], '/a/{id}', 'second'));
    assert.deepEqual(
      { existing: error.conflict.existing, added: error.conflict.added },
      { existing: '/a/{id}', added: '/a/{id}' },
    );
    assert.equal(error.message, error.conflict.message);
    assert.match(error.message, /GET \/a\/\{id\}/);
    assert.match(error.message, /POST,GET \/a\/\{id\}/);
    // The failed add must not have registered POST.
    assert.equal(winner(router, '/a/1', 'POST'), null);
  });

  test('templates differing only in param names or {name} vs {*} are the same node', () => {
    const router = new Router<string>();
    router.add(undefined, undefined, '/a/{id}/b', 'first');
    const renamed = conflictOf(() => router.add(undefined, undefined, '/a/{key}/b', 'second'));
    assert.equal(renamed.conflict.existing, '/a/{id}/b');
    assert.equal(renamed.conflict.added, '/a/{key}/b');
    assert.match(renamed.message, /\/a\/\{id\}\/b/);
    assert.match(renamed.message, /\/a\/\{key\}\/b/);
    conflictOf(() => router.add(undefined, undefined, '/a/{*}/b', 'third'));
  });

  test('{**} templates with the same prefix conflict', () => {
    const router = new Router<string>();
    router.add(undefined, ['GET'], '/f/{**}', 'first');
    conflictOf(() => router.add(undefined, ['GET'], '/f/{**}', 'second'));
  });

  test('an any-method route conflicts with any route at the same node, in either order', () => {
    const explicitFirst = new Router<string>();
    explicitFirst.add(undefined, ['GET'], '/x', 'get');
    conflictOf(() => explicitFirst.add(undefined, undefined, '/x', 'any'));

    const anyFirst = new Router<string>();
    anyFirst.add(undefined, [], '/x', 'any');
    conflictOf(() => anyFirst.add(undefined, ['DELETE'], '/x', 'delete'));
    conflictOf(() => anyFirst.add(undefined, undefined, '/x', 'any-again'));
  });

  test('conflicts are per host key', () => {
    const router = new Router<string>();
    router.add(['a.example.com'], ['GET'], '/x', 'a');
    router.add(['*.example.com'], ['GET'], '/x', 'wild');
    router.add(undefined, ['GET'], '/x', 'any');
    conflictOf(() => router.add(['b.example.com', 'a.example.com'], ['GET'], '/x', 'dup'));
    conflictOf(() => router.add(['*.example.com'], ['GET'], '/x', 'dup'));
    // The conflicting add is all-or-nothing: b.example.com must not have been registered.
    assert.equal(winner(router, '/x', 'GET', 'b.example.com'), 'wild');
  });

  test('non-conflicts: different methods, different hosts, different shapes', () => {
    const router = new Router<string>();
    router.add(undefined, ['GET'], '/x/{id}', 'get');
    router.add(undefined, ['PUT'], '/x/{other}', 'put');
    router.add(['a.example.com'], ['GET'], '/x/{id}', 'host-a');
    router.add(['b.example.com'], ['GET'], '/x/{id}', 'host-b');
    router.add(undefined, ['GET'], '/x/literal', 'literal');
    router.add(undefined, ['GET'], '/x/{**}', 'rest');
    router.add(undefined, ['GET'], '/x/{id}/', 'slash');
    // Repeating a host or method inside one route is not a self-conflict.
    router.add(['c.example.com', 'c.example.com'], ['GET', 'GET'], '/y', 'repeat');

    assert.deepEqual(router.match('h', 'PUT', '/x/1'), {
      value: 'put',
      params: { other: '1' },
      template: '/x/{other}',
    });
    assert.equal(winner(router, '/x/1', 'GET', 'b.example.com'), 'host-b');
    assert.equal(winner(router, '/x/1/', 'GET'), 'slash');
    assert.equal(winner(router, '/y', 'GET', 'c.example.com'), 'repeat');
  });
});

describe('invalid input', () => {
  const invalidTemplates: Array<[string, RegExp]> = [
    ['', /start with "\/"/],
    ['a/b', /start with "\/"/],
    ['/a{id}', /mixes literal text and braces/],
    ['/{id}b', /mixes literal text and braces/],
    ['/{id', /mixes literal text and braces/],
    ['/id}', /mixes literal text and braces/],
    ['/{}', /mixes literal text and braces/],
    ['/{{id}}', /param name/],
    ['/{1id}', /param name/],
    ['/{a-b}', /param name/],
    ['/{__proto__}', /reserved/],
    ['/{**}/a', /last segment/],
    ['/{**}/', /last segment/],
    ['/{id}/x/{id}', /more than once/],
    ['/a/../b', /dot segments/],
    ['/a/./b', /dot segments/],
    ['/a b', /percent-encoded/],
    ['/a?b', /percent-encoded/],
    ['/a#b', /percent-encoded/],
    ['/100%', /two hex digits/],
    ['/a%2Fb', /%2F/],
  ];
  for (const [template, reason] of invalidTemplates) {
    test(`rejects template ${JSON.stringify(template)}`, () => {
      const router = new Router<string>();
      assert.throws(
        () => router.add(undefined, undefined, template, 'x'),
        (error: unknown) => {
          assert.ok(error instanceof TypeError);
          assert.match(error.message, reason);
          return true;
        },
      );
      assert.deepEqual(router.routes(), []);
    });
  }

  test('rejects malformed hosts and methods', () => {
    const router = new Router<string>();
    for (const host of ['API.example.com', '*', '*.', 'a.*.com', 'example.com:8080', '', 'a b']) {
      assert.throws(() => router.add([host], undefined, '/', 'x'), TypeError, host);
    }
    for (const method of ['get', 'GET POST', '']) {
      assert.throws(() => router.add(undefined, [method], '/', 'x'), TypeError, method);
    }
    assert.deepEqual(router.routes(), []);
  });
});

describe('hosts', () => {
  test('exact, then wildcard from most specific, then any host', () => {
    const router = new Router<string>();
    router.add(undefined, undefined, '/{**}', 'any');
    router.add(['*.com'], undefined, '/{**}', 'star-com');
    router.add(['*.example.com'], undefined, '/{**}', 'star-example');
    router.add(['*.b.example.com'], undefined, '/{**}', 'star-b');
    router.add(['a.b.example.com'], undefined, '/{**}', 'exact');

    assert.equal(winner(router, '/', 'GET', 'a.b.example.com'), 'exact');
    assert.equal(winner(router, '/', 'GET', 'c.b.example.com'), 'star-b');
    assert.equal(winner(router, '/', 'GET', 'x.y.b.example.com'), 'star-b');
    assert.equal(winner(router, '/', 'GET', 'b.example.com'), 'star-example');
    assert.equal(winner(router, '/', 'GET', 'example.com'), 'star-com');
    assert.equal(winner(router, '/', 'GET', 'com'), 'any');
    assert.equal(winner(router, '/', 'GET', 'example.org'), 'any');
  });

  test('a wildcard does not match the bare domain', () => {
    const router = new Router<string>();
    router.add(['*.example.com'], undefined, '/', 'wild');
    assert.equal(winner(router, '/', 'GET', 'example.com'), null);
    assert.equal(winner(router, '/', 'GET', 'a.example.com'), 'wild');
    assert.equal(winner(router, '/', 'GET', 'a.b.example.com'), 'wild');
    assert.equal(winner(router, '/', 'GET', 'notexample.com'), null);
  });

  test('falls back to less specific hosts when the path or method misses', () => {
    const router = new Router<string>();
    router.add(['api.example.com'], ['GET'], '/orders', 'exact-get');
    router.add(['*.example.com'], undefined, '/orders/{id}', 'wild');
    router.add(undefined, ['POST'], '/orders', 'any-post');

    assert.equal(winner(router, '/orders', 'GET'), 'exact-get');
    assert.equal(winner(router, '/orders/5', 'GET'), 'wild');
    assert.equal(winner(router, '/orders', 'POST'), 'any-post');
    assert.equal(winner(router, '/orders', 'DELETE'), null);
  });

  test('one route can serve several hosts', () => {
    const router = new Router<string>();
    router.add(['a.example.com', '*.example.org'], ['GET'], '/', 'multi');
    assert.equal(winner(router, '/', 'GET', 'a.example.com'), 'multi');
    assert.equal(winner(router, '/', 'GET', 'x.example.org'), 'multi');
    assert.equal(winner(router, '/', 'GET', 'b.example.com'), null);
  });
});

test('routes() lists one entry per host in insertion order', () => {
  const router = new Router<string>();
  router.add(undefined, undefined, '/a', 'a');
  router.add(['x.example.com', '*.example.org'], ['GET', 'POST', 'GET'], '/b/{id}', 'b');
  router.add([], [], '/c/{**}', 'c');

  const listing = router.routes();
  assert.deepEqual(listing, [
    { host: '*', methods: null, template: '/a' },
    { host: 'x.example.com', methods: ['GET', 'POST'], template: '/b/{id}' },
    { host: '*.example.org', methods: ['GET', 'POST'], template: '/b/{id}' },
    { host: '*', methods: null, template: '/c/{**}' },
  ]);
  // The listing is a copy: mutating it cannot change the router.
  listing[1]!.methods!.push('DELETE');
  assert.deepEqual(router.routes()[1]!.methods, ['GET', 'POST']);
});

test('match() rejects paths that do not start with "/"', () => {
  const router = new Router<string>();
  router.add(undefined, undefined, '/{**}', 'all');
  assert.equal(winner(router, ''), null);
  assert.equal(winner(router, 'a/b'), null);
});

test('10 000 routes still match correctly', () => {
  const router = new Router<number>();
  let n = 0;
  for (let tenant = 0; tenant < 100; tenant++) {
    for (let resource = 0; resource < 25; resource++) {
      const base = `/t${tenant}/r${resource}`;
      router.add(undefined, ['GET'], base, n++);
      router.add(undefined, ['GET'], `${base}/{id}`, n++);
      router.add(undefined, ['POST'], `${base}/{id}/actions/{action}`, n++);
      router.add([`h${tenant}.example.com`], undefined, `${base}/{**}`, n++);
    }
  }
  assert.equal(n, 10_000);
  assert.equal(router.routes().length, 10_000);

  assert.equal(winner(router, '/t0/r0'), 0);
  assert.deepEqual(router.match('h', 'GET', '/t42/r7/abc'), {
    value: (42 * 25 + 7) * 4 + 1,
    params: { id: 'abc' },
    template: '/t42/r7/{id}',
  });
  assert.deepEqual(router.match('h', 'POST', '/t99/r24/5/actions/run')?.params, { id: '5', action: 'run' });
  assert.equal(winner(router, '/t99/r24/5/actions/run', 'POST'), 9998);
  // Host-specific catch-all wins on its host; on other hosts the deep path has no route.
  assert.equal(winner(router, '/t3/r4/a/b/c', 'GET', 'h3.example.com'), (3 * 25 + 4) * 4 + 3);
  assert.equal(winner(router, '/t3/r4/a/b/c', 'GET', 'h4.example.com'), null);
  assert.equal(winner(router, '/t100/r0'), null);
});
