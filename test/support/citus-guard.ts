/**
 * The Citus guard (design/citus.md): every statement the data layer sends is parsed with the real
 * PostgreSQL parser and checked against the rules that keep it single-shard on Citus.
 */
import { loadModule, parseSync } from 'libpg-query';
import { DISTRIBUTED_TABLES } from '../../src/db/tables.js';

const DISTRIBUTED = new Set<string>(DISTRIBUTED_TABLES);
const VOLATILE = new Set([
  'now',
  'clock_timestamp',
  'statement_timestamp',
  'transaction_timestamp',
  'timeofday',
  'random',
  'gen_random_uuid',
  'uuid_generate_v4',
  'nextval',
]);

type Node = Record<string, any>;

export interface Violation {
  rule: string;
  detail: string;
  sql: string;
}

let loaded: Promise<void> | null = null;
export function loadParser(): Promise<void> {
  loaded ??= loadModule().then(() => undefined);
  return loaded;
}

/** Top-level AND conjuncts of an expression. */
function conjuncts(expr: Node | undefined): Node[] {
  if (!expr) return [];
  const bool = expr.BoolExpr;
  if (bool && bool.boolop === 'AND_EXPR') return (bool.args as Node[]).flatMap(conjuncts);
  return [expr];
}

function columnRef(node: Node | undefined): { table: string | null; column: string } | null {
  const ref = node?.ColumnRef;
  if (!ref) return null;
  const names = (ref.fields as Node[]).map((f) => f.String?.sval as string | undefined);
  if (names.some((n) => n === undefined)) return null;
  if (names.length === 1) return { table: null, column: names[0]! };
  return { table: names[names.length - 2]!, column: names[names.length - 1]! };
}

function isParam(node: Node | undefined): boolean {
  if (!node) return false;
  if (node.ParamRef) return true;
  if (node.TypeCast) return isParam(node.TypeCast.arg);
  return false;
}

function equality(expr: Node): [Node, Node] | null {
  const a = expr.A_Expr;
  if (!a || a.kind !== 'AEXPR_OP' || a.name?.[0]?.String?.sval !== '=') return null;
  return [a.lexpr, a.rexpr];
}

/** Distributed relations in a FROM list (alias → table), recursing into joins; collects join quals. */
function collectFrom(items: Node[] | undefined, rels: Map<string, string>, quals: Node[]): void {
  for (const item of items ?? []) {
    if (item.RangeVar) {
      const name = item.RangeVar.relname as string;
      if (DISTRIBUTED.has(name)) rels.set(item.RangeVar.alias?.aliasname ?? name, name);
    } else if (item.JoinExpr) {
      collectFrom([item.JoinExpr.larg, item.JoinExpr.rarg], rels, quals);
      quals.push(...conjuncts(item.JoinExpr.quals));
    }
  }
}

/** Checks that every distributed relation of one query level is pinned to a single tenant. */
function checkTenantFilter(rels: Map<string, string>, where: Node[], sql: string, out: Violation[]): void {
  if (rels.size === 0) return;
  const pinned = new Set<string>();
  const links: Array<[string, string]> = [];
  for (const c of where) {
    const eq = equality(c);
    if (!eq) continue;
    const [l, r] = eq;
    const lc = columnRef(l);
    const rc = columnRef(r);
    if (lc?.column === 'tenant_id' && isParam(r)) pinned.add(lc.table ?? '*');
    else if (rc?.column === 'tenant_id' && isParam(l)) pinned.add(rc.table ?? '*');
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
    if (!pinned.has(alias)) {
      out.push({ rule: 'tenant-filter', detail: `${table}${alias !== table ? ` (${alias})` : ''} has no top-level tenant_id = $n`, sql });
    }
  }
}

function findVolatile(node: unknown, found: string[]): void {
  if (Array.isArray(node)) {
    node.forEach((n) => findVolatile(n, found));
    return;
  }
  if (!node || typeof node !== 'object') return;
  const n = node as Node;
  if (n.FuncCall) {
    const name = (n.FuncCall.funcname as Node[]).map((f) => f.String?.sval).pop();
    if (name && VOLATILE.has(name)) found.push(`${name}()`);
  }
  if (n.SQLValueFunction) found.push(String(n.SQLValueFunction.op));
  for (const v of Object.values(n)) findVolatile(v, found);
}

function checkStatement(stmt: Node, sql: string, out: Violation[]): void {
  if (!stmt || typeof stmt !== 'object') return;
  const withClause = (stmt.SelectStmt ?? stmt.InsertStmt ?? stmt.UpdateStmt ?? stmt.DeleteStmt)?.withClause;
  for (const cte of withClause?.ctes ?? []) checkStatement(cte.CommonTableExpr.ctequery, sql, out);

  if (stmt.SelectStmt) {
    const s = stmt.SelectStmt;
    if (s.op && s.op !== 'SETOP_NONE') {
      checkStatement(s.larg && { SelectStmt: s.larg }, sql, out);
      checkStatement(s.rarg && { SelectStmt: s.rarg }, sql, out);
      return;
    }
    const rels = new Map<string, string>();
    const quals: Node[] = [];
    collectFrom(s.fromClause, rels, quals);
    checkTenantFilter(rels, [...conjuncts(s.whereClause), ...quals], sql, out);
    checkSubqueries(s, sql, out);
    return;
  }
  if (stmt.UpdateStmt) {
    const u = stmt.UpdateStmt;
    const rels = new Map<string, string>();
    const quals: Node[] = [];
    collectFrom([{ RangeVar: u.relation }], rels, quals);
    collectFrom(u.fromClause, rels, quals);
    checkTenantFilter(rels, [...conjuncts(u.whereClause), ...quals], sql, out);
    if (DISTRIBUTED.has(u.relation.relname)) {
      for (const t of u.targetList ?? []) {
        if (t.ResTarget?.name === 'tenant_id') out.push({ rule: 'tenant-update', detail: `UPDATE sets tenant_id on ${u.relation.relname}`, sql });
      }
      const found: string[] = [];
      findVolatile(u.returningClause ?? u.returningList, found);
      if (found.length) out.push({ rule: 'volatile', detail: `RETURNING calls ${found.join(', ')}`, sql });
    }
    checkSubqueries(u, sql, out);
    return;
  }
  if (stmt.DeleteStmt) {
    const d = stmt.DeleteStmt;
    const rels = new Map<string, string>();
    const quals: Node[] = [];
    collectFrom([{ RangeVar: d.relation }], rels, quals);
    collectFrom(d.usingClause, rels, quals);
    checkTenantFilter(rels, [...conjuncts(d.whereClause), ...quals], sql, out);
    if (DISTRIBUTED.has(d.relation.relname)) {
      const found: string[] = [];
      findVolatile(d.returningClause ?? d.returningList, found);
      if (found.length) out.push({ rule: 'volatile', detail: `RETURNING calls ${found.join(', ')}`, sql });
    }
    checkSubqueries(d, sql, out);
    return;
  }
  if (stmt.InsertStmt) {
    const ins = stmt.InsertStmt;
    const table = ins.relation.relname as string;
    if (DISTRIBUTED.has(table)) checkInsert(ins, table, sql, out);
    if (ins.selectStmt) checkStatement(ins.selectStmt, sql, out);
    return;
  }
  if (stmt.CreateStmt) checkCreateTable(stmt.CreateStmt, sql, out);
  if (stmt.IndexStmt) {
    const idx = stmt.IndexStmt;
    if (idx.unique && DISTRIBUTED.has(idx.relation.relname)) {
      const cols = (idx.indexParams as Node[]).map((p) => p.IndexElem?.name);
      if (!cols.includes('tenant_id')) out.push({ rule: 'unique-key', detail: `unique index on ${idx.relation.relname} lacks tenant_id`, sql });
    }
  }
}

/** Subqueries in WHERE / target lists / FROM are query levels of their own. */
function checkSubqueries(node: Node, sql: string, out: Violation[]): void {
  const visit = (n: unknown): void => {
    if (Array.isArray(n)) return n.forEach(visit);
    if (!n || typeof n !== 'object') return;
    const o = n as Node;
    if (o.SubLink) return checkStatement(o.SubLink.subselect, sql, out);
    if (o.RangeSubselect) return checkStatement(o.RangeSubselect.subquery, sql, out);
    for (const v of Object.values(o)) visit(v);
  };
  for (const key of ['whereClause', 'targetList', 'fromClause', 'usingClause', 'havingClause']) visit(node[key]);
}

function checkInsert(ins: Node, table: string, sql: string, out: Violation[]): void {
  const cols = (ins.cols as Node[] | undefined)?.map((c) => c.ResTarget.name as string) ?? [];
  const at = cols.indexOf('tenant_id');
  if (at < 0) {
    out.push({ rule: 'tenant-filter', detail: `INSERT into ${table} without an explicit tenant_id column`, sql });
  } else {
    const select = ins.selectStmt?.SelectStmt;
    const rows: Node[][] = select?.valuesLists
      ? (select.valuesLists as Node[]).map((l) => l.List.items as Node[])
      : select?.targetList
        ? [(select.targetList as Node[]).map((t) => t.ResTarget.val as Node)]
        : [];
    const params = new Set(rows.map((r) => (isParam(r[at]) ? JSON.stringify(paramNumber(r[at]!)) : 'not-a-param')));
    if (params.size !== 1 || params.has('not-a-param')) {
      out.push({ rule: 'tenant-filter', detail: `INSERT into ${table}: every row must carry the same tenant_id parameter`, sql });
    }
  }
  const conflict = ins.onConflictClause;
  if (conflict) {
    const target = (conflict.infer?.indexElems as Node[] | undefined)?.map((e) => e.IndexElem?.name) ?? [];
    if (conflict.infer && !target.includes('tenant_id')) out.push({ rule: 'unique-key', detail: `ON CONFLICT target on ${table} lacks tenant_id`, sql });
    const found: string[] = [];
    findVolatile(conflict.targetList, found);
    if (found.length) out.push({ rule: 'volatile', detail: `DO UPDATE SET calls ${found.join(', ')}`, sql });
    for (const t of conflict.targetList ?? []) {
      if (t.ResTarget?.name === 'tenant_id') out.push({ rule: 'tenant-update', detail: `DO UPDATE sets tenant_id on ${table}`, sql });
    }
  }
  const found: string[] = [];
  findVolatile(ins.returningClause ?? ins.returningList, found);
  if (found.length) out.push({ rule: 'volatile', detail: `RETURNING calls ${found.join(', ')}`, sql });
}

function paramNumber(node: Node): number {
  return node.ParamRef ? node.ParamRef.number : paramNumber(node.TypeCast.arg);
}

function checkCreateTable(create: Node, sql: string, out: Violation[]): void {
  const table = create.relation.relname as string;
  if (!DISTRIBUTED.has(table)) return;
  for (const elt of create.tableElts ?? []) {
    const cons: Node[] = elt.Constraint ? [elt.Constraint] : ((elt.ColumnDef?.constraints as Node[] | undefined) ?? []).map((c) => c.Constraint);
    for (const c of cons) {
      if (c.contype !== 'CONSTR_PRIMARY' && c.contype !== 'CONSTR_UNIQUE') continue;
      const keys = (c.keys as Node[] | undefined)?.map((k) => k.String.sval) ?? (elt.ColumnDef ? [elt.ColumnDef.colname] : []);
      if (!keys.includes('tenant_id')) out.push({ rule: 'unique-key', detail: `${c.contype} on ${table} lacks tenant_id`, sql });
    }
    if (elt.ColumnDef?.colname === 'tenant_id') continue;
  }
}

const cache = new Map<string, Violation[]>();

/**
 * Marks a statement that fans out across tenants on purpose (design/citus.md rule 12: a migration's
 * backfill, the test suite's recount; never a request path): the tenant-filter rule is waived for
 * it, every other rule holds.
 */
export const FAN_OUT_MARK = '/* citus: fans out by design */';

/** The rule violations of one SQL text (parsed once per distinct text). */
export function checkSql(sql: string): Violation[] {
  const hit = cache.get(sql);
  if (hit) return hit;
  const out: Violation[] = [];
  let parsed: Node;
  try {
    parsed = parseSync(sql) as Node;
  } catch (error) {
    out.push({ rule: 'parse', detail: (error as Error).message, sql });
    cache.set(sql, out);
    return out;
  }
  for (const s of parsed.stmts ?? []) checkStatement(s.stmt, sql, out);
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
          `Citus guard: ${violations.length} statement(s) break design/citus.md:\n` +
            violations.map((v) => `- [${v.rule}] ${v.detail}\n    ${v.sql.replace(/\s+/g, ' ').slice(0, 400)}`).join('\n'),
        );
      }
    },
  };
}
