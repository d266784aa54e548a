/**
 * What the Citus guard (test/support/citus-guard.ts) needs to know from PostgreSQL itself to apply
 * docs/citus.md rules 3 and 14–16: the volatility of every function, operator and cast, and the
 * column types of the project's tables (to pick the overload an operator resolves to). Read once
 * from a database (`readCatalog`), or from an embedded PGlite migrated with the project's
 * migrations (`embeddedCatalog`, cached on disk: starting PGlite takes seconds).
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** pg_proc.provolatile: IMMUTABLE, STABLE or VOLATILE. */
export type Volatility = 'i' | 's' | 'v';

/** PostgreSQL's "unknown": an untyped literal or parameter, which takes the type its context asks for. */
export const UNKNOWN = 'unknown';

/** A type OID, UNKNOWN, or null when the guard cannot tell. */
export type Ty = number | typeof UNKNOWN | null;

/** An operator or function as resolved for given argument types: its volatility and result type. */
export interface Resolved {
  volatility: Volatility;
  type: Ty;
  /** False when no function or operator of that name exists (then assumed VOLATILE). */
  known: boolean;
  /** False when several overloads remained and the most volatile one was assumed. */
  exact: boolean;
}

interface TypeRow { oid: number; name: string; schema: string; elem: number; array: number; category: string; kind: string; base: number; input: Volatility; output: Volatility }
interface ProcRow { name: string; volatility: Volatility; nargs: number; ndefaults: number; args: number[]; variadic: number; ret: number; argnames: string[] | null }
interface OperatorRow { name: string; kind: string; left: number; right: number; result: number; volatility: Volatility }
interface CastRow { source: number; target: number; context: string; method: string; volatility: Volatility }
interface ColumnRow { relname: string; attname: string; type: number }

export interface CatalogData {
  types: TypeRow[];
  procs: ProcRow[];
  operators: OperatorRow[];
  casts: CastRow[];
  columns: ColumnRow[];
}

/** Anything with PostgreSQL rows: a pg Client/Pool, a PGlite, or a function running one SQL text. */
export type CatalogSource = ((sql: string) => Promise<{ rows: unknown[] }>) | { query(sql: string): Promise<{ rows: unknown[] }> };

// Scalars only (numbers and text), so every client returns the same shapes.
const QUERIES = {
  types: `SELECT t.oid::int8 AS oid, t.typname AS name, n.nspname AS schema, t.typelem::int8 AS elem, t.typarray::int8 AS array,
                 t.typcategory AS category, t.typtype AS kind, t.typbasetype::int8 AS base, i.provolatile AS input, o.provolatile AS output
            FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
            JOIN pg_proc i ON i.oid = t.typinput JOIN pg_proc o ON o.oid = t.typoutput`,
  procs: `SELECT p.proname AS name, p.provolatile AS volatility, p.pronargs AS nargs, p.pronargdefaults AS ndefaults,
                 p.proargtypes::text AS args, p.provariadic::int8 AS variadic, p.prorettype::int8 AS ret,
                 CASE WHEN p.proargnames IS NULL THEN NULL
                      WHEN p.proargmodes IS NULL THEN array_to_json(p.proargnames)::text
                      ELSE array_to_json(ARRAY(SELECT a.name FROM unnest(p.proargnames, p.proargmodes) AS a(name, mode)
                                               WHERE a.mode IN ('i', 'b', 'v')))::text END AS argnames
            FROM pg_proc p`,
  operators: `SELECT o.oprname AS name, o.oprkind AS kind, o.oprleft::int8 AS left, o.oprright::int8 AS right,
                     o.oprresult::int8 AS result, p.provolatile AS volatility
                FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode`,
  casts: `SELECT c.castsource::int8 AS source, c.casttarget::int8 AS target, c.castcontext AS context, c.castmethod AS method,
                 coalesce(p.provolatile, 'i') AS volatility
            FROM pg_cast c LEFT JOIN pg_proc p ON p.oid = c.castfunc`,
  columns: `SELECT c.relname, a.attname, a.atttypid::int8 AS type
              FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT a.attisdropped AND a.attnum <> 0`,
};

type Row = Record<string, unknown>;
const num = (v: unknown): number => Number(v);
const str = (v: unknown): string => String(v);
const vol = (v: unknown): Volatility => str(v) as Volatility;

function runner(source: CatalogSource): (sql: string) => Promise<Row[]> {
  return async (sql) => ((typeof source === 'function' ? await source(sql) : await source.query(sql)).rows as Row[]);
}

/** Reads the catalogue from a live database (PostgreSQL, Citus or PGlite), migrated or not. */
export async function readCatalogData(source: CatalogSource): Promise<CatalogData> {
  const run = runner(source);
  const [types, procs, operators, casts, columns] = await Promise.all([
    run(QUERIES.types),
    run(QUERIES.procs),
    run(QUERIES.operators),
    run(QUERIES.casts),
    run(QUERIES.columns),
  ]);
  return {
    types: types.map((r) => ({
      oid: num(r.oid), name: str(r.name), schema: str(r.schema), elem: num(r.elem), array: num(r.array), category: str(r.category),
      kind: str(r.kind), base: num(r.base), input: vol(r.input), output: vol(r.output),
    })),
    procs: procs.map((r) => ({
      name: str(r.name), volatility: vol(r.volatility), nargs: num(r.nargs), ndefaults: num(r.ndefaults),
      args: str(r.args).split(' ').filter(Boolean).map(Number), variadic: num(r.variadic), ret: num(r.ret),
      argnames: r.argnames == null ? null : (JSON.parse(str(r.argnames)) as string[]),
    })),
    operators: operators.map((r) => ({
      name: str(r.name), kind: str(r.kind), left: num(r.left), right: num(r.right), result: num(r.result), volatility: vol(r.volatility),
    })),
    casts: casts.map((r) => ({ source: num(r.source), target: num(r.target), context: str(r.context), method: str(r.method), volatility: vol(r.volatility) })),
    columns: columns.map((r) => ({ relname: str(r.relname), attname: str(r.attname), type: num(r.type) })),
  };
}

export async function readCatalog(source: CatalogSource): Promise<Catalog> {
  return new Catalog(await readCatalogData(source));
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CACHE_DIR = join(ROOT, 'node_modules', '.cache', 'citus-guard');

/** What the embedded catalogue depends on: the queries, the PGlite build and every migration's text. */
async function embeddedKey(): Promise<string> {
  const hash = createHash('sha256').update(JSON.stringify(QUERIES));
  hash.update(await readFile(join(ROOT, 'node_modules', '@electric-sql', 'pglite', 'package.json')));
  const dir = join(ROOT, 'migrations');
  for (const file of (await readdir(dir)).sort()) hash.update(file).update(await readFile(join(dir, file)));
  return hash.digest('hex').slice(0, 16);
}

/** Migrates a throw-away in-memory PGlite with the project's migrations and reads its catalogue. */
async function readEmbedded(): Promise<CatalogData> {
  const { openDatabase } = await import('../../src/db/database.js');
  const { migrateToLatest } = await import('../../src/db/migrate.js');
  const { CompiledQuery } = await import('kysely');
  const handle = await openDatabase({ databaseUrl: undefined, pgliteDir: 'memory://', db: { poolMax: 1, statementTimeoutMs: 0, connectionTimeoutMs: 0 } });
  try {
    await migrateToLatest(handle.db);
    return await readCatalogData((sql) => handle.db.executeQuery(CompiledQuery.raw(sql)));
  } finally {
    await handle.close();
  }
}

/** Keeps the newest few catalogues (several checkouts or branches may share node_modules). */
async function pruneCache(keep = 4): Promise<void> {
  const files = (await readdir(CACHE_DIR)).filter((f) => f.endsWith('.json')).map((f) => join(CACHE_DIR, f));
  const dated = await Promise.all(files.map(async (f) => ({ f, at: (await stat(f)).mtimeMs })));
  for (const { f } of dated.sort((a, b) => b.at - a.at).slice(keep)) await rm(f, { force: true });
}

/**
 * The catalogue of an embedded PGlite migrated with the project's migrations, so the guard needs no
 * server; cached under node_modules/.cache keyed by the migrations' text (written atomically: test
 * files load it in parallel).
 */
export async function embeddedCatalog(): Promise<Catalog> {
  const file = join(CACHE_DIR, `catalog-${await embeddedKey()}.json`);
  try {
    return new Catalog(JSON.parse(await readFile(file, 'utf8')) as CatalogData);
  } catch {
    const data = await readEmbedded();
    await mkdir(CACHE_DIR, { recursive: true });
    const tmp = `${file}.${process.pid}.${Date.now()}`;
    await writeFile(tmp, JSON.stringify(data));
    await rename(tmp, file);
    await pruneCache();
    return new Catalog(data);
  }
}

const ORDER: Record<Volatility, number> = { i: 0, s: 1, v: 2 };
export const maxVolatility = (...all: Volatility[]): Volatility => all.reduce((a, b) => (ORDER[b] > ORDER[a] ? b : a), 'i');

/** Pseudo-types a parameter may declare that accept any argument type (polymorphism). */
const ANY_ELEMENT = new Set(['any', 'anyelement', 'anynonarray', 'anycompatible', 'anycompatiblenonarray']);
const ANY_ARRAY = new Set(['anyarray', 'anycompatiblearray']);
const ANY_KIND: Record<string, string> = { anyenum: 'e', anyrange: 'r', anycompatiblerange: 'r', anymultirange: 'm', anycompatiblemultirange: 'm' };

interface Candidate { args: number[]; volatility: Volatility; ret: number }

/** The catalogue, with PostgreSQL's overload resolution simplified to what volatility needs. */
export class Catalog {
  private readonly types = new Map<number, TypeRow>();
  private readonly typeNames = new Map<string, number>();
  private readonly procs = new Map<string, ProcRow[]>();
  private readonly operators = new Map<string, OperatorRow[]>();
  private readonly casts = new Map<string, CastRow>();
  private readonly castsInto = new Map<number, CastRow[]>();
  private readonly tables = new Map<string, Array<[string, number]>>();

  constructor(data: CatalogData) {
    for (const t of data.types) {
      this.types.set(t.oid, t);
      // pg_catalog's name wins over a same-named type elsewhere.
      if (t.schema === 'pg_catalog' || !this.typeNames.has(t.name)) this.typeNames.set(t.name, t.oid);
    }
    for (const p of data.procs) push(this.procs, p.name, p);
    for (const o of data.operators) push(this.operators, o.name, o);
    for (const c of data.casts) {
      this.casts.set(`${c.source}>${c.target}`, c);
      push(this.castsInto, c.target, c);
    }
    for (const c of data.columns) push(this.tables, c.relname, [c.attname, c.type]);
  }

  /** The OID of a type by pg_type name ('int4', 'timestamptz', '_text'), or null. */
  named(name: string): number | null {
    return this.typeNames.get(name) ?? null;
  }

  name(type: Ty): string {
    if (type === null) return '?';
    if (type === UNKNOWN) return 'unknown';
    return this.types.get(type)?.name ?? String(type);
  }

  /** Columns of a table or view of the current schema (system columns included), or undefined. */
  columns(table: string): ReadonlyArray<[string, number]> | undefined {
    return this.tables.get(table);
  }

  arrayOf(type: Ty): Ty {
    if (typeof type !== 'number') return type === UNKNOWN ? null : type;
    return this.types.get(type)?.array || null;
  }

  elementOf(type: Ty): Ty {
    if (typeof type !== 'number') return type;
    const t = this.types.get(this.base(type));
    return t && t.category === 'A' && t.elem ? t.elem : null;
  }

  private base(type: number): number {
    const t = this.types.get(type);
    return t && t.kind === 'd' && t.base ? this.base(t.base) : type;
  }

  /** The volatility of coercing `from` to `to` implicitly, or null when PostgreSQL would not. */
  private coercion(from: Ty, to: number): Volatility | null {
    if (typeof from !== 'number') return 'i';
    const source = this.base(from);
    if (source === to) return 'i';
    const target = this.types.get(to);
    const type = this.types.get(source);
    if (!target || !type) return null;
    if (target.kind === 'p') {
      if (ANY_ELEMENT.has(target.name)) return 'i';
      if (ANY_ARRAY.has(target.name)) return type.category === 'A' ? 'i' : null;
      if (target.name in ANY_KIND) return type.kind === ANY_KIND[target.name] ? 'i' : null;
      if (target.name === 'record') return type.kind === 'c' || type.name === 'record' ? 'i' : null;
      return null;
    }
    const cast = this.casts.get(`${source}>${to}`);
    return cast && cast.context === 'i' ? this.castVolatility(cast) : null;
  }

  private castVolatility(cast: CastRow): Volatility {
    if (cast.method === 'f') return cast.volatility;
    if (cast.method === 'i') return maxVolatility(this.types.get(cast.source)?.output ?? 'v', this.types.get(cast.target)?.input ?? 'v');
    return 'i';
  }

  /**
   * The volatility of an explicit cast. An UNKNOWN source is a literal or parameter typed by the
   * cast itself (no function runs); a source the guard cannot type counts every cast into `to`.
   */
  cast(from: Ty, to: number): Volatility {
    if (from === UNKNOWN) return 'i';
    const target = this.types.get(to);
    if (from === null) return maxVolatility(target?.input ?? 'i', ...(this.castsInto.get(to) ?? []).map((c) => this.castVolatility(c)));
    const source = this.base(from);
    if (source === to || !target) return 'i';
    const cast = this.casts.get(`${source}>${to}`);
    if (cast) return this.castVolatility(cast);
    const type = this.types.get(source);
    if (type?.category === 'A' && target.category === 'A') return this.cast(type.elem, target.elem);
    // Without a pg_cast row, casts to or from a string type go through the types' text I/O.
    if (target.category === 'S') return type?.output ?? 'v';
    if (type?.category === 'S') return target.input;
    return 'i';
  }

  /** An operator (`left` undefined for a prefix operator) as PostgreSQL would resolve it, conservatively. */
  operator(name: string, left: Ty | undefined, right: Ty): Resolved {
    const rows = (this.operators.get(name) ?? []).filter((o) => (left === undefined ? o.kind === 'l' : o.kind === 'b'));
    const candidates = rows.map((o) => ({ args: left === undefined ? [o.right] : [o.left, o.right], volatility: o.volatility, ret: o.result }));
    const args = left === undefined ? [right] : [left, right];
    // PostgreSQL: an unknown operand is first assumed to have the other operand's type.
    const exactArgs = args.map((a, i) => (a === UNKNOWN && args.length === 2 ? args[1 - i]! : a));
    return this.resolve(candidates, args, exactArgs);
  }

  /** A function called with these argument types (`names[i]` set for named notation). */
  func(name: string, args: Ty[], names: Array<string | null>): Resolved {
    const candidates: Candidate[] = [];
    for (const p of this.procs.get(name) ?? []) {
      const declared = this.declared(p, args.length, names);
      if (declared) candidates.push({ args: declared, volatility: p.volatility, ret: p.ret });
    }
    if (candidates.length === 0 && this.procs.has(name)) {
      // Wrong arity for every overload: the guard mis-read the call; count them all.
      for (const p of this.procs.get(name)!) candidates.push({ args: [], volatility: p.volatility, ret: p.ret });
      return this.resolve(candidates, [], []);
    }
    return this.resolve(candidates, args, args);
  }

  /** The declared type of each argument of a call with `n` arguments, or null when `p` cannot take it. */
  private declared(p: ProcRow, n: number, names: Array<string | null>): number[] | null {
    const variadic = p.variadic !== 0;
    const fixed = variadic ? p.nargs - 1 : p.nargs;
    if (n < p.nargs - p.ndefaults - (variadic ? 1 : 0) || (!variadic && n > p.nargs)) return null;
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const name = names[i];
      if (name) {
        const at = p.argnames?.indexOf(name) ?? -1;
        if (at < 0 || at >= p.args.length) return null;
        out.push(p.args[at]!);
      } else out.push(i < fixed ? p.args[i]! : p.variadic);
    }
    return out;
  }

  /**
   * One candidate matching the known types exactly is what PostgreSQL picks. Otherwise every
   * candidate the known types coerce to counts (PostgreSQL picks one of them; the guard cannot be
   * sure which): the result is as volatile as the most volatile of them.
   */
  private resolve(candidates: Candidate[], args: Ty[], exactArgs: Ty[]): Resolved {
    if (candidates.length === 0) return { volatility: 'v', type: null, known: false, exact: false };
    const exact = candidates.filter((c) => c.args.length === exactArgs.length && c.args.every((t, i) => exactArgs[i] === t));
    if (exact.length === 1) return { volatility: exact[0]!.volatility, type: this.result(exact[0]!, exactArgs), known: true, exact: true };
    const fits: Array<{ c: Candidate; volatility: Volatility }> = [];
    for (const c of candidates) {
      const coercions = args.map((a, i) => (c.args[i] === undefined ? 'i' : this.coercion(a, c.args[i]!)));
      if (coercions.every((v) => v !== null)) fits.push({ c, volatility: maxVolatility(c.volatility, ...(coercions as Volatility[])) });
    }
    const pool = fits.length > 0 ? fits : candidates.map((c) => ({ c, volatility: c.volatility }));
    const types = new Set(pool.map((f) => this.result(f.c, args)));
    const volatility = maxVolatility(...pool.map((f) => f.volatility));
    return { volatility, type: types.size === 1 ? [...types][0]! : null, known: true, exact: pool.every((f) => f.volatility === volatility) };
  }

  /** The result type, with polymorphic results (anyelement, anyarray) taken from the arguments. */
  private result(c: Candidate, args: Ty[]): Ty {
    const ret = this.types.get(c.ret);
    if (!ret || ret.kind !== 'p') return c.ret;
    for (let i = 0; i < c.args.length; i++) {
      const declared = this.types.get(c.args[i]!)?.name ?? '';
      const arg = args[i];
      if (typeof arg !== 'number') continue;
      if (ANY_ELEMENT.has(ret.name) && ANY_ELEMENT.has(declared)) return arg;
      if (ANY_ELEMENT.has(ret.name) && ANY_ARRAY.has(declared)) return this.elementOf(arg);
      if (ANY_ARRAY.has(ret.name) && ANY_ARRAY.has(declared)) return arg;
      if (ANY_ARRAY.has(ret.name) && ANY_ELEMENT.has(declared)) return this.arrayOf(arg);
    }
    return null;
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
