// Token sources against a real token endpoint on loopback (a small node:http server whose answers
// each test chooses); time is a clock the test moves, so expiry needs no waiting.

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { Agent } from 'undici';
import { type ClientCredentialsSettings, createTokenSource, type TokenSource } from './client-credentials.ts';
import { CredentialStore } from './credentials.ts';

type Answer = (req: IncomingMessage, body: string, res: ServerResponse) => void;

let server: Server;
let url: string;
let answer: Answer;
const seen: Array<{ headers: IncomingMessage['headers']; body: string }> = [];
const dispatcher = new Agent();
let clock = 1_000_000;
let counter = 0;

const bearer =
  (expiresIn: number | undefined): Answer =>
  (_req, _body, res) => {
    counter++;
    const json: Record<string, unknown> = { access_token: `token-${counter}`, token_type: 'Bearer' };
    if (expiresIn !== undefined) json.expires_in = expiresIn;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(json));
  };

before(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      body += d;
    });
    req.on('end', () => {
      seen.push({ headers: req.headers, body });
      answer(req, body, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await dispatcher.close();
});
beforeEach(() => {
  seen.length = 0;
  answer = bearer(300);
});

function source(overrides: Partial<ClientCredentialsSettings> = {}): TokenSource {
  return createTokenSource(
    {
      tokenUrl: url,
      clientId: 'gateway client',
      clientSecret: 's3cr:et&',
      authMethod: 'client_secret_basic',
      scope: 'read write',
      audience: null,
      resource: null,
      timeoutMs: 5_000,
      maxResponseBytes: 4096,
      refreshBeforeMs: 60_000,
      defaultLifetimeMs: 60_000,
      ...overrides,
    },
    { now: () => clock, dispatcher, log: () => {} },
  );
}

describe('client credentials token source', () => {
  test('asks once, then answers from the cache synchronously', async () => {
    const tokens = source();
    assert.equal(tokens.cached(), null);
    const first = await tokens.get();
    assert.ok(first.ok);
    assert.equal(tokens.cached(), first.token);
    assert.deepEqual(await tokens.get(), first);
    assert.equal(seen.length, 1);
    const request = seen[0]!;
    const basic = Buffer.from(String(request.headers.authorization).slice(6), 'base64').toString();
    assert.equal(basic, 'gateway+client:s3cr%3Aet%26', 'RFC 6749 §2.3.1: each part form-encoded');
    assert.deepEqual(Object.fromEntries(new URLSearchParams(request.body)), {
      grant_type: 'client_credentials',
      scope: 'read write',
    });
  });

  test('client_secret_post sends the credentials in the form; audience and resource when set', async () => {
    const tokens = source({
      authMethod: 'client_secret_post',
      scope: null,
      audience: 'api',
      resource: 'https://api',
    });
    assert.ok((await tokens.get()).ok);
    assert.equal(seen[0]!.headers.authorization, undefined);
    assert.deepEqual(Object.fromEntries(new URLSearchParams(seen[0]!.body)), {
      grant_type: 'client_credentials',
      audience: 'api',
      resource: 'https://api',
      client_id: 'gateway client',
      client_secret: 's3cr:et&',
    });
  });

  test('concurrent callers share one request', async () => {
    const tokens = source();
    const results = await Promise.all(Array.from({ length: 5 }, () => tokens.get()));
    assert.equal(seen.length, 1);
    assert.ok(results.every((r) => r.ok && r.token === (results[0] as { token: string }).token));
  });

  test('refreshes in the background before expiry, keeping the old token meanwhile', async () => {
    const tokens = source();
    const first = await tokens.get();
    assert.ok(first.ok);
    clock += 241_000; // 300s token, refreshed 60s before its end
    assert.equal(tokens.cached(), first.token, 'still valid: answered at once');
    assert.deepEqual(await tokens.get(), first, 'and to waiters too, while the refresh runs');
    // Bounded wait for the background refresh to land.
    for (let i = 0; i < 500 && tokens.cached() === first.token; i++)
      await new Promise((r) => setTimeout(r, 10));
    assert.notEqual(tokens.cached(), first.token);
    assert.equal(seen.length, 2);
  });

  test('a short-lived token is refreshed halfway, and not sent in its last seconds', async () => {
    answer = bearer(20);
    const tokens = source();
    const first = await tokens.get();
    assert.ok(first.ok);
    clock += 9_000;
    assert.equal(tokens.cached(), first.token);
    assert.equal(seen.length, 1, 'not refreshed before halfway');
    answer = (_req, _body, res) => {
      res.writeHead(503);
      res.end();
    };
    clock += 2_000;
    assert.equal(tokens.cached(), first.token, 'refresh failing: the valid token is still used');
    for (let i = 0; i < 500 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    clock += 5_000; // 16s of 20: inside the margin
    assert.equal(tokens.cached(), null);
  });

  test('no expires_in: the default lifetime', async () => {
    answer = bearer(undefined);
    const tokens = source({ defaultLifetimeMs: 30_000 });
    assert.ok((await tokens.get()).ok);
    clock += 25_000;
    assert.equal(tokens.cached(), null);
  });

  test('endpoint down with nothing cached: fails, remembers the failure for a second', async () => {
    answer = (_req, _body, res) => {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('down');
    };
    const tokens = source();
    assert.deepEqual(await tokens.get(), { ok: false, reason: 'token endpoint answered HTTP 503' });
    assert.equal((await tokens.get()).ok, false);
    assert.equal(seen.length, 1, 'held: no second call within the hold');
    clock += 1_000;
    answer = bearer(300);
    assert.equal((await tokens.get()).ok, true);
    assert.equal(seen.length, 2);
  });

  test('answers that are not a Bearer token are refused', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ access_token: 'x', token_type: 'DPoP' }, /token_type/],
      [{ token_type: 'Bearer' }, /access_token/],
      [{ access_token: 'has space', token_type: 'Bearer' }, /access_token/],
      [{ access_token: 'a\r\nX-Evil: 1', token_type: 'bearer' }, /access_token/],
    ];
    for (const [json, reason] of cases) {
      answer = (_req, _body, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(json));
      };
      const result = await source().get();
      assert.equal(result.ok, false);
      assert.match((result as { reason: string }).reason, reason);
    }
  });

  test('bounded: a response over the size cap, and one that never comes', async () => {
    answer = (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: 'a'.repeat(5000), token_type: 'Bearer' }));
    };
    assert.deepEqual(await source().get(), {
      ok: false,
      reason: 'token endpoint response larger than 4096 bytes',
    });
    answer = () => {}; // never answers
    assert.deepEqual(await source({ timeoutMs: 200 }).get(), {
      ok: false,
      reason: 'token endpoint timed out',
    });
  });
});

test('the credential store shares one source per client, so plans (reloads) share cached tokens', () => {
  const store = new CredentialStore({ env: { SECRET: 'x' }, now: () => clock, log: () => {} });
  try {
    const settings: ClientCredentialsSettings = {
      tokenUrl: url,
      clientId: 'a',
      clientSecret: 'x',
      authMethod: 'client_secret_basic',
      scope: null,
      audience: null,
      resource: null,
      timeoutMs: 1000,
      maxResponseBytes: 4096,
      refreshBeforeMs: 1000,
      defaultLifetimeMs: 1000,
    };
    assert.equal(store.tokenSource({ ...settings }), store.tokenSource({ ...settings }));
    assert.notEqual(store.tokenSource(settings), store.tokenSource({ ...settings, clientSecret: 'rotated' }));
    assert.equal(store.secret({ env: 'SECRET' }), 'x');
    assert.equal(store.secret({ env: 'UNSET' }), undefined);
  } finally {
    store.close();
  }
});
