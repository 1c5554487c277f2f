// Scoped policies: Policy resources attach stage configs (authenticate, authorize, mutate, ...) to
// many rules at once, at three scopes. For each rule the layers are, least specific first:
//   platform (targetRef Gateway) → application (APIRule selector) → service (APIRule name) → the rule.
// `mergeStages` turns those layers into the stages a rule runs; docs/policies.md states the rules.
// Everything here works on plain stage objects, so a policy added to the registry needs no change.

import type { LoadedResource } from '../config/load.ts';
import type { APIRule } from '../config/schemas/api-rule.ts';
import type { PolicySpec } from '../config/schemas/policy.ts';
import type { RequestContext } from '../gateway/context.ts';
import { factoriesOf, fieldsOf } from '../policies/registry.ts';
import { type CompiledPolicy, type Stage, stages, type Verdict } from '../policies/types.ts';

export const scopes = ['platform', 'application', 'service'] as const;
export type Scope = (typeof scopes)[number];
export type PolicyMode = 'enforce' | 'shadow';

/** A Policy that applies to a rule, as the plan records it (admin `/plan`, explain). */
export interface AppliedPolicy {
  /** `namespace/name` of the Policy. */
  readonly name: string;
  readonly scope: Scope;
  readonly mode: PolicyMode;
}

/** One source of stage configs for a rule: a Policy, or the rule itself (`policy: null`, always last). */
export interface StageLayer {
  readonly policy: AppliedPolicy | null;
  /** Namespace whose resources the layer's configs refer to (providers, consumers). */
  readonly namespace: string;
  /** The object holding the stage fields: a Policy's spec, or the rule. */
  readonly stages: Readonly<Record<string, unknown>>;
  /** Reports a problem at a path relative to `stages`, in the file and line the layer came from. */
  readonly report: (path: ReadonlyArray<string | number>, message: string) => void;
}

/** One policy config to compile: `config` may merge several layers; `layer` is the most specific of them. */
export interface MergedEntry {
  readonly key: string;
  readonly config: unknown;
  readonly layer: StageLayer;
  /** Where the config is written in `layer.stages` (errors from compiling it point here). */
  readonly path: ReadonlyArray<string | number>;
}

/** Policies of one stage, in run order. `authenticate` may appear several times: one chain per layer. */
export interface MergedStage {
  readonly stage: Stage;
  readonly entries: readonly MergedEntry[];
  /**
   * An authenticate chain run after another: it must not replace the caller an earlier chain
   * established with an anonymous identity (see `keepEstablishedCaller`).
   */
  readonly keepsCaller?: boolean;
}

/**
 * How the layers of each stage combine:
 * - chains: each layer's ordered list is a separate requirement; all must succeed.
 * - accumulate: every layer's policies run; all must hold (so deny lists add up, required scopes union).
 *   A policy that answers the client itself (`cors`) is the exception: the most specific layer's wins.
 * - override: per policy key, the most specific layer wins; map-valued configs merge key by key.
 */
export const stageMerge = {
  request: 'accumulate',
  authenticate: 'chains',
  authorize: 'accumulate',
  limit: 'accumulate',
  mutate: 'override',
} as const satisfies Record<Stage, 'chains' | 'accumulate' | 'override'>;

/** What the merge needs to know about the policies of a stage; by default read from the registry. */
export interface PolicyKinds {
  /** Keys of a stage's policies, in run order. */
  keysOf(stage: Stage): readonly string[];
  /** True when the key's config is a map (e.g. `mutate.headers`), merged key by key across layers. */
  isMap(stage: Stage, key: string): boolean;
  /**
   * True when the policy answers the client itself (`PolicyFactory.answers`, e.g. `request.cors`):
   * in an accumulating stage the most specific layer's config replaces the others.
   */
  answers?(stage: Stage, key: string): boolean;
  /** The rule field a policy is written as instead of inside its stage's object (`rateLimit`). */
  fieldOf?(stage: Stage, key: string): string | undefined;
}

export const registryPolicyKinds: PolicyKinds = {
  keysOf: (stage) => factoriesOf(stage).map(([key]) => key),
  isMap: (stage, key) => {
    const schema = factoriesOf(stage).find(([k]) => k === key)?.[1].schema as
      | Record<string, unknown>
      | undefined;
    return schema !== undefined && schema.type === 'object' && schema.patternProperties !== undefined;
  },
  answers: (stage, key) => factoriesOf(stage).find(([k]) => k === key)?.[1].answers === true,
  fieldOf: (stage, key) => factoriesOf(stage).find(([k]) => k === key)?.[1].field,
};

const scopeOf = (layer: StageLayer): Scope | 'rule' => layer.policy?.scope ?? 'rule';
const isShadow = (layer: StageLayer): boolean => layer.policy?.mode === 'shadow';

/**
 * The merge: turns a rule's layers (least specific first, the rule last; within a scope by Policy
 * name) into the stages the rule runs. Two Policies of the same scope that both set a field the
 * merge would have to choose between are reported (ambiguity fails closed).
 */
export function mergeStages(
  layers: readonly StageLayer[],
  kinds: PolicyKinds = registryPolicyKinds,
): MergedStage[] {
  layers = layers.map((layer) => withOwnFields(layer, kinds));
  const out: MergedStage[] = [];
  for (const stage of stages) {
    const how = stageMerge[stage];
    if (how === 'chains') {
      let chains = 0;
      for (const layer of layers) {
        if (isShadow(layer)) continue; // rejected when the Policy is checked; never run
        const list = layer.stages[stage];
        if (!Array.isArray(list) || list.length === 0) continue;
        const entries = (list as Array<Record<string, unknown>>).map((entry, index) => {
          const [key, config] = Object.entries(entry)[0]!;
          return { key, config, layer, path: [stage, index, key] };
        });
        out.push(chains++ === 0 ? { stage, entries } : { stage, entries, keepsCaller: true });
      }
    } else if (how === 'accumulate') {
      const entries: MergedEntry[] = [];
      // Enforced policies first, then shadow ones: a shadow denial is recorded only for requests
      // the enforced policies of the stage let through, i.e. the ones enforcing it would newly deny.
      for (const shadow of [false, true]) {
        for (const key of kinds.keysOf(stage)) {
          if (kinds.answers?.(stage, key)) continue;
          for (const layer of layers) {
            if (isShadow(layer) !== shadow) continue;
            const config = stageObject(layer, stage)?.[key];
            if (config !== undefined) entries.push({ key, config, layer, path: [stage, key] });
          }
        }
      }
      // A policy that answers the client (`cors`) runs last, after the shadow ones too, so they see
      // the requests it answers; one answer per request: the most specific layer's config.
      for (const key of kinds.keysOf(stage)) {
        if (!kinds.answers?.(stage, key)) continue;
        const contributors = layers.filter((l) => !isShadow(l) && stageObject(l, stage)?.[key] !== undefined);
        const last = contributors.at(-1);
        if (last !== undefined)
          entries.push({
            key,
            config: pickMostSpecific(stage, key, contributors),
            layer: last,
            path: [stage, key],
          });
      }
      if (entries.length > 0) out.push({ stage, entries });
    } else {
      const entries: MergedEntry[] = [];
      for (const key of kinds.keysOf(stage)) {
        const contributors = layers.filter((l) => !isShadow(l) && stageObject(l, stage)?.[key] !== undefined);
        const last = contributors.at(-1);
        if (last === undefined) continue;
        const config = kinds.isMap(stage, key)
          ? mergeMaps(stage, key, contributors)
          : pickMostSpecific(stage, key, contributors);
        entries.push({ key, config, layer: last, path: [stage, key] });
      }
      if (entries.length > 0) out.push({ stage, entries });
    }
  }
  return out;
}

/**
 * A layer as the merge sees it: configs written as a field of their own (`rateLimit: [...]`) moved
 * into their stage's object (as if `limit: { rateLimit: [...] }`), so every stage merges one way;
 * a problem found at `[stage, key, …]` is reported at `[field, …]`, where it is written.
 */
function withOwnFields(layer: StageLayer, kinds: PolicyKinds): StageLayer {
  if (kinds.fieldOf === undefined) return layer;
  let view: Record<string, unknown> | null = null;
  const moved = new Map<string, string>();
  for (const stage of stages) {
    for (const key of kinds.keysOf(stage)) {
      const field = kinds.fieldOf(stage, key);
      if (field === undefined || layer.stages[field] === undefined) continue;
      view ??= { ...layer.stages };
      const object = view[stage];
      view[stage] = {
        ...(object !== null && typeof object === 'object' ? object : {}),
        [key]: layer.stages[field],
      };
      moved.set(`${stage}\u0000${key}`, field);
    }
  }
  if (view === null) return layer;
  return {
    ...layer,
    stages: view,
    report(path, message) {
      const field = moved.get(`${path[0]}\u0000${path[1]}`);
      layer.report(field === undefined ? path : [field, ...path.slice(2)], message);
    },
  };
}

function stageObject(layer: StageLayer, stage: Stage): Record<string, unknown> | undefined {
  const value = layer.stages[stage];
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function sameScopeConflict(earlier: StageLayer, later: StageLayer): string {
  return (
    `also set by Policy ${earlier.policy?.name} at the same ${scopeOf(later)} scope, for a rule both ` +
    'apply to: ambiguous, so refused (set it in one of them, or at a more specific scope)'
  );
}

/** The most specific layer's config replaces the others. */
function pickMostSpecific(stage: Stage, key: string, contributors: readonly StageLayer[]): unknown {
  for (let i = 1; i < contributors.length; i++) {
    const earlier = contributors[i - 1]!;
    const later = contributors[i]!;
    if (later.policy !== null && scopeOf(earlier) === scopeOf(later))
      later.report([stage, key], sameScopeConflict(earlier, later));
  }
  return stageObject(contributors.at(-1)!, stage)![key];
}

/**
 * Map-valued configs merge entry by entry, the more specific layer winning per key. Keys are
 * compared case-insensitively: the maps of the mutate stage are keyed by header name.
 */
function mergeMaps(stage: Stage, key: string, contributors: readonly StageLayer[]): Record<string, unknown> {
  const merged = new Map<string, { name: string; value: unknown; layer: StageLayer }>();
  for (const layer of contributors) {
    const map = stageObject(layer, stage)![key] as Record<string, unknown>;
    for (const [name, value] of Object.entries(map)) {
      const id = name.toLowerCase();
      const earlier = merged.get(id);
      if (
        earlier &&
        earlier.layer !== layer &&
        layer.policy !== null &&
        scopeOf(earlier.layer) === scopeOf(layer)
      )
        layer.report([stage, key, name], sameScopeConflict(earlier.layer, layer));
      // Delete first so the entry takes the more specific spelling and position.
      merged.delete(id);
      merged.set(id, { name, value, layer });
    }
  }
  return Object.fromEntries([...merged.values()].map((e) => [e.name, e.value]));
}

/**
 * Wraps an authentication method of a chain that runs after another chain: when it succeeds with
 * an anonymous identity (`noAuth`, `anonymous`) while an earlier chain had established a caller,
 * that caller is kept. Between two established callers the later (more specific) one wins.
 */
export function keepEstablishedCaller(inner: CompiledPolicy): CompiledPolicy {
  const settle = (ctx: RequestContext, before: RequestContext['identity'], verdict: Verdict): Verdict => {
    if (verdict.kind === 'continue' && before?.subject != null && ctx.identity?.subject == null)
      ctx.identity = before;
    return verdict;
  };
  return Object.freeze({
    name: inner.name,
    challenge: inner.challenge,
    handle(ctx: RequestContext): Verdict | Promise<Verdict> {
      const before = ctx.identity;
      const outcome = inner.handle(ctx);
      if (outcome instanceof Promise) return outcome.then((verdict) => settle(ctx, before, verdict));
      return settle(ctx, before, outcome);
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Resolving Policy resources: checks every targetRef and finds the layers of each rule.

/** The Policies of a configuration, checked and indexed for `layersFor`. */
export interface PolicyIndex {
  /** The layers of one rule of an APIRule: its Policies by scope (by name within one), then the rule. */
  layersFor(apiRule: LoadedResource, ruleIndex: number): StageLayer[];
}

type Fail = (r: LoadedResource, path: Array<string | number>, message: string) => void;

interface CheckedPolicy {
  readonly resource: LoadedResource;
  readonly spec: PolicySpec;
  readonly applied: AppliedPolicy;
  readonly layer: StageLayer;
}

/**
 * Checks every Policy (targetRef shape, dangling references, what shadow mode allows) and indexes
 * the valid ones by what they target. `gateway` is the Gateway whose plan is being compiled:
 * platform Policies are those of its namespace that name it.
 */
export function indexPolicies(
  resources: readonly LoadedResource[],
  gateway: LoadedResource,
  fail: Fail,
): PolicyIndex {
  const platform: CheckedPolicy[] = [];
  const application: CheckedPolicy[] = [];
  const service = new Map<string, CheckedPolicy[]>();
  const apiRules = resources.filter((r) => r.kind === 'APIRule');
  for (const r of resources) {
    if (r.kind !== 'Policy') continue;
    const checked = checkPolicy(r, resources, apiRules, fail);
    if (checked === null) continue;
    const target = checked.spec.targetRef;
    if (checked.applied.scope === 'platform') {
      if (target.name === gateway.metadata.name && r.metadata.namespace === gateway.metadata.namespace)
        platform.push(checked);
    } else if (checked.applied.scope === 'application') {
      application.push(checked);
    } else {
      const id = `${r.metadata.namespace}/${target.name}`;
      service.set(id, [...(service.get(id) ?? []), checked]);
    }
  }
  const byName = (a: CheckedPolicy, b: CheckedPolicy) =>
    a.resource.metadata.name < b.resource.metadata.name ? -1 : 1;
  platform.sort(byName);
  application.sort(byName);
  for (const list of service.values()) list.sort(byName);

  return {
    layersFor(apiRule, ruleIndex) {
      const { namespace, name, labels = {} } = apiRule.metadata;
      const selected = application.filter(
        (p) =>
          p.resource.metadata.namespace === namespace &&
          Object.entries(p.spec.targetRef.selector ?? {}).every(([k, v]) => labels[k] === v),
      );
      const named = (service.get(`${namespace}/${name}`) ?? []).filter(
        (p) => p.spec.targetRef.rule === undefined || p.spec.targetRef.rule === ruleIndex,
      );
      const rulePath = ['spec', 'rules', ruleIndex];
      const rule = (apiRule.spec as unknown as APIRule['spec']).rules[ruleIndex]!;
      const ruleLayer: StageLayer = {
        policy: null,
        namespace,
        stages: rule as unknown as Record<string, unknown>,
        report: (path, message) => fail(apiRule, [...rulePath, ...path], message),
      };
      return [...[...platform, ...selected, ...named].map((p) => p.layer), ruleLayer];
    },
  };
}

function checkPolicy(
  r: LoadedResource,
  resources: readonly LoadedResource[],
  apiRules: readonly LoadedResource[],
  fail: Fail,
): CheckedPolicy | null {
  const spec = r.spec as unknown as PolicySpec;
  const target = spec.targetRef;
  const namespace = r.metadata.namespace;
  const at = (...path: Array<string | number>) => ['spec', 'targetRef', ...path];
  const errors: Array<[Array<string | number>, string]> = [];
  let scope: Scope;
  if (target.kind === 'Gateway') {
    scope = 'platform';
    if (target.selector !== undefined) errors.push([at('selector'), 'only for kind APIRule']);
    if (target.rule !== undefined) errors.push([at('rule'), 'only for kind APIRule with a name']);
    if (target.name === undefined) errors.push([at('name'), 'required for kind Gateway']);
    else if (!resources.some((g) => g.kind === 'Gateway' && sameRef(g, namespace, target.name!)))
      errors.push([at('name'), `no Gateway named ${target.name} in namespace ${namespace}`]);
  } else if (target.selector !== undefined) {
    scope = 'application';
    if (target.name !== undefined) errors.push([at('name'), 'give either name or selector, not both']);
    if (target.rule !== undefined) errors.push([at('rule'), 'only with a name, not with a selector']);
    const selector = Object.entries(target.selector);
    const matches = apiRules.some(
      (a) => a.metadata.namespace === namespace && selector.every(([k, v]) => a.metadata.labels?.[k] === v),
    );
    if (!matches) errors.push([at('selector'), `matches no APIRule in namespace ${namespace}`]);
  } else {
    scope = 'service';
    if (target.name === undefined) {
      errors.push([at('name'), 'kind APIRule needs a name or a selector']);
    } else {
      const apiRule = apiRules.find((a) => sameRef(a, namespace, target.name!));
      const count = (apiRule?.spec as unknown as APIRule['spec'] | undefined)?.rules.length ?? 0;
      if (apiRule === undefined)
        errors.push([at('name'), `no APIRule named ${target.name} in namespace ${namespace}`]);
      else if (target.rule !== undefined && target.rule >= count)
        errors.push([
          at('rule'),
          `APIRule ${namespace}/${target.name} has ${count} rule(s): no index ${target.rule}`,
        ]);
    }
  }
  const written = spec as unknown as Record<string, unknown>;
  const set = stages.filter((stage) => fieldsOf(stage).some((field) => written[field] !== undefined));
  if (set.length === 0)
    errors.push([['spec'], `a Policy sets at least one of: ${stages.flatMap(fieldsOf).join(', ')}`]);
  if (spec.mode === 'shadow') {
    for (const stage of set) {
      if (stageMerge[stage] !== 'accumulate')
        errors.push([
          ['spec', stage],
          `not allowed in shadow mode: shadow only records would-be denials, so only ${stages
            .filter((s) => stageMerge[s] === 'accumulate')
            .flatMap(fieldsOf)
            .join(', ')} may be set`,
        ]);
      for (const [key, factory] of factoriesOf(stage))
        if (
          factory.answers &&
          (spec[stage as keyof PolicySpec] as Record<string, unknown> | undefined)?.[key] !== undefined
        )
          errors.push([
            ['spec', stage, key],
            'not allowed in shadow mode: it answers the client itself (headers, preflights), and shadow ' +
              'must not change what the client gets',
          ]);
    }
  }
  for (const [path, message] of errors) fail(r, path, message);
  if (errors.length > 0) return null;
  const applied: AppliedPolicy = Object.freeze({
    name: `${namespace}/${r.metadata.name}`,
    scope,
    mode: spec.mode,
  });
  // A Policy applies to many rules: report each problem found while compiling it once.
  const reported = new Set<string>();
  const layer: StageLayer = {
    policy: applied,
    namespace,
    stages: spec as unknown as Record<string, unknown>,
    report(path, message) {
      const id = `${path.join('\0')}\u0001${message}`;
      if (reported.has(id)) return;
      reported.add(id);
      fail(r, ['spec', ...path], message);
    },
  };
  return { resource: r, spec, applied, layer };
}

function sameRef(r: LoadedResource, namespace: string, name: string): boolean {
  return r.metadata.namespace === namespace && r.metadata.name === name;
}

/** The Policies that applied, as recorded on the compiled rule (the rule's own layer left out). */
export function appliedPolicies(layers: readonly StageLayer[]): readonly AppliedPolicy[] {
  return Object.freeze(layers.flatMap((l) => (l.policy ? [l.policy] : [])));
}
