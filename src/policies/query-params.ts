// Query parameters read by policies (API keys, `{query.x}` references), decoded the way
// URLSearchParams decodes them, without parsing the whole query into an object per request.

/** application/x-www-form-urlencoded decoding of one name or value; bad escapes are kept as sent. */
export function decodeFormComponent(s: string): string {
  const plain = s.includes('+') ? s.replaceAll('+', ' ') : s;
  if (!plain.includes('%')) return plain;
  try {
    return decodeURIComponent(plain);
  } catch {
    return plain;
  }
}

/**
 * The value of a query parameter: undefined when absent, null when sent more than once (which
 * one is meant is not ours to guess). `rest` is the query without it, other parameters as sent.
 */
export function queryParam(query: string, name: string): { value: string; rest: string } | null | undefined {
  if (query === '') return undefined;
  let value: string | undefined;
  const rest: string[] = [];
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    if (decodeFormComponent(eq === -1 ? pair : pair.slice(0, eq)) !== name) {
      rest.push(pair);
      continue;
    }
    if (value !== undefined) return null;
    value = eq === -1 ? '' : decodeFormComponent(pair.slice(eq + 1));
  }
  return value === undefined ? undefined : { value, rest: rest.join('&') };
}
