import Type, { type Static, type TSchema } from 'typebox';
import { Duration } from '../config/duration.ts';
import { factoriesOf, stageFields } from '../policies/registry.ts';

/**
 * The policy fields of a forward proxy, in stage order: every stage but `mutate` (a tunnel cannot be
 * rewritten), without policies that answer browsers themselves (CORS), `authenticate` optional in
 * the schema (required when enabled, which compile checks).
 */
function forwardProxyStageFields(): Record<string, TSchema> {
  const all = stageFields();
  const fields: Record<string, TSchema> = {};
  const request = factoriesOf('request').filter(([, f]) => !f.answers && f.field === undefined);
  if (request.length > 0)
    fields.request = Type.Optional(
      Type.Object(Object.fromEntries(request.map(([key, f]) => [key, Type.Optional(f.schema)])), {
        additionalProperties: false,
        description: 'Checks on the client address, before authentication (e.g. `ipAllow: [10.0.0.0/8]`).',
      }),
    );
  for (const [name, schema] of Object.entries(all)) {
    if (name === 'request' || name === 'mutate') continue;
    const items = name === 'authenticate' ? (schema as { items?: TSchema }).items : undefined;
    fields[name] =
      items === undefined
        ? schema
        : Type.Optional(
            Type.Array(items, {
              minItems: 1,
              description:
                'How callers of the forward proxy authenticate, tried in order like a rule’s (e.g. `apiKey` ' +
                'from a header, or `mtls` on an https listener with clientAuth). Required when the proxy is ' +
                'enabled: an open proxy says `- noAuth: {}`. A credential header a method reads is not forwarded.',
            }),
          );
  }
  return fields;
}

export const ForwardProxySpec = Type.Object(
  {
    enabled: Type.Boolean({
      default: false,
      description:
        'Accept absolute-form requests (`GET http://host/path`) and CONNECT tunnels on every listener ' +
        '(only when `mode` is egress).',
    }),
    allow: Type.Array(
      Type.String({
        pattern: '^(\\*\\.)?([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\\[[0-9A-Fa-f:.]+\\])(:[0-9]{1,5})?$',
      }),
      {
        default: [],
        description:
          'Destinations callers may reach, as `host:port` (`api.stripe.com:443`) or without a port for ' +
          'ports 80 and 443; `*.example.com` allows every name under example.com, not example.com ' +
          'itself. Everything else is refused with 403 `egress_denied`. Also the `destination` label of ' +
          '`gatehouse_egress_requests_total`.',
      },
    ),
    allowPrivate: Type.Boolean({
      default: false,
      description:
        'Allow destinations that resolve to private networks (10/8, 172.16/12, 192.168/16, fc00::/7) and ' +
        'shared address space (100.64/10). Loopback, link-local, cloud metadata, multicast, unspecified ' +
        'and reserved addresses stay refused: list them in allowAddresses to open them.',
    }),
    allowAddresses: Type.Array(Type.String({ description: 'IPv4 or IPv6 CIDR, or one address.' }), {
      default: [],
      description:
        'Addresses destinations may resolve to although they are not public (e.g. 127.0.0.1/32 for a ' +
        'local test server). Checked on the resolved address, which is then the one connected to.',
    }),
    timeouts: Type.Object(
      {
        resolve: Duration('Time allowed to resolve a destination name; slower answers 503.', '5s'),
        connect: Duration('Time allowed to open the connection; slower answers 503.', '5s'),
        response: Duration(
          'Time allowed until the response headers arrive (absolute-form requests); slower answers 504.',
          '30s',
        ),
        idle: Duration(
          'A response body, or a CONNECT tunnel, with no data either way for this long is closed.',
          '5m',
        ),
      },
      { additionalProperties: false, default: {}, description: 'Time limits of forward-proxied calls.' },
    ),
    ...forwardProxyStageFields(),
  },
  {
    additionalProperties: false,
    description:
      'Forward-proxy mode of an egress gateway: `http://` absolute-form requests are forwarded and ' +
      '`CONNECT host:port` opens a TCP tunnel, only to allow-listed destinations and never to a ' +
      'non-public address unless allowed (checked on the resolved address). Callers go through the ' +
      'policies written here like through a rule’s (`request`, `authenticate`, `authorize`, `rateLimit`); ' +
      'in `rateLimit`, `key: path:destination` counts per allow-list entry.',
  },
);
export type ForwardProxySpec = Static<typeof ForwardProxySpec>;
