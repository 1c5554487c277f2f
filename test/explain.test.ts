// `gatehouse explain` (offline, a real CLI process) and POST /explain on the admin port of a real
// gateway with a real OpenID provider; plus the pipeline's verdict observer that both rely on.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Explanation } from '../src/gateway/explain.ts';
import { runPipeline } from '../src/gateway/pipeline.ts';
import type { CompiledRule } from '../src/plan/types.ts';
import {
  CONTINUE,
  type CompiledPolicy,
  respond,
  SKIP,
  type Stage,
  type Verdict,
} from '../src/policies/types.ts';
import { fakeContext } from './helpers/fake-context.ts';
import { httpRequest } from './helpers/http.ts';
import { startTestIdp, type TestIdp } from './helpers/idp.ts';
import {
  freePort,
  type RunningProcess,
  runCli,
  startGateway,
  tempConfigDir,
  writeConfig,
} from './helpers/process.ts';
import { type EchoUpstream, startEchoUpstream } from './helpers/upstream.ts';

const sha256 = (key: string) => createHash('sha256').update(key).digest('hex');
const apiKey = randomBytes(24).toString('base64url');

describe('pipeline observer', () => {
  const policy = (name: string, answer: () => Verdict | Promise<Verdict>): CompiledPolicy => ({
    name,
    handle: answer,
  });
  const rule = (stages: Array<[Stage, CompiledPolicy[]]>) =>
    ({ pipeline: stages.map(([stage, policies]) => ({ stage, policies })) }) as unknown as CompiledRule;

  test('sees every verdict in run order, sync and async', async () => {
    const seen: string[] = [];
    const r = rule([
      [
        'authenticate',
        [policy('a', () => SKIP), policy('b', async () => CONTINUE), policy('c', () => CONTINUE)],
      ],
      ['authorize', [policy('d', () => CONTINUE), policy('e', () => respond('forbidden', 'no'))]],
    ]);
    const result = await runPipeline(r, fakeContext(), (stage, p, v) =>
      seen.push(`${stage}:${p.name}:${v.kind}`),
    );
    assert.deepEqual(seen, [
      'authenticate:a:skip',
      'authenticate:b:continue',
      'authorize:d:continue',
      'authorize:e:respond',
    ]);
    assert.equal(result.kind, 'respond');
  });

  test('an async authentication method that steps aside last still means 401, not forward', async () => {
    const r = rule([
      ['authenticate', [policy('a', () => SKIP), policy('b', async () => SKIP)]],
      ['authorize', [policy('d', () => CONTINUE)]],
    ]);
    const result = await runPipeline(r, fakeContext());
    assert.equal(result.kind, 'respond');
    assert.equal(result.kind === 'respond' && result.code, 'unauthenticated');
  });
});

describe('gatehouse explain (offline)', () => {
  let dir: string;
  let config: string;
  let idpServer: Server;
  let idpHits = 0;

  before(async () => {
    // An identity provider that counts: offline explain must never call it.
    idpServer = createServer((_req, res) => {
      idpHits++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"keys":[]}');
    });
    await new Promise<void>((resolve) => idpServer.listen(0, '127.0.0.1', resolve));
    const idpUrl = `http://127.0.0.1:${(idpServer.address() as AddressInfo).port}`;
    const [jwksUrl, introspectUrl] = [`${idpUrl}/jwks`, `${idpUrl}/introspect`];
    dir = tempConfigDir('gatehouse-explain-');
    config = writeConfig(
      dir,
      'gateway.yaml',
      `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, address: 127.0.0.1, port: 18080 }]
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: orders }
spec: { targets: [{ url: http://127.0.0.1:7001/base }] }
---
apiVersion: gatehouse.dev/v1
kind: IdentityProvider
metadata: { name: corp }
spec:
  issuer: http://idp.test
  jwksUri: ${jwksUrl}
  audiences: [orders]
  introspection: { endpoint: ${introspectUrl}, clientId: gw, clientSecret: { env: IDP_SECRET } }
---
apiVersion: gatehouse.dev/v1
kind: Consumer
metadata: { name: partner-a }
spec:
  apiKeys: [{ sha256: ${sha256(apiKey)}, name: main }]
  groups: [partners]
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: shop }
spec:
  gateway: edge
  upstream: orders
  rules:
    - { path: /health, methods: [GET], authenticate: [{ noAuth: {} }] }
    - { path: '/api/{**}', stripPrefix: /api, authenticate: [{ noAuth: {} }] }
    - path: '/orders/{id}'
      methods: [GET]
      authenticate: [{ jwt: { provider: corp } }, { apiKey: {} }]
      mutate: { headers: { X-User-Id: '{{ identity.sub }}' } }
    - { path: '/opaque/{**}', authenticate: [{ introspection: { provider: corp } }] }
    - path: '/admin/{**}'
      authenticate: [{ apiKey: {} }]
      authorize: { requiredScopes: [admin] }
`,
    );
  });

  after(async () => {
    await new Promise<void>((resolve) => idpServer.close(() => resolve()));
  });

  async function explain(args: string[]) {
    const proc = runCli(['explain', '--config', config, ...args]);
    const { code } = await proc.exited;
    return { code, stdout: proc.stdout(), stderr: proc.stderr() };
  }

  async function explainJson(args: string[]) {
    const run = await explain(['--json', ...args]);
    assert.equal(run.stderr, '');
    return { code: run.code, e: JSON.parse(run.stdout) as Explanation };
  }

  test('a public route: canonical request, rule, verdicts, upstream URL and headers; exit 0', async () => {
    const run = await explain(['GET', 'http://api.test/api/a/../v1//items?x=1']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /canonical {2}GET api\.test \/api\/v1\/items\?x=1/);
    assert.match(run.stdout, /route {6}default\/shop#1 {2}\/api\/\{\*\*\}/);
    assert.match(run.stdout, /authenticate noAuth {2}continue/);
    assert.match(run.stdout, /FORWARD to http:\/\/127\.0\.0\.1:7001\/base\/v1\/items\?x=1/);
    assert.match(run.stdout, /x-forwarded-host: api\.test/);
    assert.match(run.stdout, /offline/);
  });

  test('no route: 404 with the canonical path it was routed on; exit 1', async () => {
    const { code, e } = await explainJson(['GET', 'http://api.test/nope/./x']);
    assert.equal(code, 1);
    assert.deepEqual(e.canonical, { method: 'GET', host: 'api.test', path: '/nope/x', query: '' });
    assert.equal(e.route, null);
    assert.equal(e.outcome.decision, 'deny');
    assert.equal(e.outcome.decision === 'deny' && e.outcome.status, 404);
    const human = await explain(['GET', 'http://api.test/nope']);
    assert.match(human.stdout, /no route \(404\)/);
  });

  test('refused before routing, with the gateway’s own checks (encoded slash, repeated Authorization)', async () => {
    const slash = await explainJson(['GET', 'http://api.test/api/a%2Fb']);
    assert.equal(slash.code, 1);
    assert.equal(slash.e.rejected?.code, 'bad_path');
    assert.equal(slash.e.canonical, null);
    const twice = await explainJson([
      'GET',
      'http://api.test/health',
      '-H',
      'Authorization: a',
      '-H',
      'Authorization: b',
    ]);
    assert.equal(twice.e.rejected?.code, 'duplicate_header');
    const host = await explainJson(['GET', '/health', '-H', 'Host: bad_host:99999']);
    assert.equal(host.e.rejected?.code, 'bad_host');
  });

  test('jwt answers unavailable offline, says so, and nothing is contacted', async () => {
    // Shaped like a JWT (the policy steps aside for anything else); the signature is never checked.
    const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const token = `${part({ alg: 'RS256', kid: 'k1' })}.${part({ sub: 'x', iss: 'http://idp.test' })}.c2ln`;
    const run = await explain(['GET', 'http://api.test/orders/7', '-H', `Authorization: Bearer ${token}`]);
    assert.equal(run.code, 1);
    assert.match(run.stdout, /respond 503 identity_provider_unavailable/);
    assert.match(run.stdout, /identity provider not contacted offline/);
    assert.match(run.stdout, /apiKey +not-run/);
    assert.equal(idpHits, 0);
  });

  test('introspection answers unavailable offline: the token is not sent anywhere', async () => {
    const { code, e } = await explainJson([
      'GET',
      'http://api.test/opaque/x',
      '-H',
      'Authorization: Bearer opaque-123',
    ]);
    assert.equal(code, 1);
    assert.equal(e.policies[0]?.code, 'identity_provider_unavailable');
    assert.match(e.policies[0]?.note ?? '', /not contacted offline/);
    assert.equal(idpHits, 0);
  });

  test('an API key: jwt steps aside, apiKey authenticates the consumer, the key is not echoed', async () => {
    const { code, e } = await explainJson(['GET', 'http://api.test/orders/7', '-H', `X-API-Key: ${apiKey}`]);
    assert.equal(code, 0);
    assert.deepEqual(
      e.policies.map((p) => [p.stage, p.policy, p.verdict]),
      [
        ['authenticate', 'jwt', 'skip'],
        ['authenticate', 'apiKey', 'continue'],
        ['mutate', 'headers', 'continue'],
      ],
    );
    assert.equal(e.identity?.consumer, 'partner-a');
    assert.deepEqual(e.route?.params, { id: '7' });
    assert.equal(e.outcome.decision === 'forward' && e.outcome.url, 'http://127.0.0.1:7001/base/orders/7');
    assert.ok(e.outcome.decision === 'forward' && e.outcome.removed.includes('x-api-key'));
    assert.equal(e.outcome.decision === 'forward' && e.outcome.set['x-user-id'], 'partner-a');
    assert.doesNotMatch(JSON.stringify(e), new RegExp(apiKey));
  });

  test('credentials passed through are redacted in the upstream header list', async () => {
    const { e } = await explainJson(['GET', 'http://api.test/health', '-H', 'Authorization: Bearer s3cr3t']);
    assert.equal(e.outcome.decision, 'forward');
    assert.doesNotMatch(JSON.stringify(e), /s3cr3t/);
    assert.ok(
      e.outcome.decision === 'forward' &&
        e.outcome.headers.some(([n, v]) => n === 'Authorization' && v === '<redacted>'),
    );
  });

  test('denied by authorize: the verdict’s status, code and WWW-Authenticate; no credential: 401', async () => {
    const { code, e } = await explainJson(['GET', 'http://api.test/admin/x', '-H', `X-API-Key: ${apiKey}`]);
    assert.equal(code, 1);
    const denial = e.policies.find((p) => p.stage === 'authorize');
    assert.equal(denial?.verdict, 'respond');
    assert.equal(denial?.status, 403);
    assert.equal(e.outcome.decision === 'deny' && e.outcome.code, 'insufficient_scope');
    const none = await explainJson(['GET', 'http://api.test/admin/x']);
    assert.equal(none.e.outcome.decision === 'deny' && none.e.outcome.status, 401);
    assert.equal(none.e.policies.find((p) => p.stage === 'authorize')?.verdict, 'not-run');
  });

  test('usage errors and an invalid configuration exit 2', async () => {
    assert.equal((await explain(['GET'])).code, 2);
    assert.equal((await explain(['GET', 'http://api.test/health', '-H', 'no-colon'])).code, 2);
    assert.equal((await explain(['GET', 'health'])).code, 2);
    assert.equal((await explain(['GET', 'https://api.test/health'])).code, 2, 'no https listener');
    const bad = writeConfig(
      dir,
      'bad.yaml',
      'apiVersion: gatehouse.dev/v1\nkind: Gateway\nmetadata: { name: x }\nspec: {}\n',
    );
    const proc = runCli(['explain', '--config', bad, 'GET', 'http://api.test/']);
    assert.equal((await proc.exited).code, 2);
    assert.match(proc.stderr(), /bad\.yaml:\d+:\d+/);
  });
});

describe('POST /explain on the admin port (live)', () => {
  let idp: TestIdp;
  let upstream: EchoUpstream;
  let gateway: RunningProcess;
  let port: number;
  let admin: number;

  before(async () => {
    idp = await startTestIdp();
    upstream = await startEchoUpstream();
    [port, admin] = [await freePort(), await freePort()];
    const dir = tempConfigDir('gatehouse-explain-admin-');
    const config = writeConfig(
      dir,
      'gateway.yaml',
      `apiVersion: gatehouse.dev/v1
kind: Gateway
metadata: { name: edge }
spec:
  listeners: [{ name: public, address: 127.0.0.1, port: ${port} }]
  admin: { port: ${admin} }
---
apiVersion: gatehouse.dev/v1
kind: Upstream
metadata: { name: echo }
spec: { targets: [{ url: ${upstream.url} }] }
---
apiVersion: gatehouse.dev/v1
kind: IdentityProvider
metadata: { name: corp }
spec: { issuer: ${idp.issuer}, audiences: [${idp.jwtResource}], algorithms: [ES256] }
---
apiVersion: gatehouse.dev/v1
kind: APIRule
metadata: { name: shop }
spec:
  gateway: edge
  upstream: echo
  rules:
    - path: '/orders/{id}'
      methods: [GET]
      authenticate: [{ jwt: { provider: corp } }]
      authorize: { requiredScopes: [orders.read] }
---
apiVersion: gatehouse.dev/v1
kind: Policy
metadata: { name: admins-trial }
spec:
  targetRef: { kind: APIRule, name: shop }
  mode: shadow
  authorize: { groups: [admins] }
`,
    );
    gateway = await startGateway([config]);
    // Ready means the key set is fetched.
    for (let i = 0; i < 100 && (await httpRequest(admin, '/readyz')).status !== 200; i++)
      await new Promise((r) => setTimeout(r, 100));
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
    await idp?.close();
  });

  const post = (body: unknown) =>
    httpRequest(admin, '/explain', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  test('a valid token verifies against the live key set; nothing is forwarded', async () => {
    const token = await idp.token({ scope: 'orders.read', jwt: true });
    const res = await post({
      method: 'GET',
      url: `http://127.0.0.1:${port}/orders/42`,
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(res.status, 200, res.body);
    const e = res.json<Explanation>();
    assert.equal(e.live, true);
    assert.deepEqual(
      e.policies.map((p) => [p.policy, p.verdict]),
      [
        ['jwt', 'continue'],
        ['requiredScopes', 'continue'],
        ['shadow:groups', 'continue'],
      ],
    );
    // The shadow Policy's would-be denial is explained, not recorded: explain changes no state.
    assert.match(e.policies[2]?.note ?? '', /shadow mode: would have answered 403 forbidden/);
    const metrics = await httpRequest(admin, '/metrics');
    assert.doesNotMatch(metrics.body, /^gatehouse_shadow_denials_total\{/m);
    assert.doesNotMatch(gateway.stdout(), /shadow deny/);
    assert.equal(e.identity?.method, 'jwt');
    assert.equal(e.outcome.decision === 'forward' && e.outcome.url, `${upstream.url}/orders/42`);
    assert.doesNotMatch(res.body, new RegExp(token.split('.')[2]!));
    assert.equal(upstream.requests.length, 0);
    // …while the same request, proxied, records it (so the check above can fail).
    const real = await httpRequest(port, '/orders/42', { headers: { authorization: `Bearer ${token}` } });
    assert.equal(real.status, 200);
    assert.match((await httpRequest(admin, '/metrics')).body, /^gatehouse_shadow_denials_total\{/m);
  });

  test('a token without the scope: 403 insufficient_scope explained', async () => {
    const forwarded = upstream.requests.length;
    const token = await idp.token({ scope: 'read', jwt: true });
    const res = await post({
      method: 'GET',
      url: '/orders/1',
      headers: [
        ['Host', 'api.test'],
        ['Authorization', `Bearer ${token}`],
      ],
    });
    const e = res.json<Explanation>();
    assert.equal(e.outcome.decision === 'deny' && e.outcome.code, 'insufficient_scope');
    assert.equal(upstream.requests.length, forwarded);
  });

  test('bad input is a 400 problem; other methods stay refused', async () => {
    assert.equal((await post('{not json')).status, 400);
    assert.equal((await post({ method: 'GET' })).status, 400);
    assert.equal((await post({ method: 'GET', url: 'http://x/', headers: { 'bad name': 'v' } })).status, 400);
    assert.equal((await httpRequest(admin, '/explain')).status, 400);
    assert.equal((await httpRequest(admin, '/plan', { method: 'POST', body: '{}' })).status, 404);
  });
});
