import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import Value from 'typebox/value';
import { fakeContext } from '../../../../test/helpers/fake-context.ts';
import type { ClientCredentialsSettings, TokenResult } from '../../../egress/client-credentials.ts';
import { offlineCredentials, type OutboundCredentials } from '../../../egress/credentials.ts';
import type { PolicyDeps } from '../../types.ts';
import { type ClientCredentialsConfig, clientCredentials } from './policy.ts';

/** Credentials whose token source answers what the test says (the source has its own tests). */
function credentialsWith(cached: string | null, fetched: TokenResult) {
  const asked: ClientCredentialsSettings[] = [];
  const credentials: OutboundCredentials = {
    live: true,
    secret: (ref) => (ref.env === 'CLIENT_SECRET' ? 'shh' : undefined),
    tokenSource(settings) {
      asked.push(settings);
      return { cached: () => cached, get: () => Promise.resolve(fetched) };
    },
  };
  return { credentials, asked };
}

function compile(config: Record<string, unknown>, credentials: OutboundCredentials) {
  const deps = { credentials: () => credentials } as Pick<PolicyDeps, 'credentials'> as PolicyDeps;
  const full = {
    tokenUrl: 'https://idp.example/token',
    clientId: 'gw',
    clientSecret: { env: 'CLIENT_SECRET' },
    ...config,
  };
  return clientCredentials.compile(
    Value.Default(clientCredentials.schema, structuredClone(full)) as ClientCredentialsConfig,
    deps,
  );
}

describe('mutate.clientCredentials', () => {
  test('a cached token is set synchronously as the Bearer Authorization', () => {
    const { credentials, asked } = credentialsWith('tok-1', { ok: false, reason: 'unused' });
    const policy = compile({ scope: 'payments', audience: 'https://api.example' }, credentials);
    const ctx = fakeContext({ headers: { authorization: 'Bearer internal' } });
    assert.deepEqual(policy.handle(ctx), { kind: 'continue' });
    assert.deepEqual([...ctx.upstreamHeaders!], [['authorization', 'Bearer tok-1']]);
    assert.deepEqual(asked[0], {
      tokenUrl: 'https://idp.example/token',
      clientId: 'gw',
      clientSecret: 'shh',
      authMethod: 'client_secret_basic',
      scope: 'payments',
      audience: 'https://api.example',
      resource: null,
      timeoutMs: 5000,
      maxResponseBytes: 65536,
      refreshBeforeMs: 60000,
      defaultLifetimeMs: 60000,
    });
  });

  test('no cached token: waits for one; none to be had: 503 upstream_credential_unavailable', async () => {
    const ok = compile({}, credentialsWith(null, { ok: true, token: 'tok-2' }).credentials);
    const ctx = fakeContext();
    const verdict = ok.handle(ctx);
    assert.ok(verdict instanceof Promise);
    assert.deepEqual(await verdict, { kind: 'continue' });
    assert.equal(ctx.upstreamHeaders!.get('authorization'), 'Bearer tok-2');

    const down = compile(
      {},
      credentialsWith(null, { ok: false, reason: 'token endpoint answered HTTP 503' }).credentials,
    );
    const denied = await down.handle(fakeContext());
    assert.equal(denied.kind, 'respond');
    assert.equal((denied as { code: string }).code, 'upstream_credential_unavailable');
    assert.doesNotMatch(JSON.stringify(denied), /HTTP 503/, 'the reason is logged, not told');
  });

  test('config errors: secret not set, secret over plain http, credentials in the URL', () => {
    const { credentials } = credentialsWith(null, { ok: false, reason: '' });
    assert.throws(() => compile({ clientSecret: { env: 'NOPE' } }, credentials), /NOPE is not set/);
    assert.throws(() => compile({ tokenUrl: 'http://idp.example/token' }, credentials), /must be https/);
    assert.throws(() => compile({ tokenUrl: 'https://u:p@idp.example/token' }, credentials), /credentials/);
    assert.doesNotThrow(() => compile({ tokenUrl: 'http://127.0.0.1:9000/token' }, credentials));
    assert.doesNotThrow(() => compile({ tokenUrl: 'http://localhost:9000/token' }, credentials));
  });

  test('offline: compiles without the secret and never calls out', async () => {
    const policy = compile({ clientSecret: { env: 'NOPE' } }, offlineCredentials);
    const verdict = await policy.handle(fakeContext());
    assert.equal((verdict as { code: string }).code, 'upstream_credential_unavailable');
  });
});
