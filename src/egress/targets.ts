import { parseAuthority } from '../gateway/canonical.ts';

/** Where a forward-proxy request goes, as the client named it. */
export interface ProxyTarget {
  /** Lowercase, no trailing dot; IPv6 literals in brackets. */
  readonly host: string;
  readonly port: number;
  /** What goes in the Host header: the host, and the port when it is not the scheme's default. */
  readonly authority: string;
  /** Path and query sent to the destination, exactly as received (origin-form). */
  readonly pathAndQuery: string;
  readonly path: string;
  /** Raw query without `?`; empty when none. */
  readonly query: string;
}

export type TargetResult =
  | { readonly ok: true; readonly target: ProxyTarget }
  | { readonly ok: false; readonly detail: string };

const absoluteForm = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^#]*)$/;

/** True for an absolute-form request target (`scheme://…`): a request meant for a forward proxy. */
export function isAbsoluteForm(target: string): boolean {
  return target.charCodeAt(0) !== 0x2f && /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(target);
}

/**
 * An absolute-form target (`http://host[:port]/path?query`, RFC 9112 §3.2.2). Only http://: an
 * https:// destination is reached through a CONNECT tunnel, so TLS stays end to end. Details are
 * fixed texts, never the input.
 */
export function parseAbsoluteTarget(raw: string): TargetResult {
  const match = absoluteForm.exec(raw);
  if (!match) return { ok: false, detail: 'request-target is not an absolute http:// URL' };
  const scheme = match[1]!.toLowerCase();
  if (scheme === 'https')
    return { ok: false, detail: 'https:// destinations are reached with CONNECT, not absolute-form' };
  if (scheme !== 'http') return { ok: false, detail: 'only http:// destinations are forwarded' };
  const authority = parseAuthority(match[2]!);
  if (!authority.ok) return { ok: false, detail: `destination ${authority.detail}` };
  const port = authority.port ?? 80;
  let pathAndQuery = match[3]!;
  if (pathAndQuery === '' || pathAndQuery.startsWith('?')) pathAndQuery = `/${pathAndQuery}`;
  const q = pathAndQuery.indexOf('?');
  return {
    ok: true,
    target: {
      host: authority.hostname,
      port,
      authority: port === 80 ? authority.hostname : `${authority.hostname}:${port}`,
      pathAndQuery,
      path: q < 0 ? pathAndQuery : pathAndQuery.slice(0, q),
      query: q < 0 ? '' : pathAndQuery.slice(q + 1),
    },
  };
}

/** A CONNECT target: authority-form `host:port` (RFC 9110 §9.3.6), the port required. */
export function parseConnectTarget(raw: string): TargetResult {
  const authority = parseAuthority(raw);
  if (!authority.ok) return { ok: false, detail: `CONNECT target ${authority.detail}` };
  if (authority.port === null || authority.port === 0)
    return { ok: false, detail: 'CONNECT target must be host:port' };
  return {
    ok: true,
    target: {
      host: authority.hostname,
      port: authority.port,
      authority: `${authority.hostname}:${authority.port}`,
      pathAndQuery: '',
      path: '/',
      query: '',
    },
  };
}
