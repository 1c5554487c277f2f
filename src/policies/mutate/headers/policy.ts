import Type, { type Static } from 'typebox';
import { removeUpstreamHeader, setUpstreamHeader } from '../../../gateway/context.ts';
import { isReservedUpstreamHeader } from '../../../gateway/headers.ts';
import { CONTINUE, type PolicyFactory } from '../../types.ts';
import { compileTemplate, type HeaderTemplate, templateVariables } from './template.ts';

const headerName = "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$";

const HeadersConfig = Type.Record(
  Type.String({ pattern: headerName }),
  Type.String({ maxLength: 4096, description: 'The value: literal text and `{{ variable }}` placeholders.' }),
  {
    additionalProperties: false,
    minProperties: 1,
    description:
      'Headers set on the upstream request, by name. The client’s copies of every header named here are ' +
      'always removed first. A value is literal text with `{{ variable }}` placeholders, compiled when the ' +
      `config loads (an unknown variable is an error). Variables: ${templateVariables.join(', ')}. ` +
      '`claims.<name>` reads a verified token’s claim, or for apiKey callers the Consumer’s metadata. ' +
      '`identity.scopes` is space-separated; other lists are joined with ","; objects become JSON. ' +
      'Control characters (CR, LF…) are removed and non-ASCII characters percent-encoded as UTF-8. When a ' +
      'variable has no value (or the value is empty) the header is not set at all. ' +
      '`{{ token }}` is the JWT minted by `mutate.token` on the same rule.',
  },
);
export type HeadersConfig = Static<typeof HeadersConfig>;

/** Identity and request data as upstream headers: `mutate: { headers: { X-User-Id: "{{ identity.sub }}" } }`. */
export const headers: PolicyFactory<HeadersConfig> = {
  name: 'headers',
  stage: 'mutate',
  schema: HeadersConfig,
  compile(config) {
    const templates: Array<readonly [string, HeaderTemplate]> = [];
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const [name, source] of Object.entries(config)) {
      const lower = name.toLowerCase();
      if (seen.has(lower)) problems.push(`${name}: named twice (header names ignore case)`);
      else if (isReservedUpstreamHeader(lower)) problems.push(`${name}: set by the gateway itself`);
      seen.add(lower);
      try {
        templates.push([lower, compileTemplate(source)]);
      } catch (err) {
        problems.push(`${name}: ${(err as Error).message}`);
      }
    }
    if (problems.length > 0) throw new TypeError(problems.join('; '));
    return {
      name: 'headers',
      handle(ctx) {
        for (const [name, template] of templates) {
          const value = template(ctx);
          if (value === undefined) removeUpstreamHeader(ctx, name);
          else setUpstreamHeader(ctx, name, value);
        }
        return CONTINUE;
      },
    };
  },
};
