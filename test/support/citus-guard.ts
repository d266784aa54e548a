/**
 * The Citus guard (docs/citus.md): every statement the data layer sends is parsed with the real
 * PostgreSQL parser and checked against the rules that keep it single-shard on Citus. Rules 3 and
 * 14–16 depend on function volatility, read from a PostgreSQL catalogue (citus-catalog.ts); the
 * statements inside a PL/pgSQL function body are checked like statements sent by the client.
 */
import { loadModule, parsePlPgSQLSync, parseSync } from 'libpg-query';
import { DISTRIBUTED_TABLES } from '../../src/db/tables.js';
import { Catalog, embeddedCatalog, readCatalog, UNKNOWN, type CatalogSource, type Resolved, type Ty, type Volatility } from './citus-catalog.js';

const DISTRIBUTED = new Set<string>(DISTRIBUTED_TABLES);

type Node = Record<string, any>;

export interface Violation {
  rule: string;
  detail: string;
  sql: string;
}

let catalog: Catalog | null = null;
let loaded: Promise<void> | null = null;

/**
 * Loads the parser and, unless `loadVolatility` already did, the catalogue of an embedded PGlite
 * migrated with the project's migrations (cached on disk after the first run).
 */
export function loadParser(): Promise<void> {
  loaded ??= Promise.all([
    loadModule(),
    catalog ? undefined : embeddedCatalog().then((c) => void (catalog ??= c)),
  ]).then(() => undefined);
  return loaded;
}

/**
 * Reads function volatility and column types from a live, migrated database instead (a pg
 * Client/Pool, a PGlite, or `(sql) => db.executeQuery(CompiledQuery.raw(sql))` for Kysely).
 */
export async function loadVolatility(source: CatalogSource): Promise<void> {
  catalog = await readCatalog(source);
  cache.clear();
}

function cat(): Catalog {
  if (!catalog) throw new Error('Citus guard: call loadParser() (or loadVolatility()) before checking SQL');
  return catalog;
}

// ---------------------------------------------------------------------------------------------
// Per-text context: where the SQL came from and which names are bound parameters.

interface Ctx {
  sql: string;
  out: Violation[];
  /** PL/pgSQL variables and function parameters: constants to the planner, like $n. */
  vars: Map<string, Ty>;
  /** Names that qualify a variable (`fn.p_x`, `label.v_x`, `rec.field`). */
  qualifiers: Set<string>;
  /** Prefixed to every detail: the function a body statement comes from. */
  origin: string;
}

function report(ctx: Ctx, rule: string, detail: string): void {
  ctx.out.push({ rule, detail: ctx.origin + detail, sql: ctx.sql });
}

// ---------------------------------------------------------------------------------------------
// Tenant filter (rules 1, 2), unchanged in spirit: a top-level tenant_id = $n per relation.

/** Top-level AND conjuncts of an expression. */
function conjuncts(expr: Node | undefined): Node[] {
  if (!expr) return [];
  const bool = expr.BoolExpr;
  if (bool && bool.boolop === 'AND_EXPR') return (bool.args as Node[]).flatMap(conjuncts);
  return [expr];
}

function refNames(node: Node | undefined): string[] | null {
  const ref = node?.ColumnRef;
  if (!ref) return null;
  const names = (ref.fields as Node[]).map((f) => f.String?.sval as string | undefined);
  return names.some((n) => n === undefined) ? null : (names as string[]);
}

function columnRef(node: Node | undefined): { table: string | null; column: string } | null {
  const names = refNames(node);
  if (!names) return null;
  if (names.length === 1) return { table: null, column: names[0]! };
  return { table: names[names.length - 2]!, column: names[names.length - 1]! };
}

/** A PL/pgSQL variable or parameter reference (by name only: the tenant filter has no scope). */
function variableName(node: Node | undefined, ctx: Ctx): string | null {
  const names = refNames(node);
  if (!names) return null;
  if (names.length === 1 && ctx.vars.has(names[0]!)) return names[0]!;
  if (names.length === 2 && ctx.qualifiers.has(names[0]!)) return names.join('.');
  return null;
}

/** The bound value a node stands for ($n or a variable, through casts), as a comparable key. */
function boundKey(node: Node | undefined, ctx: Ctx): string | null {
  if (!node) return null;
  if (node.ParamRef) return `$${node.ParamRef.number}`;
  if (node.TypeCast) return boundKey(node.TypeCast.arg, ctx);
  return variableName(node, ctx);
}

function equality(expr: Node): [Node, Node] | null {
  const a = expr.A_Expr;
  if (!a || a.kind !== 'AEXPR_OP' || a.name?.[0]?.String?.sval !== '=') return null;
  return [a.lexpr, a.rexpr];
}

/** Distributed relations in a FROM list (alias → table), recursing into joins; collects join quals. */
function collectFrom(items: Node[] | undefined, rels: Map<string, string>, quals: Node[], ctes: Set<string>): void {
  for (const item of items ?? []) {
    if (item.RangeVar) {
      const name = item.RangeVar.relname as string;
      const isCte = !item.RangeVar.schemaname && ctes.has(name);
      if (DISTRIBUTED.has(name) && !isCte) rels.set(item.RangeVar.alias?.aliasname ?? name, name);
    } else if (item.JoinExpr) {
      collectFrom([item.JoinExpr.larg, item.JoinExpr.rarg], rels, quals, ctes);
      quals.push(...conjuncts(item.JoinExpr.quals));
    }
  }
}

/** Checks that every distributed relation of one query level is pinned to a single tenant. */
function checkTenantFilter(rels: Map<string, string>, where: Node[], ctx: Ctx): void {
  if (rels.size === 0) return;
  const pinned = new Set<string>();
  const links: Array<[string, string]> = [];
  for (const c of where) {
    const eq = equality(c);
    if (!eq) continue;
    const [l, r] = eq;
    const lc = columnRef(l);
    const rc = columnRef(r);
    if (lc?.column === 'tenant_id' && !variableName(l, ctx) && boundKey(r, ctx)) pinned.add(lc.table ?? '*');
    else if (rc?.column === 'tenant_id' && !variableName(r, ctx) && boundKey(l, ctx)) pinned.add(rc.table ?? '*');
    else if (lc?.column === 'tenant_id' && rc?.column === 'tenant_id' && lc.table && rc.table) links.push([lc.table, rc.table]);
  }
  if (pinned.has('*') && rels.size === 1) pinned.add([...rels.keys()][0]!);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [a, b] of links) {
      if (pinned.has(a) && !pinned.has(b)) grew = !!pinned.add(b);
      if (pinned.has(b) && !pinned.has(a)) grew = !!pinned.add(a);
    }
  }
  for (const [alias, table] of rels) {
    if (!pinned.has(alias)) report(ctx, 'tenant-filter', `${table}${alias !== table ? ` (${alias})` : ''} has no top-level tenant_id = $n`);
  }
}

// ---------------------------------------------------------------------------------------------
// Scopes: which relations (and their column types) a query level sees.

interface Cols {
  list: Array<[string, Ty]>;
  /** Columns the guard cannot see may exist (an unknown table, a record-returning function). */
  open: boolean;
}
interface Rel {
  alias: string;
  cols: Cols;
}
interface Cte {
  query: Node;
  colnames: string[] | null;
  scope: Scope;
  cols?: Cols;
  busy?: boolean;
}
interface Scope {
  parent: Scope | null;
  rels: Rel[];
  ctes: Map<string, Cte>;
}

const OPEN: Cols = { list: [], open: true };

function child(parent: Scope | null, rels: Rel[] = []): Scope {
  return { parent, rels, ctes: new Map() };
}

function statementBody(stmt: Node): { kind: string; s: Node } | null {
  for (const kind of ['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt']) if (stmt?.[kind]) return { kind, s: stmt[kind] };
  return null;
}

/** The scope a statement's WITH clause adds (every CTE visible to the statement and to each other). */
function withScope(withClause: Node | undefined, outer: Scope | null): Scope {
  const scope = child(outer);
  for (const c of (withClause?.ctes as Node[] | undefined) ?? []) {
    const cte = c.CommonTableExpr;
    const colnames = (cte.aliascolnames as Node[] | undefined)?.map((n) => n.String.sval as string) ?? null;
    scope.ctes.set(cte.ctename, { query: cte.ctequery, colnames, scope });
  }
  return scope;
}

function findCte(name: string, scope: Scope | null): Cte | undefined {
  for (let s = scope; s; s = s.parent) {
    const hit = s.ctes.get(name);
    if (hit) return hit;
  }
  return undefined;
}

function cteCols(cte: Cte, ctx: Ctx): Cols {
  if (cte.cols) return cte.cols;
  if (cte.busy) return OPEN; // a recursive CTE's reference to itself
  cte.busy = true;
  const cols = queryInfo(cte.query, cte.scope, ctx).cols;
  cte.busy = false;
  cte.cols = cte.colnames ? renamed(cols, cte.colnames) : cols;
  return cte.cols;
}

function renamed(cols: Cols, names: string[]): Cols {
  return { list: cols.list.map(([n, t], i) => [names[i] ?? n, t]), open: cols.open };
}

function tableCols(name: string): Cols {
  const cols = cat().columns(name);
  return cols ? { list: [...cols], open: false } : OPEN;
}

function aliasNames(alias: Node | undefined): string[] | null {
  return (alias?.colnames as Node[] | undefined)?.map((n) => n.String.sval as string) ?? null;
}

/** What a FROM list holds besides relations, to be typed in the level's scope (subqueries in their own). */
interface FromParts {
  quals: Node[];
  functions: Node[];
  subs: Node[];
}

/** A FROM list's relations, collecting join quals, function calls and subqueries into `parts`. */
function fromRels(items: Node[] | undefined, scope: Scope, ctx: Ctx, parts: FromParts): Rel[] {
  const rels: Rel[] = [];
  for (const item of items ?? []) {
    if (item.RangeVar) {
      const v = item.RangeVar;
      const cte = v.schemaname ? undefined : findCte(v.relname, scope);
      const cols = cte ? cteCols(cte, ctx) : tableCols(v.relname);
      const names = aliasNames(v.alias);
      rels.push({ alias: v.alias?.aliasname ?? v.relname, cols: names ? renamed(cols, names) : cols });
    } else if (item.RangeSubselect) {
      const r = item.RangeSubselect;
      parts.subs.push(r.subquery);
      const cols = queryInfo(r.subquery, scope, ctx).cols;
      const names = aliasNames(r.alias);
      rels.push({ alias: r.alias?.aliasname ?? '', cols: names ? renamed(cols, names) : cols });
    } else if (item.RangeFunction) {
      rels.push(functionRel(item.RangeFunction, scope, ctx, parts.functions));
    } else if (item.JoinExpr) {
      rels.push(...fromRels([item.JoinExpr.larg, item.JoinExpr.rarg], scope, ctx, parts));
      if (item.JoinExpr.quals) parts.quals.push(item.JoinExpr.quals);
    }
  }
  return rels;
}

/** `f(...) AS x(a int, ...)`, `unnest(...) AS u(v)`: columns from the column definitions or the return type. */
function functionRel(r: Node, scope: Scope, ctx: Ctx, functions: Node[]): Rel {
  const calls = (r.functions as Node[]).map((f) => f.List.items[0] as Node);
  functions.push(...calls);
  const defs = (r.coldeflist as Node[] | undefined)?.map((d) => [d.ColumnDef.colname as string, typeOfName(d.ColumnDef.typeName)] as [string, Ty]);
  const first = calls[0];
  const name = r.alias?.aliasname ?? first?.FuncCall?.funcname?.at(-1)?.String?.sval ?? '';
  let cols: Cols = defs ? { list: defs, open: false } : OPEN;
  if (!defs && calls.length === 1 && first) {
    const type = expr(first, scope, ctx).type;
    const scalar = typeof type === 'number' && cat().name(type) !== 'record';
    cols = scalar ? { list: [[name, type]], open: false } : OPEN;
  }
  if (r.ordinality) cols = { list: [...cols.list, ['ordinality', cat().named('int8')]], open: cols.open };
  const names = aliasNames(r.alias);
  return { alias: name, cols: names ? renamed(cols, names) : cols };
}

/** Resolves a column reference: its type, whether some relation in scope surely has it. */
function lookupColumn(names: string[], scope: Scope | null): { found: boolean; type: Ty } {
  const column = names[names.length - 1]!;
  for (let s = scope; s; s = s.parent) {
    if (names.length >= 2) {
      const rel = s.rels.find((r) => r.alias === names[names.length - 2]);
      if (!rel) continue;
      const hit = rel.cols.list.find(([n]) => n === column);
      return { found: !!hit || rel.cols.open, type: hit ? hit[1] : null };
    }
    const hits = s.rels.flatMap((r) => r.cols.list.filter(([n]) => n === column).map(([, t]) => t));
    if (hits.length > 0) return { found: true, type: new Set(hits).size === 1 ? hits[0]! : null };
    if (s.rels.some((r) => r.cols.open)) return { found: false, type: null };
  }
  return { found: false, type: null };
}

function hasAlias(name: string, scope: Scope | null): boolean {
  for (let s = scope; s; s = s.parent) if (s.rels.some((r) => r.alias === name)) return true;
  return false;
}

// ---------------------------------------------------------------------------------------------
// Typed expressions: enough of PostgreSQL's parse analysis to know each call's volatility.

interface Call {
  label: string;
  volatility: Volatility;
}

interface Expr {
  /** column: a Var (column reference); param: $n or a PL/pgSQL variable; query: a sublink. */
  kind: 'column' | 'param' | 'call' | 'case' | 'coalesce' | 'query' | 'other';
  type: Ty;
  /** The volatility of this node's own function (call, operator, cast); 'i' for the rest. */
  volatility: Volatility;
  label: string;
  args: Expr[];
  /** Non-IMMUTABLE calls anywhere in a sublink's query. */
  inner: Call[];
}

function leaf(kind: Expr['kind'], type: Ty, args: Expr[] = []): Expr {
  return { kind, type, volatility: 'i', label: '', args, inner: [] };
}

function call(label: string, volatility: Volatility, type: Ty, args: Expr[]): Expr {
  return { kind: 'call', type, volatility, label, args, inner: [] };
}

/** Every non-IMMUTABLE call in an expression, sublinks included (PostgreSQL's contain_mutable_functions). */
function mutableCalls(e: Expr): Call[] {
  const own = e.volatility !== 'i' ? [{ label: e.label, volatility: e.volatility }] : [];
  return [...own, ...e.inner, ...e.args.flatMap(mutableCalls)];
}

function firstKnown(exprs: Expr[]): Ty {
  return exprs.find((e) => typeof e.type === 'number')?.type ?? (exprs.some((e) => e.type === UNKNOWN) ? UNKNOWN : null);
}

function typeOfName(typeName: Node | undefined): Ty {
  const names = (typeName?.names as Node[] | undefined)?.map((n) => n.String?.sval as string) ?? [];
  const type = cat().named(names[names.length - 1] ?? '');
  return typeName?.arrayBounds ? cat().arrayOf(type) : type;
}

/** A child node that is itself an expression (`{SomeNode: {...}}`), for node types not modelled below. */
function childNodes(value: unknown): Node[] {
  if (Array.isArray(value)) return value.flatMap(childNodes);
  if (!value || typeof value !== 'object') return [];
  const keys = Object.keys(value);
  if (keys.length === 1 && /^[A-Z]/.test(keys[0]!)) return [value as Node];
  return Object.values(value).flatMap(childNodes);
}

function expr(node: Node | undefined, scope: Scope, ctx: Ctx): Expr {
  if (!node || typeof node !== 'object') return leaf('other', null);
  const c = cat();
  const [key] = Object.keys(node);
  const n = node[key!];
  const sub = (x: Node | undefined) => expr(x, scope, ctx);
  switch (key) {
    case 'ColumnRef':
      return columnExpr(n, scope, ctx);
    case 'ParamRef':
      return leaf('param', UNKNOWN);
    case 'A_Const':
      return leaf('other', constType(n));
    case 'TypeCast':
      return castExpr(n, scope, ctx);
    case 'FuncCall':
      return funcExpr(n, scope, ctx);
    case 'A_Expr':
      return operatorExpr(n, scope, ctx);
    case 'BoolExpr':
      return leaf('other', c.named('bool'), (n.args as Node[]).map(sub));
    case 'NullTest':
    case 'BooleanTest':
      return leaf('other', c.named('bool'), [sub(n.arg)]);
    case 'CaseExpr':
      return caseExpr(n, scope, ctx);
    case 'CoalesceExpr': {
      const args = (n.args as Node[]).map(sub);
      return { ...leaf('coalesce', firstKnown(args), args), label: 'COALESCE' };
    }
    case 'MinMaxExpr': {
      const args = (n.args as Node[]).map(sub);
      return leaf('other', firstKnown(args), args);
    }
    case 'SubLink':
      return sublinkExpr(n, scope, ctx);
    case 'A_ArrayExpr': {
      const args = ((n.elements as Node[] | undefined) ?? []).map(sub);
      return leaf('other', c.arrayOf(firstKnown(args)), args);
    }
    case 'SQLValueFunction':
      return call(String(n.op).replace('SVFOP_', '').toLowerCase(), 's', sqlValueType(n.op), []);
    case 'A_Indirection': {
      const arg = sub(n.arg);
      const subscripted = (n.indirection as Node[]).every((i) => i.A_Indices);
      return leaf('other', subscripted ? c.elementOf(arg.type) : null, [arg]);
    }
    case 'CollateClause': {
      const arg = sub(n.arg);
      return leaf('other', arg.type, [arg]);
    }
    case 'NamedArgExpr':
      return sub(n.arg);
    default:
      return leaf('other', null, childNodes(n).map(sub));
  }
}

function constType(n: Node): Ty {
  const c = cat();
  if (n.isnull || n.sval) return UNKNOWN;
  if (n.ival) return c.named('int4');
  if (n.boolval) return c.named('bool');
  if (n.fval) {
    const text = String(n.fval.fval);
    return /^-?\d+$/.test(text) && Math.abs(Number(text)) < 2 ** 63 ? c.named('int8') : c.named('numeric');
  }
  return null;
}

function sqlValueType(op: string): Ty {
  const c = cat();
  if (op === 'SVFOP_CURRENT_DATE') return c.named('date');
  if (op.startsWith('SVFOP_CURRENT_TIMESTAMP')) return c.named('timestamptz');
  if (op.startsWith('SVFOP_CURRENT_TIME')) return c.named('timetz');
  if (op.startsWith('SVFOP_LOCALTIMESTAMP')) return c.named('timestamp');
  if (op.startsWith('SVFOP_LOCALTIME')) return c.named('time');
  return c.named('name');
}

/** A column (a Var to the planner), or a PL/pgSQL variable (a Param) when no relation in scope has that column. */
function columnExpr(ref: Node, scope: Scope, ctx: Ctx): Expr {
  const names = refNames({ ColumnRef: ref });
  if (!names) return leaf('column', null);
  const found = lookupColumn(names, scope);
  if (names.length === 1 && ctx.vars.has(names[0]!) && !found.found) return leaf('param', ctx.vars.get(names[0]!) ?? null);
  if (names.length === 2 && ctx.qualifiers.has(names[0]!) && !hasAlias(names[0]!, scope)) {
    // `rec.field` (typed from the record's query when known) or `fn.param` / `label.var`.
    const field = ctx.vars.has(names[0]!) ? ctx.vars.get(names.join('.')) : ctx.vars.get(names[1]!);
    return leaf('param', field ?? null);
  }
  return leaf('column', found.type);
}

function castExpr(n: Node, scope: Scope, ctx: Ctx): Expr {
  const target = typeOfName(n.typeName);
  const arg = expr(n.arg, scope, ctx);
  // `$1::uuid` types the parameter and `'…'::timestamptz` is folded while parsing: no function runs.
  if (arg.type === UNKNOWN) return { ...arg, type: target };
  if (typeof target !== 'number') return leaf('other', null, [arg]);
  const c = cat();
  return call(`${c.name(arg.type)}::${c.name(target)}`, c.cast(arg.type, target), target, [arg]);
}

/** Names a call for messages, saying when the guard assumed the most volatile of several overloads. */
function callLabel(what: string, r: Resolved): string {
  if (!r.known) return `${what} (not in the catalogue: assumed VOLATILE)`;
  if (!r.exact) return `${what} (operand types unknown to the guard: the most volatile overload assumed)`;
  return what;
}

function funcExpr(n: Node, scope: Scope, ctx: Ctx): Expr {
  const name = (n.funcname as Node[]).at(-1)!.String.sval as string;
  const raw = n.agg_star ? [] : ((n.args as Node[] | undefined) ?? []);
  const args = raw.map((a) => expr(a, scope, ctx));
  const names = raw.map((a) => (a.NamedArgExpr?.name as string | undefined) ?? null);
  const r = cat().func(name, args.map((a) => a.type), names);
  const extra = [n.agg_filter, ...((n.agg_order as Node[] | undefined) ?? []).map((s) => s.SortBy?.node)].filter(Boolean).map((x) => expr(x, scope, ctx));
  return call(callLabel(`${name}()`, r), r.volatility, r.type, [...args, ...extra]);
}

const opName = (names: Node[] | undefined, fallback: string): string => (names?.at(-1)?.String?.sval as string | undefined) ?? fallback;

function binary(op: string, l: Expr, r: Expr, type?: Ty): Expr {
  const c = cat();
  const res = c.operator(op, l.type, r.type);
  return call(callLabel(`${c.name(l.type)} ${op} ${c.name(r.type)}`, res), res.volatility, type === undefined ? res.type : type, [l, r]);
}

function operatorExpr(n: Node, scope: Scope, ctx: Ctx): Expr {
  const c = cat();
  const bool = c.named('bool');
  const sub = (x: Node | undefined) => expr(x, scope, ctx);
  const op = opName(n.name, '=');
  switch (n.kind) {
    case 'AEXPR_OP': {
      const r = sub(n.rexpr);
      if (!n.lexpr) {
        const res = c.operator(op, undefined, r.type);
        return call(callLabel(`${op} ${c.name(r.type)}`, res), res.volatility, res.type, [r]);
      }
      return binary(op, sub(n.lexpr), r);
    }
    case 'AEXPR_OP_ANY':
    case 'AEXPR_OP_ALL': {
      const l = sub(n.lexpr);
      const r = sub(n.rexpr);
      const res = c.operator(op, l.type, c.elementOf(r.type));
      return call(callLabel(`${c.name(l.type)} ${op} ${n.kind === 'AEXPR_OP_ANY' ? 'ANY' : 'ALL'}(${c.name(r.type)})`, res), res.volatility, bool, [l, r]);
    }
    case 'AEXPR_DISTINCT':
    case 'AEXPR_NOT_DISTINCT':
      return binary('=', sub(n.lexpr), sub(n.rexpr), bool);
    case 'AEXPR_NULLIF': {
      const l = sub(n.lexpr);
      return binary('=', l, sub(n.rexpr), l.type);
    }
    case 'AEXPR_IN':
    case 'AEXPR_BETWEEN':
    case 'AEXPR_NOT_BETWEEN':
    case 'AEXPR_BETWEEN_SYM':
    case 'AEXPR_NOT_BETWEEN_SYM': {
      const l = sub(n.lexpr);
      const items = ((n.rexpr?.List?.items as Node[] | undefined) ?? []).map(sub);
      const ops = n.kind === 'AEXPR_IN' ? items.map(() => op) : ['>=', '<='];
      return leaf('other', bool, items.map((item, i) => binary(ops[i]!, l, item, bool)));
    }
    default:
      // LIKE, ILIKE, SIMILAR TO: the operator is named in the node.
      return n.lexpr ? binary(op, sub(n.lexpr), sub(n.rexpr)) : leaf('other', null, childNodes(n).map(sub));
  }
}

function caseExpr(n: Node, scope: Scope, ctx: Ctx): Expr {
  const sub = (x: Node | undefined) => expr(x, scope, ctx);
  const arg = n.arg ? sub(n.arg) : null;
  const args: Expr[] = arg ? [arg] : [];
  const results: Expr[] = [];
  for (const w of n.args as Node[]) {
    const cond = sub(w.CaseWhen.expr);
    // `CASE x WHEN v`: each WHEN compares x = v.
    args.push(arg ? binary('=', { ...arg, args: [] }, cond) : cond);
    results.push(sub(w.CaseWhen.result));
  }
  if (n.defresult) results.push(sub(n.defresult));
  return { ...leaf('case', firstKnown(results), [...args, ...results]), label: 'CASE' };
}

function sublinkExpr(n: Node, scope: Scope, ctx: Ctx): Expr {
  const c = cat();
  const info = queryInfo(n.subselect, scope, ctx);
  const first = info.cols.list[0]?.[1] ?? null;
  const test = n.testexpr ? expr(n.testexpr, scope, ctx) : null;
  const args: Expr[] = [];
  let type: Ty = c.named('bool');
  if (n.subLinkType === 'EXPR_SUBLINK') type = first;
  else if (n.subLinkType === 'ARRAY_SUBLINK') type = c.arrayOf(first);
  else if (test && (n.subLinkType === 'ANY_SUBLINK' || n.subLinkType === 'ALL_SUBLINK')) {
    // `x IN (SELECT y …)` compares x = y; a row compares column by column.
    const op = opName(n.operName, '=');
    const lefts = n.testexpr.RowExpr ? test.args : [test];
    lefts.forEach((l, i) => args.push(binary(op, l, leaf('param', info.cols.list[i]?.[1] ?? null), c.named('bool'))));
  } else if (test) args.push(test);
  return { ...leaf('query', type, args), inner: info.calls };
}

// ---------------------------------------------------------------------------------------------
// Whole statements: output columns (for CTEs and subqueries) and every non-IMMUTABLE call.

interface Info {
  cols: Cols;
  calls: Call[];
}

const infos = new WeakMap<Node, Info>();

/** The output columns of a statement and every non-IMMUTABLE call anywhere in it. */
function queryInfo(stmt: Node | undefined, outer: Scope | null, ctx: Ctx): Info {
  const body = stmt && statementBody(stmt);
  if (!body) return { cols: OPEN, calls: [] };
  const memo = infos.get(body.s);
  if (memo) return memo;
  infos.set(body.s, { cols: OPEN, calls: [] }); // guards against cycles while computing
  const info = computeInfo(body.kind, body.s, outer, ctx);
  infos.set(body.s, info);
  return info;
}

function computeInfo(kind: string, s: Node, outer: Scope | null, ctx: Ctx): Info {
  const scope = withScope(s.withClause, outer);
  const calls: Call[] = [];
  for (const cte of scope.ctes.values()) calls.push(...queryInfo(cte.query, scope, ctx).calls);
  if (kind === 'SelectStmt' && s.op && s.op !== 'SETOP_NONE') {
    const l = queryInfo({ SelectStmt: s.larg }, scope, ctx);
    calls.push(...l.calls, ...queryInfo({ SelectStmt: s.rarg }, scope, ctx).calls);
    return { cols: l.cols, calls };
  }
  const level = levelScope(kind, s, scope, ctx);
  const collect = (node: Node | undefined) => {
    if (node) calls.push(...mutableCalls(expr(node, level.scope, ctx)));
  };
  for (const sq of level.parts.subs) calls.push(...queryInfo(sq, scope, ctx).calls);
  [...level.parts.quals, ...level.parts.functions].forEach(collect);
  if (kind === 'InsertStmt') {
    calls.push(...queryInfo(s.selectStmt, scope, ctx).calls);
    for (const t of (s.onConflictClause?.targetList as Node[] | undefined) ?? []) collect(t.ResTarget?.val);
    collect(s.onConflictClause?.whereClause);
    return { cols: targetCols(returning(s), level.scope, ctx, calls), calls };
  }
  if (kind === 'UpdateStmt') for (const t of (s.targetList as Node[] | undefined) ?? []) collect(t.ResTarget?.val);
  if (kind !== 'SelectStmt') {
    collect(s.whereClause);
    return { cols: targetCols(returning(s), level.scope, ctx, calls), calls };
  }
  for (const key of ['whereClause', 'havingClause', 'limitCount', 'limitOffset']) collect(s[key]);
  for (const key of ['groupClause', 'sortClause', 'distinctClause']) for (const x of (s[key] as Node[] | undefined) ?? []) collect(x.SortBy?.node ?? x);
  if (s.valuesLists) {
    const rows = (s.valuesLists as Node[]).map((l) => (l.List.items as Node[]).map((v) => expr(v, level.scope, ctx)));
    rows.flat().forEach((e) => calls.push(...mutableCalls(e)));
    return { cols: { list: (rows[0] ?? []).map((e, i) => [`column${i + 1}`, e.type]), open: false }, calls };
  }
  return { cols: targetCols(s.targetList, level.scope, ctx, calls), calls };
}

function returning(s: Node): Node[] | undefined {
  return (s.returningClause?.exprs ?? s.returningList) as Node[] | undefined;
}

/** The relations one query level sees (target table and FROM/USING), and what to type in it. */
function levelScope(kind: string, s: Node, scope: Scope, ctx: Ctx): { scope: Scope; parts: FromParts } {
  const parts: FromParts = { quals: [], functions: [], subs: [] };
  const rels: Rel[] = [];
  if (kind !== 'SelectStmt') {
    const target = s.relation;
    const cols = tableCols(target.relname);
    rels.push({ alias: target.alias?.aliasname ?? target.relname, cols });
    if (kind === 'InsertStmt') rels.push({ alias: 'excluded', cols });
  }
  const from = kind === 'SelectStmt' || kind === 'UpdateStmt' ? s.fromClause : kind === 'DeleteStmt' ? s.usingClause : undefined;
  rels.push(...fromRels(from, scope, ctx, parts));
  return { scope: child(scope, rels), parts };
}

/** PostgreSQL's column name for an unnamed output expression (FigureColname, the common cases). */
function figureName(node: Node | undefined): string {
  if (!node) return '?column?';
  const names = refNames(node);
  if (names) return names[names.length - 1]!;
  if (node.FuncCall) return node.FuncCall.funcname.at(-1).String.sval;
  if (node.TypeCast) {
    const inner = figureName(node.TypeCast.arg);
    return inner !== '?column?' ? inner : (node.TypeCast.typeName.names.at(-1).String.sval as string);
  }
  if (node.CaseExpr) return 'case';
  if (node.CoalesceExpr) return 'coalesce';
  if (node.SubLink?.subLinkType === 'EXISTS_SUBLINK') return 'exists';
  if (node.SubLink?.subLinkType === 'EXPR_SUBLINK') {
    const first = node.SubLink.subselect?.SelectStmt?.targetList?.[0]?.ResTarget;
    return first?.name ?? figureName(first?.val);
  }
  return '?column?';
}

/** Output columns of a target (or RETURNING) list, `*` and `t.*` expanded. */
function targetCols(targets: Node[] | undefined, scope: Scope, ctx: Ctx, calls: Call[]): Cols {
  const out: Cols = { list: [], open: false };
  for (const t of targets ?? []) {
    const val = t.ResTarget?.val as Node | undefined;
    const fields = val?.ColumnRef?.fields as Node[] | undefined;
    if (fields?.at(-1)?.A_Star) {
      const alias = fields.length > 1 ? (fields[fields.length - 2]!.String?.sval as string) : null;
      for (const rel of scope.rels) {
        if (alias && rel.alias !== alias) continue;
        out.list.push(...rel.cols.list.filter(([n]) => !isSystemColumn(n)));
        out.open ||= rel.cols.open;
      }
      continue;
    }
    const e = expr(val, scope, ctx);
    calls.push(...mutableCalls(e));
    out.list.push([t.ResTarget?.name ?? figureName(val), e.type]);
  }
  return out;
}

const SYSTEM_COLUMNS = new Set(['tableoid', 'cmax', 'xmax', 'cmin', 'xmin', 'ctid']);
const isSystemColumn = (name: string) => SYSTEM_COLUMNS.has(name);

// ---------------------------------------------------------------------------------------------
// Rules 3 and 14–16 on one modification of a distributed table (multi_router_planner.c,
// ModifyQuerySupported and MasterIrreducibleExpression).

interface Irreducible {
  containsColumn: boolean;
  stableWithColumn: string[];
  badCase: string[];
}

/** Citus's walk: a CASE/COALESCE around any non-IMMUTABLE call, or a STABLE call over a column. */
function irreducible(e: Expr, state: Irreducible): void {
  if (e.kind === 'case' || e.kind === 'coalesce') {
    const calls = mutableCalls(e);
    if (calls.length > 0) state.badCase.push(`${e.label} around ${labels(calls)}`);
    return;
  }
  if (e.kind === 'column') {
    state.containsColumn = true;
    return;
  }
  if (e.volatility !== 'i') {
    const inner: Irreducible = { containsColumn: false, stableWithColumn: [], badCase: [] };
    e.args.forEach((a) => irreducible(a, inner));
    if (inner.containsColumn) state.stableWithColumn.push(e.label);
    state.stableWithColumn.push(...inner.stableWithColumn);
    state.badCase.push(...inner.badCase);
    return;
  }
  e.args.forEach((a) => irreducible(a, state));
}

function labels(calls: Call[]): string {
  return [...new Set(calls.map((c) => c.label))].join(', ');
}

/**
 * An UPDATE SET value, or a WHERE/ON of a modification: VOLATILE calls are refused outright (rule 16
 * for predicates; a VOLATILE SET value is refused too), then rules 14 and 15.
 */
function checkIrreducible(e: Expr, place: string, volatileRule: string, ctx: Ctx): void {
  const volatile = mutableCalls(e).filter((c) => c.volatility === 'v');
  if (volatile.length > 0) {
    report(ctx, volatileRule, `${place} calls VOLATILE ${labels(volatile)}`);
    return;
  }
  const state: Irreducible = { containsColumn: false, stableWithColumn: [], badCase: [] };
  irreducible(e, state);
  for (const label of new Set(state.stableWithColumn)) report(ctx, 'stable-column', `${place}: STABLE ${label} called with a column reference`);
  for (const what of new Set(state.badCase)) report(ctx, 'case-non-immutable', `${place}: ${what} (non-IMMUTABLE in CASE or COALESCE)`);
}

/** Rule 3: these places must call only IMMUTABLE functions (bare columns are fine). */
function checkImmutable(nodes: Node[], scope: Scope, place: string, ctx: Ctx): void {
  const calls = nodes.filter((n) => !n.ColumnRef).flatMap((n) => mutableCalls(expr(n, scope, ctx)));
  if (calls.length > 0) report(ctx, 'volatile', `${place} calls ${labels(calls)}`);
}

function checkModification(kind: string, s: Node, outer: Scope | null, ctx: Ctx): void {
  const table = s.relation.relname as string;
  if (!DISTRIBUTED.has(table)) return;
  const scope = withScope(s.withClause, outer);
  const level = levelScope(kind, s, scope, ctx);
  const at = (e: Node | undefined) => expr(e, level.scope, ctx);
  const verb = kind === 'UpdateStmt' ? `UPDATE ${table}` : kind === 'DeleteStmt' ? `DELETE FROM ${table}` : `INSERT INTO ${table}`;
  if (kind === 'UpdateStmt') {
    for (const t of (s.targetList as Node[] | undefined) ?? []) {
      const val = t.ResTarget?.val as Node | undefined;
      checkIrreducible(at(val?.MultiAssignRef?.source ?? val), `${verb} SET ${t.ResTarget?.name}`, 'volatile', ctx);
    }
  }
  const quals = [s.whereClause, ...level.parts.quals].filter(Boolean);
  for (const q of quals) checkIrreducible(at(q), `${verb} WHERE`, 'volatile-where', ctx);
  const conflict = s.onConflictClause;
  if (conflict) {
    const targets = ((conflict.targetList as Node[] | undefined) ?? []).map((t) => t.ResTarget.val as Node);
    checkImmutable(targets, level.scope, 'DO UPDATE SET', ctx);
    for (const w of [conflict.whereClause, conflict.infer?.whereClause].filter(Boolean)) {
      const before = ctx.out.length;
      checkIrreducible(at(w), `${verb} ON CONFLICT … WHERE`, 'volatile-where', ctx);
      // Citus wants IMMUTABLE here; report a plain STABLE call the walk above lets through.
      if (ctx.out.length === before) checkImmutable([w], level.scope, `${verb} ON CONFLICT … WHERE`, ctx);
    }
  }
  checkImmutable(returning(s) ?? [], level.scope, 'RETURNING', ctx);
}

// ---------------------------------------------------------------------------------------------
// Statements: tenant filter at every level, modifications' rules, INSERTs in CTEs (rule 17).

function checkStatement(stmt: Node, outer: Scope | null, ctx: Ctx): void {
  if (!stmt || typeof stmt !== 'object') return;
  const body = statementBody(stmt);
  if (!body) return checkOther(stmt, ctx);
  const { kind, s } = body;
  const scope = withScope(s.withClause, outer);
  for (const c of (s.withClause?.ctes as Node[] | undefined) ?? []) {
    const cte = c.CommonTableExpr;
    const insert = cte.ctequery?.InsertStmt;
    if (insert && DISTRIBUTED.has(insert.relation.relname)) {
      report(ctx, 'insert-cte', `INSERT INTO ${insert.relation.relname} in data-modifying CTE "${cte.ctename}": Citus splits the statement into distributed subplans`);
    }
    checkStatement(cte.ctequery, scope, ctx);
  }
  const ctes = new Set(scope.ctes.keys());
  for (let p = outer; p; p = p.parent) for (const k of p.ctes.keys()) ctes.add(k);

  if (kind === 'SelectStmt') {
    if (s.op && s.op !== 'SETOP_NONE') {
      if (s.larg) checkStatement({ SelectStmt: s.larg }, scope, ctx);
      if (s.rarg) checkStatement({ SelectStmt: s.rarg }, scope, ctx);
      return;
    }
    const rels = new Map<string, string>();
    const quals: Node[] = [];
    collectFrom(s.fromClause, rels, quals, ctes);
    checkTenantFilter(rels, [...conjuncts(s.whereClause), ...quals], ctx);
    checkSubqueries(s, scope, ctx);
    return;
  }
  if (kind === 'InsertStmt') {
    const table = s.relation.relname as string;
    if (DISTRIBUTED.has(table)) {
      checkInsert(s, table, ctx);
      checkModification(kind, { ...s, withClause: undefined }, scope, ctx);
    }
    if (s.selectStmt) checkStatement(s.selectStmt, scope, ctx);
    return;
  }
  const rels = new Map<string, string>();
  const quals: Node[] = [];
  collectFrom([{ RangeVar: s.relation }], rels, quals, new Set());
  collectFrom(kind === 'UpdateStmt' ? s.fromClause : s.usingClause, rels, quals, ctes);
  checkTenantFilter(rels, [...conjuncts(s.whereClause), ...quals], ctx);
  if (DISTRIBUTED.has(s.relation.relname)) {
    if (kind === 'UpdateStmt') {
      for (const t of s.targetList ?? []) {
        if (t.ResTarget?.name === 'tenant_id') report(ctx, 'tenant-update', `UPDATE sets tenant_id on ${s.relation.relname}`);
      }
    }
    checkModification(kind, { ...s, withClause: undefined }, scope, ctx);
  }
  checkSubqueries(s, scope, ctx);
}

/** Subqueries in WHERE / target lists / FROM are query levels of their own. */
function checkSubqueries(node: Node, scope: Scope, ctx: Ctx): void {
  const visit = (n: unknown): void => {
    if (Array.isArray(n)) return n.forEach(visit);
    if (!n || typeof n !== 'object') return;
    const o = n as Node;
    if (o.SubLink) return checkStatement(o.SubLink.subselect, scope, ctx);
    if (o.RangeSubselect) return checkStatement(o.RangeSubselect.subquery, scope, ctx);
    for (const v of Object.values(o)) visit(v);
  };
  for (const key of ['whereClause', 'targetList', 'fromClause', 'usingClause', 'havingClause']) visit(node[key]);
}

function checkInsert(ins: Node, table: string, ctx: Ctx): void {
  const cols = (ins.cols as Node[] | undefined)?.map((c) => c.ResTarget.name as string) ?? [];
  const at = cols.indexOf('tenant_id');
  if (at < 0) {
    report(ctx, 'tenant-filter', `INSERT into ${table} without an explicit tenant_id column`);
  } else {
    const select = ins.selectStmt?.SelectStmt;
    const rows: Node[][] = select?.valuesLists
      ? (select.valuesLists as Node[]).map((l) => l.List.items as Node[])
      : select?.targetList
        ? [(select.targetList as Node[]).map((t) => t.ResTarget.val as Node)]
        : [];
    const keys = new Set(rows.map((r) => boundKey(r[at], ctx) ?? 'not-a-param'));
    if (keys.size !== 1 || keys.has('not-a-param')) {
      report(ctx, 'tenant-filter', `INSERT into ${table}: every row must carry the same tenant_id parameter`);
    }
  }
  const conflict = ins.onConflictClause;
  if (conflict) {
    const target = (conflict.infer?.indexElems as Node[] | undefined)?.map((e) => e.IndexElem?.name) ?? [];
    if (conflict.infer && !target.includes('tenant_id')) report(ctx, 'unique-key', `ON CONFLICT target on ${table} lacks tenant_id`);
    for (const t of conflict.targetList ?? []) {
      if (t.ResTarget?.name === 'tenant_id') report(ctx, 'tenant-update', `DO UPDATE sets tenant_id on ${table}`);
    }
  }
}

/** DDL: unique keys (rule 5) and function bodies. */
function checkOther(stmt: Node, ctx: Ctx): void {
  if (stmt.CreateStmt) checkCreateTable(stmt.CreateStmt, ctx);
  if (stmt.IndexStmt) {
    const idx = stmt.IndexStmt;
    if (idx.unique && DISTRIBUTED.has(idx.relation.relname)) {
      const cols = (idx.indexParams as Node[]).map((p) => p.IndexElem?.name);
      if (!cols.includes('tenant_id')) report(ctx, 'unique-key', `unique index on ${idx.relation.relname} lacks tenant_id`);
    }
  }
  if (stmt.CreateFunctionStmt) checkFunction(stmt.CreateFunctionStmt, ctx);
}

function checkCreateTable(create: Node, ctx: Ctx): void {
  const table = create.relation.relname as string;
  if (!DISTRIBUTED.has(table)) return;
  for (const elt of create.tableElts ?? []) {
    const cons: Node[] = elt.Constraint ? [elt.Constraint] : ((elt.ColumnDef?.constraints as Node[] | undefined) ?? []).map((c) => c.Constraint);
    for (const c of cons) {
      if (c.contype !== 'CONSTR_PRIMARY' && c.contype !== 'CONSTR_UNIQUE') continue;
      const keys = (c.keys as Node[] | undefined)?.map((k) => k.String.sval) ?? (elt.ColumnDef ? [elt.ColumnDef.colname] : []);
      if (!keys.includes('tenant_id')) report(ctx, 'unique-key', `${c.contype} on ${table} lacks tenant_id`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Function bodies: on Citus a function distributed by tenant runs on the worker, where each
// statement of its body is planned by Citus under the same rules; its variables and parameters
// are bound parameters there.

function option(create: Node, name: string): Node | undefined {
  return (create.options as Node[] | undefined)?.find((o) => o.DefElem?.defname === name)?.DefElem?.arg;
}

function checkFunction(create: Node, ctx: Ctx): void {
  const language = (option(create, 'language')?.String?.sval as string | undefined)?.toLowerCase();
  const name = (create.funcname as Node[]).at(-1)!.String.sval as string;
  if (language === 'plpgsql') checkPlpgsql(name, ctx);
  else if (language === 'sql') checkSqlFunction(create, name, ctx);
}

/** The SQL text a PL/pgSQL expression stands for (parseMode: PostgreSQL's RawParseMode). */
function embeddedSql(query: string, parseMode: number): string {
  if (parseMode === 0) return query; // a whole statement (INTO already removed)
  if (parseMode >= 3) return `SELECT ${query.replace(/^[^:=]*?:?=/, '')}`; // `target := expression`
  return `SELECT ${query}`; // an expression
}

/** Every PLpgSQL_expr of a parsed function, with the line of the statement it belongs to. */
function plpgsqlExprs(node: unknown, line: number, out: Array<{ query: string; parseMode: number; line: number }>, labels: Set<string>): void {
  if (Array.isArray(node)) return node.forEach((n) => plpgsqlExprs(n, line, out, labels));
  if (!node || typeof node !== 'object') return;
  const o = node as Node;
  if (o.PLpgSQL_expr) {
    out.push({ query: o.PLpgSQL_expr.query, parseMode: o.PLpgSQL_expr.parseMode ?? 0, line });
    return;
  }
  if (typeof o.label === 'string') labels.add(o.label);
  const here = typeof o.lineno === 'number' && o.lineno > 0 ? o.lineno : line;
  for (const v of Object.values(o)) plpgsqlExprs(v, here, out, labels);
}

/** A PL/pgSQL declared type name ('timestamp with time zone', 'uuid[]', 't.col%TYPE') as a type. */
function plpgsqlType(typname: string | undefined): Ty {
  if (!typname) return null;
  const column = /^(\w+)\.(\w+)%type$/i.exec(typname);
  if (column) return cat().columns(column[1]!)?.find(([n]) => n === column[2])?.[1] ?? null;
  try {
    const stmt = (parseSync(`SELECT NULL::${typname}`) as Node).stmts[0].stmt;
    return typeOfName(stmt.SelectStmt.targetList[0].ResTarget.val.TypeCast.typeName);
  } catch {
    return null;
  }
}

function checkPlpgsql(name: string, ctx: Ctx): void {
  let parsed: Node;
  try {
    parsed = parsePlPgSQLSync(ctx.sql) as Node;
  } catch (error) {
    report(ctx, 'parse', `PL/pgSQL body of ${name}: ${(error as Error).message}`);
    return;
  }
  for (const f of (parsed.plpgsql_funcs as Node[] | undefined) ?? []) {
    const fn = f.PLpgSQL_function;
    const vars = new Map<string, Ty>();
    const qualifiers = new Set<string>([name]);
    for (const datum of (fn.datums as Node[] | undefined) ?? []) {
      const [kind] = Object.keys(datum);
      const d = datum[kind!];
      if (typeof d.refname !== 'string' || d.refname.startsWith('(')) continue;
      vars.set(d.refname, kind === 'PLpgSQL_var' ? plpgsqlType(d.datatype?.PLpgSQL_type?.typname) : null);
      if (kind !== 'PLpgSQL_var') qualifiers.add(d.refname);
    }
    const exprs: Array<{ query: string; parseMode: number; line: number }> = [];
    plpgsqlExprs(fn, 0, exprs, qualifiers);
    const inner: Ctx = { ...ctx, vars, qualifiers };
    typeRecordFields(fn.action, inner);
    for (const e of exprs) {
      checkBody(embeddedSql(e.query, e.parseMode), { ...inner, origin: `${ctx.origin}in ${name}() line ${e.line}: ` });
    }
  }
}

/**
 * `FOR rec IN <query>` and `<query> INTO rec`: the record's fields take the query's output column
 * types (a field two queries type differently stays unknown).
 */
function typeRecordFields(action: unknown, ctx: Ctx): void {
  const seen = new Map<string, Ty>();
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (!node || typeof node !== 'object') return;
    const o = node as Node;
    const loop = o.PLpgSQL_stmt_fors;
    const into = o.PLpgSQL_stmt_execsql;
    const rec = (loop?.var ?? into?.target)?.PLpgSQL_rec?.refname as string | undefined;
    const query = (loop?.query ?? into?.sqlstmt)?.PLpgSQL_expr?.query as string | undefined;
    if (rec && query) {
      try {
        const stmt = (parseSync(query) as Node).stmts[0].stmt;
        for (const [field, type] of queryInfo(stmt, null, ctx).cols.list) {
          const key = `${rec}.${field}`;
          seen.set(key, seen.has(key) && seen.get(key) !== type ? null : type);
        }
      } catch {
        // an unparsable query is reported where it is checked
      }
    }
    for (const v of Object.values(o)) visit(v);
  };
  visit(action);
  for (const [key, type] of seen) ctx.vars.set(key, type);
}

/** A LANGUAGE sql body (`AS $$ … $$`): its parameters are bound parameters too. */
function checkSqlFunction(create: Node, name: string, ctx: Ctx): void {
  const body = option(create, 'as')?.List?.items?.[0]?.String?.sval as string | undefined;
  if (!body) return;
  const vars = new Map<string, Ty>();
  for (const p of (create.parameters as Node[] | undefined) ?? []) {
    const param = p.FunctionParameter;
    if (param.name && param.mode !== 'FUNC_PARAM_OUT' && param.mode !== 'FUNC_PARAM_TABLE') vars.set(param.name, typeOfName(param.argType));
  }
  checkBody(body, { ...ctx, vars, qualifiers: new Set([name]), origin: `${ctx.origin}in ${name}(): ` });
}

function checkBody(sql: string, ctx: Ctx): void {
  let parsed: Node;
  try {
    parsed = parseSync(sql) as Node;
  } catch (error) {
    report({ ...ctx, sql }, 'parse', (error as Error).message);
    return;
  }
  for (const s of parsed.stmts ?? []) checkStatement(s.stmt, null, { ...ctx, sql });
}

// ---------------------------------------------------------------------------------------------

const cache = new Map<string, Violation[]>();

/**
 * Marks a statement that fans out across tenants on purpose (docs/citus.md rule 12: a migration's
 * backfill, the test suite's recount; never a request path): the tenant-filter rule is waived for
 * it, every other rule holds.
 */
export const FAN_OUT_MARK = '/* citus: fans out by design */';

/** One statement's own text (libpg-query locations are byte offsets). */
function statementText(sql: Buffer, s: Node): string {
  const start = s.stmt_location ?? 0;
  return sql.subarray(start, s.stmt_len ? start + s.stmt_len : undefined).toString();
}

/** The rule violations of one SQL text (parsed once per distinct text). */
export function checkSql(sql: string): Violation[] {
  const hit = cache.get(sql);
  if (hit) return hit;
  const out: Violation[] = [];
  const base: Ctx = { sql, out, vars: new Map(), qualifiers: new Set(), origin: '' };
  let parsed: Node | null = null;
  try {
    parsed = parseSync(sql) as Node;
  } catch (error) {
    out.push({ rule: 'parse', detail: (error as Error).message, sql });
  }
  try {
    const bytes = Buffer.from(sql);
    for (const s of parsed?.stmts ?? []) {
      const ctx = s.stmt?.CreateFunctionStmt ? { ...base, sql: statementText(bytes, s) } : base;
      checkStatement(s.stmt, null, ctx);
    }
  } catch (error) {
    // A statement the guard itself cannot analyse fails loudly rather than passing unchecked.
    out.push({ rule: 'guard', detail: (error as Error).stack ?? String(error), sql });
  }
  const kept = sql.includes(FAN_OUT_MARK) ? out.filter((v) => v.rule !== 'tenant-filter') : out;
  cache.set(sql, kept);
  return kept;
}

/** A query observer that records violations; `assertClean()` throws listing them. */
export function createCitusGuard() {
  const violations: Violation[] = [];
  const seen = new Set<string>();
  return {
    violations,
    observe(event: { query: { sql: string } }): void {
      const sql = event.query.sql;
      if (seen.has(sql)) return;
      seen.add(sql);
      violations.push(...checkSql(sql));
    },
    assertClean(): void {
      if (violations.length > 0) {
        throw new Error(
          `Citus guard: ${violations.length} statement(s) break docs/citus.md:\n` +
            violations.map((v) => `- [${v.rule}] ${v.detail}\n    ${v.sql.replace(/\s+/g, ' ').slice(0, 400)}`).join('\n'),
        );
      }
    },
  };
}
