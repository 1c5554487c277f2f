import { parseArgs } from 'node:util';
import { demoAudience, demoIdpPort } from '../dev/demo-client.ts';
import { DemoTokenError, requestDemoToken } from '../dev/demo-token.ts';

/**
 * `gatehouse token [--scope <scopes>]... [--idp <issuer>] [--audience <uri>]`: a demo access token
 * (a JWT) from the identity provider `gatehouse dev` runs, printed alone on stdout so it fits in
 * `curl -H "Authorization: Bearer $(gatehouse token --scope demo.read)"`.
 */
export async function runToken(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      scope: { type: 'string', multiple: true },
      idp: { type: 'string', default: `http://127.0.0.1:${demoIdpPort}` },
      audience: { type: 'string', default: demoAudience },
    },
  });
  const scopes = (values.scope ?? []).flatMap((s) => s.split(' ')).filter((s) => s !== '');
  try {
    const token = await requestDemoToken({ issuer: values.idp, scopes, audience: values.audience });
    const missing = scopes.filter((s) => !token.scopes.includes(s));
    if (missing.length > 0)
      process.stderr.write(`gatehouse token: not granted (unknown to the provider): ${missing.join(' ')}\n`);
    process.stdout.write(`${token.accessToken}\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof DemoTokenError)) throw err;
    process.stderr.write(`gatehouse token: ${err.message}\n`);
    return 1;
  }
}
