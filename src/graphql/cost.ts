/**
 * The cost model (contract, "Cost, fairness and availability"): a request's worst case in database
 * reads and in returned records, priced before anything runs. The pre-execution check
 * (QUERY_TOO_COSTLY), the per-install rate limiter (src/http/rate-limit.ts) and the Runner REST
 * door all price through this file.
 *
 * Each field that reads the database counts once, multiplied by the size bound of every enclosing
 * list: `records(keys)` by its keys, `recordList`/`auditLog`/`installs` pages by `first`,
 * `Install.namespaces` by the install's namespace quota. Fields that only project data already
 * loaded are free. A document is compiled once into a small plan (cached per parsed document, which
 * Yoga caches per query text); a request only evaluates the plan against its variables.
 */
import {
  getNamedType,
  getOperationAST,
  isCompositeType,
  Kind,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLField,
  type GraphQLSchema,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql';
import type { Limits } from '../config.js';
import { decodeGlobalId } from '../storage/global-id.js';
import { normalizeId } from '../storage/principal.js';
import { CHANGES_PAGE } from '../storage/storage.js';

/** A request's worst case. */
export interface Price {
  /** Database statements (reads and writes) it may run. */
  reads: number;
  /** Records it may return or write. */
  records: number;
  /**
   * Of those, the records writes return as they were sent (putRecord, bulkPutRecords): their values
   * are in the request, so their size is bounded by the request's (echoedResponseBound).
   */
  echoed?: number;
}

/** Bytes an echoed record adds to its value and metadata in an answer: key, namespace, revision, timestamps, field names. */
export const ECHO_OVERHEAD_BYTES = 1024;

/**
 * The most bytes the echoed records of a request of `requestBytes` can come to in its answer: the
 * values and metadata as the request sent them, reserialised (a number can come back one character
 * longer, "1e21" as "1e+21", so at most twice its text), plus each record's own fields.
 */
export const echoedResponseBound = (echoed: number, requestBytes: number): number => 2 * requestBytes + echoed * ECHO_OVERHEAD_BYTES;

/** The limits a price is held to before execution. */
export interface CostLimits {
  maxStatements: number;
  maxRecords: number;
}

/** One token bucket unit per statement plus one per this many records. */
export const RECORDS_PER_UNIT = 10;

/** What a priced request charges the install's token bucket before it runs (at least 1: parsing is work too). */
export function rateUnits(price: Price): number {
  return Math.max(1, price.reads + Math.floor(price.records / RECORDS_PER_UNIT));
}

/**
 * Record bytes a request returned that make one more unit, charged after it ran: a page of 64 KB
 * values costs its serialisation (about 100 times a page of 200-byte values), which its price in
 * records cannot tell apart.
 */
export const BYTES_PER_UNIT = 64 * 1024;

export function byteUnits(returnedBytes: number): number {
  return Math.floor(returnedBytes / BYTES_PER_UNIT);
}

/** Which limit a price breaks first, if any. */
export function overLimit(price: Price, limits: CostLimits): { limit: 'statements' | 'records'; cost: number; max: number } | null {
  if (price.reads > limits.maxStatements) return { limit: 'statements', cost: price.reads, max: limits.maxStatements };
  if (price.records > limits.maxRecords) return { limit: 'records', cost: price.records, max: limits.maxRecords };
  return null;
}

// ---------------------------------------------------------------- installs whose namespaces are listed

/**
 * The install an `Install` object stands for, as far as it is known before execution: the caller's
 * own (`self`: extensions and the Runner, or `install` without an id), one named by id, or any install
 * of the admin's tenant (`installs`).
 */
export type InstallRef = { kind: 'self' } | { kind: 'id'; id: string } | { kind: 'tenant' };

export const installRefKey = (ref: InstallRef): string => (ref.kind === 'id' ? `id:${ref.id}` : ref.kind);

// ---------------------------------------------------------------- arguments

/** An argument as written: its AST (literal or variable) and the schema default. */
interface ArgSource {
  ast: ValueNode | undefined;
  fallback: unknown;
}

type Path = readonly string[];

const hasOwn = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

/** Reads argument values at evaluation time without building them (a bulk input is never copied). */
export class Args {
  constructor(
    private readonly sources: ReadonlyMap<string, ArgSource>,
    private readonly variables: Readonly<Record<string, unknown>>,
    private readonly variableDefaults: ReadonlyMap<string, ValueNode>,
  ) {}

  /** The value at `path` inside argument `name`: an AST node, a plain value (from variables), or undefined. */
  private at(name: string, path: Path): { ast?: ValueNode; value?: unknown; found: boolean } {
    const source = this.sources.get(name);
    let cur: { ast?: ValueNode; value?: unknown; found: boolean } = source?.ast ? { ast: source.ast, found: true } : { value: source?.fallback, found: source?.fallback !== undefined };
    for (let i = 0; ; i++) {
      cur = this.deref(cur);
      if (i === path.length || !cur.found) return cur;
      const key = path[i]!;
      if (cur.ast) {
        if (cur.ast.kind !== Kind.OBJECT) return { found: false };
        const f = cur.ast.fields.find((x) => x.name.value === key);
        cur = f ? { ast: f.value, found: true } : { found: false };
      } else {
        const v = cur.value;
        cur = v !== null && typeof v === 'object' && !Array.isArray(v) && hasOwn(v, key) ? { value: (v as Record<string, unknown>)[key], found: true } : { found: false };
      }
    }
  }

  /** A variable reference as its value (or the operation's default for it). */
  private deref(cur: { ast?: ValueNode; value?: unknown; found: boolean }): { ast?: ValueNode; value?: unknown; found: boolean } {
    if (cur.ast?.kind !== Kind.VARIABLE) return cur;
    const name = cur.ast.name.value;
    if (hasOwn(this.variables, name)) return { value: this.variables[name], found: true };
    const dflt = this.variableDefaults.get(name);
    return dflt ? { ast: dflt, found: true } : { found: false };
  }

  /** An Int argument; undefined when absent, null when null or not a number. */
  int(name: string, ...path: Path): number | null | undefined {
    const v = this.at(name, path);
    if (!v.found) return path.length === 0 ? (this.sources.get(name)?.fallback as number | undefined) : undefined;
    if (v.ast) return v.ast.kind === Kind.INT ? Number(v.ast.value) : null;
    return typeof v.value === 'number' ? v.value : null;
  }

  /** A string or ID argument, else null. */
  string(name: string, ...path: Path): string | null {
    const v = this.at(name, path);
    if (v.ast) return v.ast.kind === Kind.STRING || v.ast.kind === Kind.INT ? v.ast.value : null;
    return typeof v.value === 'string' ? v.value : typeof v.value === 'number' ? String(v.value) : null;
  }

  /** How many items a list argument holds after input coercion (a single value is a list of one). */
  count(name: string, ...path: Path): number {
    const v = this.at(name, path);
    if (!v.found) return 0;
    if (v.ast) return v.ast.kind === Kind.LIST ? v.ast.values.length : v.ast.kind === Kind.NULL ? 0 : 1;
    return Array.isArray(v.value) ? v.value.length : v.value === null || v.value === undefined ? 0 : 1;
  }
}

// ---------------------------------------------------------------- field prices

/** What the fields below an object know about it. */
export interface Scope {
  /** The install an `Install` object below stands for. */
  install: InstallRef;
  /** The page size bound of the nearest enclosing connection (or bulk result list). */
  page: number;
  /** A `Namespace` from `Install.namespaces` arrives with its usage already loaded. */
  usageLoaded: boolean;
}

export interface PriceEnv {
  limits: Pick<Limits, 'maxKeysPerRead' | 'maxPageSize' | 'defaultPageSize' | 'maxBulkItems' | 'maxCommitOperations'>;
  /** The namespace quota of an install (the size bound of its `namespaces` list). */
  namespaceBound(ref: InstallRef): number;
}

export interface FieldRule {
  /** Database statements one run of the field makes. */
  reads: number | ((args: Args, scope: Scope) => number);
  /** Records one run of the field returns or writes. */
  records?: (args: Args, env: PriceEnv) => number;
  /** How many times the field's children run per run of the field (the size bound of the list it returns). */
  fanOut?: (args: Args, scope: Scope, env: PriceEnv) => number;
  /** What the children see, when it changes. */
  into?: (args: Args, scope: Scope, env: PriceEnv) => Partial<Scope>;
  /** Sibling fields with one key share one memoised load: they count once per object. */
  shares?: string;
  /** Its records are the request's own values, returned as written (Price.echoed). */
  echoes?: boolean;
}

const clamp = (n: number, max: number) => (Number.isFinite(n) && n > 0 ? Math.min(Math.floor(n), max) : 0);
/** Keys of a `records` read: duplicates count, more than the limit is refused before reading. */
const keyCount = (a: Args, env: PriceEnv, ...path: Path) => clamp(a.count('keys', ...path), env.limits.maxKeysPerRead);
/** A page: `first` (its default when omitted or null, as the core reads it), at most the page size limit (beyond it the field is refused). */
const pageOf = (a: Args, env: PriceEnv) => clamp(a.int('first') ?? env.limits.defaultPageSize, env.limits.maxPageSize);

const record: FieldRule = { reads: 1, records: () => 1 };
const records: FieldRule = { reads: 1, records: (a, env) => keyCount(a, env), fanOut: (a, _s, env) => keyCount(a, env) };
/** A change-feed page: `first` (default 100), at most 1,000 (beyond it the field is refused). */
const CHANGES_DEFAULT_PAGE = 100;
const CHANGES_MAX_PAGE = 1000;
const changesPageOf = (a: Args) => clamp(a.int('first') ?? CHANGES_DEFAULT_PAGE, CHANGES_MAX_PAGE);
const recordList: FieldRule = { reads: 1, records: pageOf, into: (a, _s, env) => ({ page: pageOf(a, env) }) };
const edges: FieldRule = { reads: 0, fanOut: (_a, s) => s.page };
const namespaceUsage: FieldRule = { reads: (_a, s) => (s.usageLoaded ? 0 : 1), shares: 'usage' };

/** Every field that reads the database, or that changes what the fields below it cost. */
export const FIELD_RULES: Readonly<Record<string, FieldRule>> = {
  'Query.install': { reads: 1, into: (a) => ({ install: refOf(a.string('id')), usageLoaded: false }) },
  'Query.installs': { reads: 1, into: (a, _s, env) => ({ install: { kind: 'tenant' }, page: pageOf(a, env) }) },
  'Query.record': record,
  'Query.records': records,
  'Query.recordList': recordList,
  // A page (two scans when `after` is omitted and retention removed the oldest changes), and the
  // records its changes may return (Change.record), priced like recordList by `first`.
  'Query.changes': { reads: 2, records: changesPageOf, into: (a) => ({ page: changesPageOf(a) }) },
  // One record read per change, batched by the request's DataLoader per namespace: its records are
  // priced by Query.changes above; its statements (one per namespace of the page) count against the
  // statement limit as they run (src/graphql/work.ts).
  'Change.record': { reads: 0 },
  'Install.changesCursor': { reads: 1 },
  // One install lookup and at most one record read (a record id); an Install below is the one its id names.
  'Query.node': { reads: 1, records: () => 1, into: (a) => ({ install: refOf(nodeInstallId(a.string('id'))), usageLoaded: false }) },
  // A count, priced like the page it belongs to (once per connection, not per edge).
  'RecordConnection.totalCount': { reads: 1 },
  'InstallConnection.edges': edges,
  'RecordConnection.edges': edges,
  'AuditEventConnection.edges': edges,
  'ChangeConnection.edges': edges,
  'Install.namespaces': { reads: 1, fanOut: (_a, s, env) => env.namespaceBound(s.install), into: () => ({ usageLoaded: true }) },
  'Install.namespace': { reads: 0, into: () => ({ usageLoaded: false }) },
  'Install.usage': { reads: 1 },
  'Install.auditLog': { reads: 1, into: (a, _s, env) => ({ page: pageOf(a, env) }) },
  'Namespace.keyCount': namespaceUsage,
  'Namespace.bytesUsed': namespaceUsage,
  'Namespace.schema': { reads: 1 },
  'Namespace.record': record,
  'Namespace.records': records,
  'Namespace.recordList': recordList,
  'Mutation.putRecord': { reads: 1, records: () => 1, echoes: true },
  'Mutation.bulkPutRecords': {
    reads: 1,
    echoes: true,
    records: (a, env) => clamp(a.count('input', 'items'), env.limits.maxBulkItems),
    into: (a, _s, env) => ({ page: clamp(a.count('input', 'items'), env.limits.maxBulkItems) }),
  },
  'BulkPutRecordsSuccess.records': { reads: 0, fanOut: (_a, s) => s.page },
  'Mutation.deleteRecord': { reads: 1 },
  // One write of at most maxCommitOperations records (beyond it the commit is refused before writing).
  // Not echoed: an increment returns its stored metadata, which the request does not carry.
  'Mutation.commit': {
    reads: 1,
    records: (a, env) => clamp(a.count('input', 'operations'), env.limits.maxCommitOperations),
    into: (a, _s, env) => ({ page: clamp(a.count('input', 'operations'), env.limits.maxCommitOperations) }),
  },
  'CommitSuccess.records': { reads: 0, fanOut: (_a, s) => s.page },
  // One record, with the metadata it had (not the request's): not echoed.
  'Mutation.incrementRecord': { reads: 1, records: () => 1 },
  'Mutation.upsertInstall': { reads: 1, into: (a) => ({ install: refOf(a.string('input', 'id')), usageLoaded: false }) },
  'Mutation.setNamespaceSchema': { reads: 1 },
  // Priced per event: one page read, the changes' records read with it (src/graphql/types/subscription.ts).
  'Subscription.changes': { reads: 1, records: () => 1 },
};

/**
 * Fields that read nothing: projections of an object already loaded. `Type.*` covers a whole type.
 * A field in neither list is priced as one read (test/security/cost-model.test.ts keeps both lists
 * complete, so a new field is priced on purpose).
 */
export const FREE_FIELDS: ReadonlySet<string> = new Set([
  'Install.id',
  'Install.tenantId',
  'Install.extensionId',
  'Install.enabled',
  'Install.capabilities',
  'Install.quota',
  'Namespace.id',
  'Namespace.name',
  'Node.id',
  'InstallConnection.pageInfo',
  'RecordConnection.pageInfo',
  'AuditEventConnection.pageInfo',
  'ChangeConnection.pageInfo',
  'Change.*',
  'ChangeEdge.*',
  'Record.*',
  'RecordEdge.*',
  'InstallEdge.*',
  'AuditEvent.*',
  'AuditEventEdge.*',
  'PageInfo.*',
  'Usage.*',
  'Quota.*',
  'StorageCapabilities.*',
  'NamespaceSchema.*',
  'ValidationIssue.*',
  'StorageError.*',
  'RevisionMismatch.*',
  'QuotaExceeded.*',
  'LimitExceeded.*',
  'ValidationFailed.*',
  'PutRecordSuccess.*',
  'DeleteRecordSuccess.*',
  'CommitSuccess.committed',
  'CommitSuccess.cursor',
  'CommitConflict.*',
  'CheckConflict.*',
  'SetNamespaceSchemaSuccess.*',
]);

/** An unlisted field: one read, so a field added without a price errs on the safe side. */
const UNKNOWN: FieldRule = { reads: 1 };

export function isFreeField(type: string, field: string): boolean {
  return FREE_FIELDS.has(`${type}.${field}`) || FREE_FIELDS.has(`${type}.*`);
}

/** The install a node id names, as far as it is well formed (a malformed one is refused when it runs, and lists no namespaces). */
function nodeInstallId(id: string | null): string {
  if (id === null) return '';
  try {
    return decodeGlobalId(id, { maxKeyLength: Number.MAX_SAFE_INTEGER }).installId;
  } catch {
    return '';
  }
}

function refOf(id: string | null): InstallRef {
  const normalized = normalizeId(id);
  return id === null ? { kind: 'self' } : { kind: 'id', id: normalized ?? '' };
}

// ---------------------------------------------------------------- plans

interface PlanNode {
  rule: FieldRule;
  args: ReadonlyMap<string, ArgSource>;
  children: PlanNode[];
}

/** A priced operation, compiled once per document and operation name. */
export interface CostPlan {
  operation: 'query' | 'mutation' | 'subscription' | null;
  roots: PlanNode[];
  variableDefaults: ReadonlyMap<string, ValueNode>;
  /** Whether evaluating needs namespace quotas (the plan lists `Install.namespaces`). */
  needsNamespaceBounds: boolean;
}

const EMPTY_PLAN: CostPlan = { operation: null, roots: [], variableDefaults: new Map(), needsNamespaceBounds: false };

function argsOf(field: GraphQLField<unknown, unknown>, nodes: ReadonlyArray<{ arguments?: ReadonlyArray<{ name: { value: string }; value: ValueNode }> }>): Map<string, ArgSource> {
  const out = new Map<string, ArgSource>();
  for (const def of field.args) out.set(def.name, { ast: undefined, fallback: def.defaultValue });
  for (const arg of nodes[0]?.arguments ?? []) {
    const current = out.get(arg.name.value);
    out.set(arg.name.value, { ast: arg.value, fallback: current?.fallback });
  }
  return out;
}

/**
 * The plan of one operation. Fields are grouped by response key as graphql-js merges them; fragments
 * are all counted whatever their type condition or directives (a worst case, never an underestimate).
 */
export function compilePlan(schema: GraphQLSchema, document: DocumentNode, operationName: string | null | undefined): CostPlan {
  const op = getOperationAST(document, operationName ?? undefined);
  if (!op) return EMPTY_PLAN;
  const root = op.operation === 'query' ? schema.getQueryType() : op.operation === 'mutation' ? schema.getMutationType() : schema.getSubscriptionType();
  if (!root) return EMPTY_PLAN;
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  let needsNamespaceBounds = false;

  function compile(parent: GraphQLCompositeType, selectionSets: readonly SelectionSetNode[], seen: ReadonlySet<string>): PlanNode[] {
    // Field nodes by parent type and response key: one execution each, their selections merged.
    const groups = new Map<string, { parent: GraphQLCompositeType; name: string; nodes: Array<{ arguments?: readonly { name: { value: string }; value: ValueNode }[]; selectionSet?: SelectionSetNode }> }>();
    const collect = (type: GraphQLCompositeType, set: SelectionSetNode, path: ReadonlySet<string>) => {
      for (const s of set.selections) {
        if (s.kind === Kind.FIELD) {
          const key = `${type.name}:${s.alias?.value ?? s.name.value}`;
          const group = groups.get(key);
          if (group) group.nodes.push(s);
          else groups.set(key, { parent: type, name: s.name.value, nodes: [s] });
        } else if (s.kind === Kind.INLINE_FRAGMENT) {
          const cond = s.typeCondition ? schema.getType(s.typeCondition.name.value) : type;
          collect(cond && isCompositeType(cond) ? cond : type, s.selectionSet, path);
        } else {
          const frag = fragments.get(s.name.value);
          // Validation refuses fragment cycles; the path check only keeps this walk finite regardless.
          if (!frag || path.has(frag.name.value)) continue;
          const cond = schema.getType(frag.typeCondition.name.value);
          collect(cond && isCompositeType(cond) ? cond : type, frag.selectionSet, new Set([...path, frag.name.value]));
        }
      }
    };
    for (const set of selectionSets) collect(parent, set, seen);

    const nodes: PlanNode[] = [];
    for (const { parent: type, name, nodes: fieldNodes } of groups.values()) {
      if (name.startsWith('__')) continue; // __typename, __schema, __type: no database
      const field = 'getFields' in type ? type.getFields()[name] : undefined;
      if (!field) continue; // validation refused it already
      const coordinate = `${type.name}.${name}`;
      const rule = FIELD_RULES[coordinate] ?? (isFreeField(type.name, name) ? null : UNKNOWN);
      const childType = getNamedType(field.type);
      const sets = fieldNodes.flatMap((n) => (n.selectionSet ? [n.selectionSet] : []));
      const children = isCompositeType(childType) && sets.length > 0 ? compile(childType, sets, seen) : [];
      // The quota matters only when something priced runs once per namespace.
      if (coordinate === 'Install.namespaces' && children.length > 0) needsNamespaceBounds = true;
      // A free field with nothing priced below it costs nothing: it leaves the plan.
      if (!rule && children.length === 0) continue;
      nodes.push({ rule: rule ?? { reads: 0 }, args: argsOf(field, fieldNodes), children });
    }
    return nodes;
  }

  const variableDefaults = new Map<string, ValueNode>();
  for (const v of op.variableDefinitions ?? []) if (v.defaultValue) variableDefaults.set(v.variable.name.value, v.defaultValue);
  const roots = compile(root, [op.selectionSet], new Set());
  return { operation: op.operation, roots, variableDefaults, needsNamespaceBounds };
}

/** The install refs whose namespace quota evaluating `plan` with these variables needs. */
export function installRefsOf(plan: CostPlan, variables: Readonly<Record<string, unknown>>, limits: PriceEnv['limits']): InstallRef[] {
  if (!plan.needsNamespaceBounds) return [];
  const refs = new Map<string, InstallRef>();
  evaluatePlan(plan, variables, {
    limits,
    namespaceBound(ref) {
      refs.set(installRefKey(ref), ref);
      return 1;
    },
  });
  return [...refs.values()];
}

const START: Scope = { install: { kind: 'self' }, page: 1, usageLoaded: false };

/** The worst case of one request: the plan evaluated with its variables. */
export function evaluatePlan(plan: CostPlan, variables: Readonly<Record<string, unknown>> | null | undefined, env: PriceEnv): Price {
  const vars = variables ?? {};
  // The price of one run of each node; a list multiplies its children's (asked for only when they cost something).
  const walk = (nodes: readonly PlanNode[], scope: Scope): Price => {
    const price: Price = { reads: 0, records: 0 };
    let shared: Set<string> | undefined;
    for (const node of nodes) {
      const { rule } = node;
      const args = new Args(node.args, vars, plan.variableDefaults);
      let reads = typeof rule.reads === 'number' ? rule.reads : rule.reads(args, scope);
      if (rule.shares && reads > 0) {
        shared ??= new Set();
        if (shared.has(rule.shares)) reads = 0;
        else shared.add(rule.shares);
      }
      price.reads += reads;
      if (rule.records) {
        const n = rule.records(args, env);
        price.records += n;
        if (rule.echoes && n > 0) price.echoed = (price.echoed ?? 0) + n;
      }
      if (node.children.length === 0) continue;
      const inner = walk(node.children, rule.into ? { ...scope, ...rule.into(args, scope, env) } : scope);
      if (inner.reads === 0 && inner.records === 0) continue;
      const fanOut = rule.fanOut ? rule.fanOut(args, scope, env) : 1;
      price.reads += fanOut * inner.reads;
      price.records += fanOut * inner.records;
      if (inner.echoed) price.echoed = (price.echoed ?? 0) + fanOut * inner.echoed;
    }
    return price;
  };
  return walk(plan.roots, START);
}

/** Plans cached per parsed document (Yoga reuses one DocumentNode per query text) and operation name. */
export class PlanCache {
  private readonly plans = new WeakMap<DocumentNode, Map<string, CostPlan>>();

  constructor(private readonly schema: GraphQLSchema) {}

  planFor(document: DocumentNode, operationName: string | null | undefined): CostPlan {
    let byName = this.plans.get(document);
    if (!byName) this.plans.set(document, (byName = new Map()));
    const name = operationName ?? '';
    let plan = byName.get(name);
    if (!plan) byName.set(name, (plan = compilePlan(this.schema, document, operationName)));
    return plan;
  }
}

// ---------------------------------------------------------------- the Runner REST door

/** The Runner REST operations priced as the GraphQL fields they correspond to. */
export function runnerPrice(operation: string, body: Readonly<Record<string, unknown>>, limits: PriceEnv['limits']): Price {
  const env: PriceEnv = { limits, namespaceBound: () => 0 };
  const price = (coordinate: string, args: Record<string, unknown>): Price => {
    const rule = FIELD_RULES[coordinate] ?? UNKNOWN;
    const a = new Args(new Map(Object.entries(args).map(([k, v]) => [k, { ast: undefined, fallback: v }])), {}, new Map());
    return { reads: typeof rule.reads === 'number' ? rule.reads : rule.reads(a, START), records: rule.records?.(a, env) ?? 0 };
  };
  switch (operation) {
    case 'get':
      return price('Query.record', {});
    case 'list':
      return price('Query.recordList', { first: typeof body.limit === 'number' ? body.limit : null });
    case 'put':
      return price('Mutation.putRecord', {});
    case 'delete':
      return price('Mutation.deleteRecord', {});
    case 'bulkPut':
      return price('Mutation.bulkPutRecords', { input: { items: body.items } });
    case 'increment':
      return price('Mutation.incrementRecord', {});
    case 'commit':
      return price('Mutation.commit', { input: { operations: body.operations, checks: body.checks } });
    case 'changes':
      // Priced like a list by its limit, in the feed's own page bounds (default 100, at most 1000;
      // beyond it the core refuses the page). A page from the oldest retained change may scan twice.
      // TODO: once Query.changes has its FIELD_RULES entry (wt-feed), price through it instead, so
      // both doors keep one rule.
      return { reads: 2, records: clamp(typeof body.limit === 'number' ? body.limit : CHANGES_PAGE.default, CHANGES_PAGE.max) };
    default:
      return { reads: 1, records: 0 };
  }
}
