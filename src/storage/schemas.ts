/** Per-namespace JSON Schema (draft 2020-12) registry and the compiled-validator cache. */
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import type { RegExpEngine } from 'ajv/dist/types/index.js';
import addFormatsModule from 'ajv-formats';
import { sql } from 'kysely';
import { RE2JS } from 're2js';
import type { Db } from '../db/database.js';
import { LimitExceededError, ValidationFailedError, type ValidationIssue } from './errors.js';
import { fitsInt4, jsonBytes, MAX_JSON_DEPTH } from './limits.js';
import { appendAuditEvent } from './audit.js';

type AddFormats = (ajv: Ajv2020) => Ajv2020;
const addFormats: AddFormats =
  (addFormatsModule as unknown as { default?: AddFormats }).default ?? (addFormatsModule as unknown as AddFormats);

export const MAX_SCHEMA_BYTES = 65536;

export interface NamespaceSchema {
  version: number;
  schema: unknown;
  createdAt: Date;
}

/** Scope of a schema: tenant, install and namespace. */
export interface SchemaScope {
  tenantId: string;
  installId: string;
  namespace: string;
}

// ---------------------------------------------------------------------------------------------
// Regular expressions: admin-supplied, so they run on a linear-time engine (RE2 semantics).
//
// Engine: `re2js`, the pure-JavaScript port of RE2 (via Go's regexp), MIT, no dependencies, no
// install script. Chosen over the two RE2 packages the issue names, after trying both here:
//   - `re2` (native) runs `install-from-cache`, which first downloads a prebuilt binary from
//     GitHub at install time (refused here, as in CI: only the npm registry is reachable), then
//     falls back to compiling RE2 and Abseil with node-gyp: 3+ minutes of every clean `npm ci`,
//     a C++ toolchain on every machine, and 1.27.x declares node >=22 while we run node 20.
//   - `re2-wasm` 1.0.2 (last release 2021) installs cleanly, but its WebAssembly heap is a fixed
//     16 MiB with no growth and its wrappers are never freed (embind objects need an explicit
//     delete()): five schemas with a DFA-heavy pattern and 64 KiB values abort the module
//     ("Cannot enlarge memory arrays"), after which every pattern of every tenant throws until
//     the process restarts; and `^(a|b)*a(a|b){14}$` on a 64 KiB value takes 2.5 s there.
// re2js holds its state on the JS heap (garbage collected), installs from the registry alone,
// and matched the same inputs in 0.5–7 ms. Its program is inspectable, so each pattern's cost is
// bounded before a schema is accepted (MAX_PATTERN_PROGRAM and the cost analysis below).
// Matching is linear but O(instructions × characters): the costliest accepted pattern (a
// DFA-hostile one at MAX_PATTERN_PROGRAM) takes about 0.5–0.6 s on a 64 KiB value here; the
// issue's `^(a+)+$` takes under 1 ms.
// Known difference: `\B` next to an astral character (V8 also matches between the two UTF-16
// halves of a surrogate pair; RE2 works on code points).
//
// JSON Schema patterns are ECMA-262 (`u` mode). translatePattern() rewrites one into RE2 syntax
// with the same meaning for everything RE2 can express (\s, `.`, \uXXXX, \p{...}, classes), and
// refuses what it cannot (backreferences, lookaround): the schema is ValidationFailed at
// setNamespaceSchema time, naming the pattern.
// ---------------------------------------------------------------------------------------------

/** Longest pattern source (UTF-16 units); longer ones are refused before any parsing. */
export const MAX_PATTERN_LENGTH = 1024;
/** Most RE2 instructions one compiled pattern may have (matching is O(instructions × input)). */
export const MAX_PATTERN_PROGRAM = 512;

class PatternRefused extends Error {}

// ECMAScript's \s: WhiteSpace and LineTerminator code points.
const JS_SPACE = '\\x{9}-\\x{D}\\x{20}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}\\x{FEFF}';
// Its complement, for \S inside a class (RE2 has no class subtraction).
const JS_NOT_SPACE =
  '\\x{0}-\\x{8}\\x{E}-\\x{1F}\\x{21}-\\x{9F}\\x{A1}-\\x{167F}\\x{1681}-\\x{1FFF}\\x{200B}-\\x{2027}\\x{202A}-\\x{202E}' +
  '\\x{2030}-\\x{205E}\\x{2060}-\\x{2FFF}\\x{3001}-\\x{FEFE}\\x{FF00}-\\x{10FFFF}';
const ALL_CODE_POINTS = '\\x{0}-\\x{10FFFF}';

// General_Category values: ECMAScript accepts long names too; RE2 knows the short ones.
const GENERAL_CATEGORY: Record<string, string> = {
  Letter: 'L', Cased_Letter: 'LC', Uppercase_Letter: 'Lu', Lowercase_Letter: 'Ll', Titlecase_Letter: 'Lt',
  Modifier_Letter: 'Lm', Other_Letter: 'Lo', Mark: 'M', Combining_Mark: 'M', Nonspacing_Mark: 'Mn',
  Spacing_Mark: 'Mc', Enclosing_Mark: 'Me', Number: 'N', Decimal_Number: 'Nd', digit: 'Nd', Letter_Number: 'Nl',
  Other_Number: 'No', Punctuation: 'P', punct: 'P', Connector_Punctuation: 'Pc', Dash_Punctuation: 'Pd',
  Open_Punctuation: 'Ps', Close_Punctuation: 'Pe', Initial_Punctuation: 'Pi', Final_Punctuation: 'Pf',
  Other_Punctuation: 'Po', Symbol: 'S', Math_Symbol: 'Sm', Currency_Symbol: 'Sc', Modifier_Symbol: 'Sk',
  Other_Symbol: 'So', Separator: 'Z', Space_Separator: 'Zs', Line_Separator: 'Zl', Paragraph_Separator: 'Zp',
  Other: 'C', Control: 'Cc', cntrl: 'Cc', Format: 'Cf', Surrogate: 'Cs', Private_Use: 'Co', Unassigned: 'Cn',
};
const SHORT_CATEGORIES = new Set(Object.values(GENERAL_CATEGORY));

const hex = (cp: number) => `\\x{${cp.toString(16).toUpperCase()}}`;
const isHex = (s: string) => /^[0-9A-Fa-f]+$/.test(s);

/** One `\p{...}` / `\P{...}` (body between the braces) in RE2 syntax. */
function translateProperty(body: string, negated: boolean, inClass: boolean): string {
  let name: string | undefined;
  const eq = body.indexOf('=');
  if (eq >= 0) {
    const key = body.slice(0, eq);
    const value = body.slice(eq + 1);
    if (key === 'General_Category' || key === 'gc') name = GENERAL_CATEGORY[value] ?? value;
    else if (key === 'Script' || key === 'sc') name = value;
    else throw new PatternRefused(`the Unicode property \\p{${body}} is not supported (only General_Category and Script are)`);
  } else if (SHORT_CATEGORIES.has(body) || GENERAL_CATEGORY[body] !== undefined) {
    name = GENERAL_CATEGORY[body] ?? body;
  } else if (body === 'Any' || body === 'ASCII') {
    const range = body === 'Any' ? ALL_CODE_POINTS : '\\x{0}-\\x{7F}';
    if (!inClass) return negated ? `[^${range}]` : `[${range}]`;
    if (!negated) return range;
    if (body === 'ASCII') return '\\x{80}-\\x{10FFFF}';
    throw new PatternRefused('\\P{Any} inside a character class is not supported');
  } else {
    throw new PatternRefused(`the Unicode property \\p{${body}} is not supported (only General_Category, Script, Any and ASCII are)`);
  }
  if (!/^[A-Za-z_]+$/.test(name)) throw new PatternRefused(`the Unicode property \\p{${body}} is not supported`);
  return `\\${negated ? 'P' : 'p'}{${name}}`;
}

/** The escape starting at src[i] (a backslash): its RE2 text and its length in src. */
function translateEscape(src: string, i: number, inClass: boolean): [string, number] {
  const c = src[i + 1]!;
  switch (c) {
    case 'd': case 'D': case 'w': case 'W':
      return [`\\${c}`, 2];
    case 's':
      return [inClass ? JS_SPACE : `[${JS_SPACE}]`, 2];
    case 'S':
      return [inClass ? JS_NOT_SPACE : `[^${JS_SPACE}]`, 2];
    case 'b':
      return [inClass ? hex(8) : '\\b', 2];
    case 'B':
      return ['\\B', 2];
    case 't': return [hex(9), 2];
    case 'n': return [hex(10), 2];
    case 'v': return [hex(11), 2];
    case 'f': return [hex(12), 2];
    case 'r': return [hex(13), 2];
    case '0': return [hex(0), 2];
    case 'c': return [hex(src.charCodeAt(i + 2) % 32), 3];
    case 'x': return [hex(parseInt(src.slice(i + 2, i + 4), 16)), 4];
    case 'u': {
      if (src[i + 2] === '{') {
        const end = src.indexOf('}', i + 3);
        return [hex(parseInt(src.slice(i + 3, end), 16)), end + 1 - i];
      }
      const unit = parseInt(src.slice(i + 2, i + 6), 16);
      // A surrogate pair written as two escapes is one code point in `u` mode.
      if (unit >= 0xd800 && unit <= 0xdbff && src[i + 6] === '\\' && src[i + 7] === 'u' && isHex(src.slice(i + 8, i + 12))) {
        const low = parseInt(src.slice(i + 8, i + 12), 16);
        if (low >= 0xdc00 && low <= 0xdfff) return [hex(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)), 12];
      }
      return [hex(unit), 6];
    }
    case 'p': case 'P': {
      const end = src.indexOf('}', i + 3);
      return [translateProperty(src.slice(i + 3, end), c === 'P', inClass), end + 1 - i];
    }
    case 'k':
      throw new PatternRefused('backreferences (\\k<name>) need a backtracking engine and are not supported');
    default:
      if (c >= '1' && c <= '9') throw new PatternRefused(`backreferences (\\${c}) need a backtracking engine and are not supported`);
      // An escaped syntax character (or `/`, or `-` in a class): the character itself.
      return [hex(src.codePointAt(i + 1)!), 2];
  }
}

/**
 * An ECMAScript `u`-mode pattern, already known to be valid (new RegExp(src, 'u') parsed it),
 * in RE2 syntax with the same meaning; throws PatternRefused for what RE2 cannot express.
 */
export function translatePattern(src: string): string {
  let out = '';
  let inClass = false;
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === '\\') {
      const [text, length] = translateEscape(src, i, inClass);
      out += text;
      i += length;
      continue;
    }
    if (inClass) {
      if (c === ']') {
        out += ']';
        inClass = false;
        i++;
      } else if (c === '-') {
        out += '-';
        i++;
      } else {
        const cp = src.codePointAt(i)!;
        out += /[A-Za-z0-9_]/.test(c) ? c : hex(cp);
        i += cp > 0xffff ? 2 : 1;
      }
      continue;
    }
    switch (c) {
      case '[':
        if (src.startsWith('[^]', i)) {
          out += `[${ALL_CODE_POINTS}]`;
          i += 3;
        } else if (src.startsWith('[]', i)) {
          out += `[^${ALL_CODE_POINTS}]`;
          i += 2;
        } else {
          const negated = src[i + 1] === '^';
          out += negated ? '[^' : '[';
          i += negated ? 2 : 1;
          inClass = true;
        }
        continue;
      case '(':
        if (src.startsWith('(?:', i)) {
          out += '(?:';
          i += 3;
        } else if (src.startsWith('(?=', i) || src.startsWith('(?!', i) || src.startsWith('(?<=', i) || src.startsWith('(?<!', i)) {
          throw new PatternRefused('lookahead and lookbehind assertions need a backtracking engine and are not supported');
        } else if (src.startsWith('(?<', i)) {
          // A named group: only whether the pattern matches is used, so the name does not matter.
          out += '(?:';
          i = src.indexOf('>', i) + 1;
        } else if (src[i + 1] === '?') {
          throw new PatternRefused('this group syntax is not supported');
        } else {
          out += '(';
          i++;
        }
        continue;
      case '.':
        out += '[^\\x{A}\\x{D}\\x{2028}\\x{2029}]';
        i++;
        continue;
      case '{': {
        // In `u` mode a brace is always a quantifier ({n}, {n,}, {n,m}).
        const end = src.indexOf('}', i);
        out += src.slice(i, end + 1);
        i = end + 1;
        continue;
      }
      case ')': case '|': case '^': case '$': case '*': case '+': case '?':
        out += c;
        i++;
        continue;
      default: {
        const cp = src.codePointAt(i)!;
        out += /[A-Za-z0-9_]/.test(c) ? c : hex(cp);
        i += cp > 0xffff ? 2 : 1;
      }
    }
  }
  return out;
}

interface LinearRegex {
  re: RE2JS;
  /** RE2 instructions: the cost of matching one input character, at worst. */
  size: number;
  /** re2js's lazy DFA of this pattern: its state cache is the pattern's only growing memory. */
  dfa: { maxMem: number; stateBudget: number; memBudget: number; clearCache(): void };
}

// Memory: each pattern's DFA caches states up to a budget (re2js's default, 8 MiB, measured at
// ~7 MiB of heap per pattern after one adversarial 64 KiB value). Patterns live as long as the
// validators holding them (up to a thousand cached validators, each with many patterns), so the
// budget per pattern is lowered, and only the ACTIVE_DFAS most recently used patterns keep
// their states: at most ACTIVE_DFAS × DFA_BUDGET (64 MiB) for the whole process.
const DFA_BUDGET = 256 * 1024;
const ACTIVE_DFAS = 256;
const activeDfas = new Set<LinearRegex>();

function testLinear(regex: LinearRegex, s: string): boolean {
  activeDfas.delete(regex);
  activeDfas.add(regex);
  if (activeDfas.size > ACTIVE_DFAS) {
    const oldest = activeDfas.values().next().value as LinearRegex;
    activeDfas.delete(oldest);
    oldest.dfa.clearCache();
  }
  return regex.re.test(s);
}

const regexCache = new Map<string, LinearRegex | PatternRefused>();
const REGEX_CACHE_SIZE = 4096;

/** The compiled linear-time form of an ECMAScript pattern (cached); throws PatternRefused. */
export function linearRegex(source: string): LinearRegex {
  const hit = regexCache.get(source);
  if (hit !== undefined) {
    regexCache.delete(source);
    regexCache.set(source, hit);
    if (hit instanceof PatternRefused) throw hit;
    return hit;
  }
  let result: LinearRegex | PatternRefused;
  try {
    result = compileLinear(source);
  } catch (error) {
    if (!(error instanceof PatternRefused)) throw error;
    result = error;
  }
  regexCache.set(source, result);
  while (regexCache.size > REGEX_CACHE_SIZE) regexCache.delete(regexCache.keys().next().value as string);
  if (result instanceof PatternRefused) throw result;
  return result;
}

function compileLinear(source: string): LinearRegex {
  if (typeof source !== 'string') throw new PatternRefused('a pattern must be a string');
  if (source.length > MAX_PATTERN_LENGTH) {
    throw new PatternRefused(`the pattern is ${source.length} characters long; the limit is ${MAX_PATTERN_LENGTH}`);
  }
  try {
    // Parsing only (nothing is matched, so nothing backtracks): the ECMAScript syntax check.
    new RegExp(source, 'u');
  } catch (error) {
    throw new PatternRefused(`not a valid ECMAScript regular expression: ${(error as Error).message.slice(0, 200)}`);
  }
  const translated = translatePattern(source);
  let re: RE2JS;
  try {
    re = RE2JS.compile(translated);
  } catch (error) {
    throw new PatternRefused(`not supported by the linear-time engine: ${(error as Error).message.slice(0, 200)}`);
  }
  // re2js internals (the version is pinned; a change of shape fails here, loudly, in every test).
  const internals = (re as unknown as { re2Input: { numberOfInstructions(): number; dfa: LinearRegex['dfa'] } }).re2Input;
  const size = internals.numberOfInstructions();
  if (size > MAX_PATTERN_PROGRAM) {
    throw new PatternRefused(`the pattern compiles to ${size} instructions; the limit is ${MAX_PATTERN_PROGRAM} (large counted repetitions cost per input character)`);
  }
  const dfa = internals.dfa;
  if (typeof dfa?.clearCache !== 'function' || typeof dfa.memBudget !== 'number' || typeof dfa.stateBudget !== 'number') {
    throw new Error('re2js: unexpected DFA internals; re-check the memory bound in schemas.ts');
  }
  dfa.maxMem = DFA_BUDGET;
  dfa.stateBudget = DFA_BUDGET;
  dfa.memBudget = DFA_BUDGET;
  return { re, size, dfa };
}

/** ajv's `code.regExp`: every `pattern` and `patternProperties` key runs on the linear engine. */
const linearRegExpEngine: RegExpEngine = Object.assign(
  (pattern: string, flags: string) => {
    if (flags !== 'u' && flags !== '') throw new Error(`unsupported regular expression flags "${flags}"`);
    let compiled: LinearRegex;
    try {
      compiled = linearRegex(pattern);
    } catch (error) {
      throw new Error(`pattern ${JSON.stringify(pattern.slice(0, 100))}: ${(error as Error).message}`);
    }
    return { test: (s: string) => testLinear(compiled, s), toString: () => `/${pattern}/${flags}` };
  },
  { code: 'linearRegExp' },
);

// ---------------------------------------------------------------------------------------------
// Formats. ajv-formats 3.0.1 checks values with JavaScript regular expressions. Each format was
// fuzzed here with pumped 64 KiB strings (prefix + repeated piece + failing suffix): all are
// linear except `url`, whose `\S+(?::\S*)?@` backtracks quadratically (6 s on 64 KiB). `url`
// therefore only runs its regex on strings of at most MAX_URL_LENGTH characters (longer ones
// are not a `url`; 2,083 is the longest URL browsers have accepted), which bounds it to ~5 ms.
// `regex` only parses its value with `new RegExp(value)` (no matching, so no backtracking;
// 64 KiB of the costliest syntax measured under 25 ms) and is judged safe: the value is never
// used to match anything.
// ---------------------------------------------------------------------------------------------
export const MAX_URL_LENGTH = 2083;

function addSafeFormats(ajv: Ajv2020): void {
  addFormats(ajv);
  const url = (ajv.formats as Record<string, unknown>).url;
  if (!(url instanceof RegExp)) throw new Error('ajv-formats: the url format is no longer a RegExp; re-check it');
  ajv.addFormat('url', (s: string) => s.length <= MAX_URL_LENGTH && url.test(s));
}

// ---------------------------------------------------------------------------------------------
// uniqueItems: ajv compares every pair of items (O(n²) deep-equal unless `items` declares a
// scalar type): 1–2.4 s for a 64 KiB array. Replaced by one pass over canonical JSON texts,
// with ajv's message and params (the last duplicate pair, as ajv reports it).
// ---------------------------------------------------------------------------------------------
function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}

function addLinearUniqueItems(ajv: Ajv2020): void {
  ajv.removeKeyword('uniqueItems');
  const validate = (schema: boolean, data: unknown[]): boolean => {
    if (!schema) return true;
    const seen = new Map<string, number>();
    let found: { i: number; j: number } | null = null;
    for (let i = 0; i < data.length; i++) {
      const key = canonicalJson(data[i]);
      const j = seen.get(key);
      if (j !== undefined) found = { i, j };
      seen.set(key, i);
    }
    if (!found) return true;
    (validate as unknown as { errors: Partial<ErrorObject>[] }).errors = [
      { keyword: 'uniqueItems', params: found, message: `must NOT have duplicate items (items ## ${found.j} and ${found.i} are identical)` },
    ];
    return false;
  };
  ajv.addKeyword({ keyword: 'uniqueItems', type: 'array', schemaType: 'boolean', errors: true, validate });
}

function newAjv(allErrors: boolean): Ajv2020 {
  // strict: unknown keywords make the schema invalid; no loadSchema: a remote $ref is never fetched.
  const ajv = new Ajv2020({
    strict: true,
    strictRequired: false,
    strictTypes: false,
    strictTuples: false,
    allowUnionTypes: true,
    // Values are validated to the first error: with allErrors a 64 KiB value can make millions
    // of error objects (measured: 512 failing keywords × 32,000 items exhausted a 4 GiB heap).
    // The schema document itself is checked with all its errors (it is at most 64 KiB).
    allErrors,
    validateFormats: true,
    // ajv's strict check that no `properties` name matches a `patternProperties` pattern runs
    // that pattern with JavaScript's RegExp at compile time; both keywords simply apply.
    allowMatchingProperties: true,
    // No optimisation passes: with allErrors false ajv nests one block per keyword, and its
    // optimiser is superlinear in that nesting (1,000 entries: 450 ms with it, 120 ms without);
    // validation speed is the same within noise.
    code: { regExp: linearRegExpEngine, optimize: false },
  });
  addSafeFormats(ajv);
  addLinearUniqueItems(ajv);
  return ajv;
}

/** Checks schema documents against the 2020-12 meta-schema; compiled once, holds no user schema. */
let metaAjv: Ajv2020 | undefined;

function issueFromAjv(e: ErrorObject): ValidationIssue {
  let path = e.instancePath;
  const params = e.params as Record<string, unknown>;
  if (e.keyword === 'required' && typeof params.missingProperty === 'string') path += `/${escapePointer(params.missingProperty)}`;
  if (e.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
    path += `/${escapePointer(params.additionalProperty)}`;
  }
  return { path, message: e.message ?? e.keyword, keyword: e.keyword };
}

function escapePointer(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

// ---------------------------------------------------------------------------------------------
// Cost analysis. A schema's validation work is bounded before it is accepted, so that no value
// (at most 64 KiB of JSON: at most VALUE_NODES nodes and VALUE_CHARS characters) can make it
// run long, and its compilation stays small:
//   - per instance node at depth j, an upper bound G_j of the keyword evaluations applied to it
//     (in-place applicators allOf/anyOf/oneOf/not/if/then/else/$ref/$dynamicRef/dependentSchemas
//     add up with multiplicity, so `allOf: [$ref a, $ref a]` nested 30 deep is 2^30, refused;
//     child applicators take the costliest `properties`/`prefixItems` entry plus every schema
//     that applies to all children); R_j likewise bounds the regular-expression instructions
//     (and format checks) per character of that node. Work ≤ G_0 + VALUE_NODES × max G_j and
//     VALUE_CHARS × max R_j.
//   - a schema that applies itself to the same value without descending (`{"$ref": "#"}`) is
//     infinite recursion: refused.
//   - compile work: the total of keyword entries over the document.
// Measured worst cases at these limits are in test/guards/schema-regex.test.ts.
// ---------------------------------------------------------------------------------------------
const VALUE_NODES = 32_768;
const VALUE_CHARS = 65_536;
/** Keyword evaluations a single value may cost at worst. */
export const MAX_SCHEMA_WORK = 4_194_304;
/** Regular-expression instructions × characters a single value may cost at worst. */
export const MAX_SCHEMA_REGEX_WORK = 33_554_432;
/** Keyword entries (keywords, properties, enum values, ...) in one schema document: compile work. */
export const MAX_SCHEMA_KEYWORDS = 1000;
/** Per character cost charged for a `format` check (ajv-formats' regular expressions are linear). */
const FORMAT_COST = 16;

const IN_PLACE_ARRAYS = ['allOf', 'anyOf', 'oneOf'];
const IN_PLACE_SINGLE = ['not', 'if', 'then', 'else'];
const SUB_SINGLE = [
  'not', 'if', 'then', 'else', 'additionalProperties', 'unevaluatedProperties', 'propertyNames', 'contains',
  'unevaluatedItems', 'additionalItems', 'contentSchema',
];
const SUB_ARRAYS = ['allOf', 'anyOf', 'oneOf', 'prefixItems'];
const SUB_MAPS = ['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas'];
const MAP_KEYWORDS = new Set([...SUB_MAPS, 'dependencies', 'dependentRequired']);

interface CostNode {
  units: number;
  perChar: number;
  inPlace: CostNode[];
  objMax: CostNode[];
  objSum: CostNode[];
  objUnits: number;
  objPerChar: number;
  arrMax: CostNode[];
  arrSum: CostNode[];
  arrUnits: number;
  hasObj: boolean;
  hasArr: boolean;
}

const DEFAULT_BASE = 'https://schema.invalid/root.json';

class SchemaAnalysis {
  readonly issues: ValidationIssue[] = [];
  private readonly nodes = new Map<object, CostNode>();
  private readonly resources = new Map<string, unknown>();
  private readonly anchors = new Map<string, unknown>();
  private readonly dynamicAnchors = new Map<string, unknown[]>();
  private readonly bases = new Map<object, string>();
  private readonly paths = new Map<object, string>();
  private keywords = 0;

  constructor(private readonly root: unknown) {}

  run(): void {
    this.index(this.root, DEFAULT_BASE, '');
    if (this.issues.length > 0) return;
    if (this.keywords > MAX_SCHEMA_KEYWORDS) {
      this.refuse('', `the schema has ${this.keywords} keyword entries; the limit is ${MAX_SCHEMA_KEYWORDS}`, 'schemaCost');
      return;
    }
    const rootNode = this.node(this.root);
    if (this.issues.length > 0) return;
    this.bound(rootNode);
  }

  private refuse(path: string, message: string, keyword: string): void {
    if (this.issues.length < 20) this.issues.push({ path, message, keyword });
  }

  /** Walks every schema position under `schema`: resources, anchors, patterns, keyword count. */
  private index(schema: unknown, base: string, path: string): void {
    const stack: Array<[unknown, string, string]> = [[schema, base, path]];
    while (stack.length > 0) {
      const [s, b, p] = stack.pop()!;
      if (typeof s !== 'object' || s === null || Array.isArray(s) || this.bases.has(s)) continue;
      const o = s as Record<string, unknown>;
      let here = b;
      if (typeof o.$id === 'string') {
        try {
          here = new URL(o.$id, b).href.replace(/#$/, '');
        } catch {
          this.refuse(`${p}/$id`, 'not a valid URI reference', '$id');
          continue;
        }
        this.resources.set(here, s);
      }
      if (p === '' && !this.resources.has(here)) this.resources.set(here, s);
      this.bases.set(s, here);
      this.paths.set(s, p);
      if (typeof o.$anchor === 'string') this.anchors.set(`${here}#${o.$anchor}`, s);
      if (typeof o.$dynamicAnchor === 'string') {
        this.anchors.set(`${here}#${o.$dynamicAnchor}`, s);
        const list = this.dynamicAnchors.get(o.$dynamicAnchor) ?? [];
        list.push(s);
        this.dynamicAnchors.set(o.$dynamicAnchor, list);
      }
      for (const [k, v] of Object.entries(o)) {
        // Each keyword, each entry of a keyword's array or map: each is generated code, and with
        // allErrors false one level of nesting in it (V8's parser overflows near 1,500 levels).
        this.keywords += 1;
        if (Array.isArray(v) && k !== 'examples') this.keywords += v.length;
        else if (MAP_KEYWORDS.has(k) && typeof v === 'object' && v !== null) {
          for (const entry of Object.values(v)) this.keywords += 1 + (Array.isArray(entry) ? entry.length : 0);
        }
        if (k === 'pattern' && typeof v === 'string') this.checkPattern(v, `${p}/pattern`);
      }
      for (const k of SUB_SINGLE) if (k in o) stack.push([o[k], here, `${p}/${k}`]);
      if ('items' in o) {
        if (Array.isArray(o.items)) o.items.forEach((v, i) => stack.push([v, here, `${p}/items/${i}`]));
        else stack.push([o.items, here, `${p}/items`]);
      }
      for (const k of SUB_ARRAYS) {
        const v = o[k];
        if (Array.isArray(v)) v.forEach((item, i) => stack.push([item, here, `${p}/${k}/${i}`]));
      }
      for (const k of [...SUB_MAPS, 'dependencies']) {
        const v = o[k];
        if (typeof v !== 'object' || v === null || Array.isArray(v)) continue;
        for (const [name, sub] of Object.entries(v)) {
          if (k === 'patternProperties') this.checkPattern(name, `${p}/patternProperties/${escapePointer(name)}`);
          stack.push([sub, here, `${p}/${k}/${escapePointer(name)}`]);
        }
      }
    }
  }

  private checkPattern(source: string, path: string): void {
    try {
      linearRegex(source);
    } catch (error) {
      if (!(error instanceof PatternRefused)) throw error;
      this.refuse(path, `pattern ${JSON.stringify(source.slice(0, 100))}: ${error.message}`, 'pattern');
    }
  }

  private regexSize(source: unknown): number {
    try {
      return typeof source === 'string' ? linearRegex(source).size : 0;
    } catch {
      return 0; // already reported by index()
    }
  }

  /** The schema a `$ref`/`$dynamicRef` names, or undefined (ajv refuses such a schema too). */
  private resolve(ref: string, base: string): unknown {
    let url: URL;
    try {
      url = new URL(ref, base);
    } catch {
      return undefined;
    }
    const fragment = decodeURIComponent(url.hash.slice(1));
    url.hash = '';
    const resourceUri = url.href;
    const resource = this.resources.get(resourceUri);
    if (resource === undefined) return undefined;
    if (fragment === '') return resource;
    if (!fragment.startsWith('/')) return this.anchors.get(`${resourceUri}#${fragment}`);
    let target: unknown = resource;
    for (const raw of fragment.slice(1).split('/')) {
      const token = raw.replace(/~1/g, '/').replace(/~0/g, '~');
      if (typeof target !== 'object' || target === null || !Object.hasOwn(target, token)) return undefined;
      target = (target as Record<string, unknown>)[token];
    }
    return target;
  }

  private leaf(): CostNode {
    return {
      units: 1, perChar: 0, inPlace: [], objMax: [], objSum: [], objUnits: 0, objPerChar: 0,
      arrMax: [], arrSum: [], arrUnits: 0, hasObj: false, hasArr: false,
    };
  }

  /** The cost node of a schema, built once per schema object (iteratively: no deep recursion). */
  private node(schema: unknown): CostNode {
    if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return this.leaf();
    const existing = this.nodes.get(schema);
    if (existing) return existing;
    const pending: object[] = [];
    const get = (s: unknown): CostNode => {
      if (typeof s !== 'object' || s === null || Array.isArray(s)) return this.leaf();
      let n = this.nodes.get(s);
      if (!n) {
        n = this.leaf();
        this.nodes.set(s, n);
        pending.push(s);
      }
      return n;
    };
    const first = get(schema);
    while (pending.length > 0) {
      const s = pending.pop()!;
      if (!this.bases.has(s)) {
        // Reached only through a $ref into a non-schema location (ajv compiles it as a schema).
        this.index(s, DEFAULT_BASE, '');
        if (this.keywords > MAX_SCHEMA_KEYWORDS) {
          this.refuse('', `the schema has more than ${MAX_SCHEMA_KEYWORDS} keyword entries`, 'schemaCost');
          return first;
        }
      }
      this.fill(s as Record<string, unknown>, this.nodes.get(s)!, get);
      if (this.issues.length > 0) return first;
    }
    return first;
  }

  private fill(o: Record<string, unknown>, n: CostNode, get: (s: unknown) => CostNode): void {
    const base = this.bases.get(o) ?? DEFAULT_BASE;
    const path = this.paths.get(o) ?? '';
    n.units = 0;
    for (const [k, v] of Object.entries(o)) {
      n.units += 1;
      switch (k) {
        case 'properties':
          n.hasObj = true;
          for (const sub of Object.values(v as object)) n.objMax.push(get(sub));
          n.units += Object.keys(v as object).length;
          break;
        case 'patternProperties':
          n.hasObj = true;
          for (const [pattern, sub] of Object.entries(v as object)) {
            n.objSum.push(get(sub));
            n.objUnits += 1;
            n.objPerChar += this.regexSize(pattern);
          }
          break;
        case 'additionalProperties':
        case 'unevaluatedProperties':
          n.hasObj = true;
          n.objSum.push(get(v));
          n.objUnits += 1;
          break;
        case 'propertyNames':
          n.hasObj = true;
          n.objSum.push(get(v));
          break;
        case 'prefixItems':
          n.hasArr = true;
          for (const sub of v as unknown[]) n.arrMax.push(get(sub));
          break;
        case 'items':
          n.hasArr = true;
          if (Array.isArray(v)) for (const sub of v) n.arrMax.push(get(sub));
          else n.arrSum.push(get(v));
          break;
        case 'additionalItems':
        case 'contains':
        case 'unevaluatedItems':
          n.hasArr = true;
          n.arrSum.push(get(v));
          break;
        case 'uniqueItems':
          n.hasArr = true;
          n.arrUnits += 1;
          n.perChar += 1;
          break;
        case 'dependentSchemas':
          for (const sub of Object.values(v as object)) n.inPlace.push(get(sub));
          n.units += Object.keys(v as object).length;
          break;
        case 'dependencies':
          for (const sub of Object.values(v as object)) {
            if (Array.isArray(sub)) n.units += sub.length;
            else n.inPlace.push(get(sub));
          }
          break;
        case 'dependentRequired':
          for (const names of Object.values(v as object)) n.units += 1 + (Array.isArray(names) ? names.length : 0);
          break;
        case 'required':
          if (Array.isArray(v)) n.units += v.length;
          break;
        case 'enum':
          if (Array.isArray(v)) {
            n.units += v.length;
            n.perChar += v.filter((e) => typeof e === 'object' && e !== null).length;
          }
          break;
        case 'const':
          if (typeof v === 'object' && v !== null) n.perChar += 1;
          break;
        case 'pattern':
          n.perChar += this.regexSize(v);
          break;
        case 'format':
          n.perChar += FORMAT_COST;
          break;
        case '$ref':
        case '$dynamicRef': {
          if (typeof v !== 'string') break;
          const target = this.resolve(v, base);
          if (target === undefined) {
            this.refuse(`${path}/${k}`, `cannot resolve ${JSON.stringify(v.slice(0, 200))} inside the schema document`, k);
            return;
          }
          n.inPlace.push(get(target));
          if (k === '$dynamicRef') {
            const name = v.includes('#') ? v.slice(v.indexOf('#') + 1) : '';
            for (const s of this.dynamicAnchors.get(name) ?? []) n.inPlace.push(get(s));
          }
          break;
        }
        default:
          if (IN_PLACE_ARRAYS.includes(k) && Array.isArray(v)) for (const sub of v) n.inPlace.push(get(sub));
          else if (IN_PLACE_SINGLE.includes(k)) n.inPlace.push(get(v));
      }
    }
  }

  /** G_j and R_j over the in-place graph, depth by depth; refuses cycles and budgets overrun. */
  private bound(root: CostNode): void {
    // Reachable nodes in post-order of in-place edges (successors first); a back edge is a cycle.
    const order: CostNode[] = [];
    const state = new Map<CostNode, 1 | 2>();
    const all: CostNode[] = [root];
    const seen = new Set<CostNode>([root]);
    for (let k = 0; k < all.length; k++) {
      const n = all[k]!;
      for (const m of [...n.inPlace, ...n.objMax, ...n.objSum, ...n.arrMax, ...n.arrSum]) {
        if (!seen.has(m)) {
          seen.add(m);
          all.push(m);
        }
      }
    }
    for (const start of all) {
      if (state.has(start)) continue;
      const stack: Array<[CostNode, number]> = [[start, 0]];
      state.set(start, 1);
      while (stack.length > 0) {
        const top = stack[stack.length - 1]!;
        const [n, i] = top;
        if (i < n.inPlace.length) {
          top[1] = i + 1;
          const m = n.inPlace[i]!;
          const st = state.get(m);
          if (st === 1) {
            this.refuse('', 'the schema applies itself to the same value without descending into it (infinite recursion)', 'schemaCost');
            return;
          }
          if (st === undefined) {
            state.set(m, 1);
            stack.push([m, 0]);
          }
        } else {
          state.set(n, 2);
          order.push(n);
          stack.pop();
        }
      }
    }
    const index = new Map<CostNode, number>(order.map((n, i) => [n, i]));
    const at = (values: Float64Array, n: CostNode) => values[index.get(n)!]!;
    const sum = (values: Float64Array, list: CostNode[]) => list.reduce((acc, m) => acc + at(values, m), 0);
    const max = (values: Float64Array, list: CostNode[]) => list.reduce((acc, m) => Math.max(acc, at(values, m)), 0);

    let g = new Float64Array(order.length);
    let r = new Float64Array(order.length);
    order.forEach((n, i) => {
      g[i] = n.units + sum(g, n.inPlace);
      r[i] = n.perChar + sum(r, n.inPlace);
    });
    const rootGDepth0 = at(g, root);
    let maxG = 0;
    let maxR = at(r, root);
    for (let depth = 1; depth <= MAX_JSON_DEPTH; depth++) {
      const g2 = new Float64Array(order.length);
      const r2 = new Float64Array(order.length);
      order.forEach((n, i) => {
        let childG = 0;
        let childR = 0;
        if (n.hasObj) {
          childG = n.objUnits + max(g, n.objMax) + sum(g, n.objSum);
          childR = n.objPerChar + max(r, n.objMax) + sum(r, n.objSum);
        }
        if (n.hasArr) {
          childG = Math.max(childG, n.arrUnits + max(g, n.arrMax) + sum(g, n.arrSum));
          childR = Math.max(childR, max(r, n.arrMax) + sum(r, n.arrSum));
        }
        g2[i] = childG + sum(g2, n.inPlace);
        r2[i] = childR + sum(r2, n.inPlace);
      });
      g = g2;
      r = r2;
      maxG = Math.max(maxG, at(g, root));
      maxR = Math.max(maxR, at(r, root));
      if (at(g, root) === 0 && at(r, root) === 0) break;
    }
    const work = rootGDepth0 + VALUE_NODES * maxG;
    const regexWork = VALUE_CHARS * maxR;
    if (!(work <= MAX_SCHEMA_WORK)) {
      this.refuse('', `validating one value could take ${formatCost(work)} keyword evaluations; the limit is ${MAX_SCHEMA_WORK}`, 'schemaCost');
    }
    if (!(regexWork <= MAX_SCHEMA_REGEX_WORK)) {
      this.refuse('', `validating one value could take ${formatCost(regexWork)} pattern steps; the limit is ${MAX_SCHEMA_REGEX_WORK}`, 'schemaCost');
    }
  }
}

function formatCost(n: number): string {
  return Number.isFinite(n) && n < 1e15 ? String(Math.round(n)) : 'unboundedly many';
}

/** Compiles a schema document; an invalid one is ValidationFailed with the reasons, an oversized one LimitExceeded `schemaBytes`. */
export function compileSchema(schema: unknown): ValidateFunction {
  if (typeof schema !== 'boolean' && (typeof schema !== 'object' || schema === null || Array.isArray(schema))) {
    throw new ValidationFailedError('a JSON Schema must be an object or a boolean', [
      { path: '', message: 'must be object or boolean', keyword: 'type' },
    ]);
  }
  const size = jsonBytes(schema);
  if (size > MAX_SCHEMA_BYTES) {
    throw new LimitExceededError('schemaBytes', `the schema document is ${size} bytes of JSON; the limit is ${MAX_SCHEMA_BYTES}`, MAX_SCHEMA_BYTES, size);
  }
  if (typeof schema === 'object' && schema !== null && '$schema' in schema) {
    const declared = (schema as Record<string, unknown>).$schema;
    if (declared !== 'https://json-schema.org/draft/2020-12/schema') {
      throw new ValidationFailedError('only draft 2020-12 schemas are accepted', [
        { path: '/$schema', message: 'must be https://json-schema.org/draft/2020-12/schema', keyword: '$schema' },
      ]);
    }
  }
  metaAjv ??= newAjv(true);
  if (!metaAjv.validateSchema(schema as object)) {
    throw new ValidationFailedError('invalid JSON Schema', (metaAjv.errors ?? []).map(issueFromAjv));
  }
  const analysis = new SchemaAnalysis(schema);
  analysis.run();
  if (analysis.issues.length > 0) {
    const costly = analysis.issues.some((i) => i.keyword === 'schemaCost');
    throw new ValidationFailedError(costly ? 'the schema is too costly to validate against' : 'invalid JSON Schema', analysis.issues);
  }
  try {
    return newAjv(false).compile(schema as object);
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0]!.slice(0, 300) : 'invalid schema';
    throw new ValidationFailedError('invalid JSON Schema', [{ path: '', message, keyword: 'schema' }]);
  }
}

/** Bounded LRU of compiled validators, keyed by tenant, install, namespace and version. */
export class ValidatorCache {
  private readonly entries = new Map<string, ValidateFunction>();
  constructor(private readonly capacity = 1000) {}

  private key(scope: SchemaScope, version: number): string {
    return `${scope.tenantId}/${scope.installId}/${scope.namespace}/${version}`;
  }

  /** The validator for a version, compiling it from the stored document once; undefined if unknown. */
  async get(db: Db, scope: SchemaScope, version: number): Promise<ValidateFunction | undefined> {
    // A version the column cannot hold (0, negative, fractional, beyond int4) is unknown without asking.
    if (!fitsInt4(version) || version < 1) return undefined;
    const k = this.key(scope, version);
    const hit = this.entries.get(k);
    if (hit) {
      this.entries.delete(k);
      this.entries.set(k, hit);
      return hit;
    }
    const row = await db
      .selectFrom('ext_storage_schemas')
      .select('schema')
      .where('tenant_id', '=', scope.tenantId)
      .where('install_id', '=', scope.installId)
      .where('namespace', '=', scope.namespace)
      .where('version', '=', version)
      .executeTakeFirst();
    if (!row) return undefined;
    const validate = compileSchema(row.schema);
    this.put(k, validate);
    return validate;
  }

  put(key: string, validate: ValidateFunction): void {
    this.entries.set(key, validate);
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  remember(scope: SchemaScope, version: number, validate: ValidateFunction): void {
    this.put(this.key(scope, version), validate);
  }

  get size(): number {
    return this.entries.size;
  }
}

/** Issues of a value against a validator, each path prefixed by `prefix` (the bulk item index). */
export function validationIssues(validate: ValidateFunction, value: unknown, prefix = ''): ValidationIssue[] {
  if (validate(value)) return [];
  return (validate.errors ?? []).map((e) => {
    const issue = issueFromAjv(e);
    return { ...issue, path: prefix + issue.path };
  });
}

async function activeSchemaVersion(db: Db, scope: SchemaScope): Promise<number | null> {
  const row = await db
    .selectFrom('ext_storage_schemas')
    .select(sql<number | null>`max(version)`.as('version'))
    .where('tenant_id', '=', scope.tenantId)
    .where('install_id', '=', scope.installId)
    .where('namespace', '=', scope.namespace)
    .executeTakeFirst();
  return row?.version ?? null;
}

export async function activeSchema(db: Db, scope: SchemaScope): Promise<NamespaceSchema | null> {
  const row = await db
    .selectFrom('ext_storage_schemas')
    .select(['version', 'schema', 'created_at'])
    .where('tenant_id', '=', scope.tenantId)
    .where('install_id', '=', scope.installId)
    .where('namespace', '=', scope.namespace)
    .orderBy('version', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row ? { version: row.version, schema: row.schema, createdAt: row.created_at } : null;
}

/** The active schema version per install and namespace as this process last saw it; writes prove it under the install lock. */
export class ActiveSchemaCache {
  private readonly versions = new Map<string, number | null>();

  private key(scope: SchemaScope): string {
    return `${scope.installId}/${scope.namespace}`;
  }

  async get(db: Db, scope: SchemaScope): Promise<number | null> {
    const hit = this.versions.get(this.key(scope));
    if (hit !== undefined) return hit;
    const version = await activeSchemaVersion(db, scope);
    this.remember(scope, version);
    return version;
  }

  remember(scope: SchemaScope, version: number | null): void {
    if (this.versions.size >= 10_000) this.versions.clear();
    this.versions.set(this.key(scope), version);
  }
}

/**
 * Stores `schema` as the namespace's next version, under the install's lock (the write function
 * takes the same lock, so no write validates against a version that stops being active meanwhile).
 */
export async function storeSchemaVersion(
  db: Db,
  scope: SchemaScope,
  schema: unknown,
  who: { actor: string; requestId: string | null },
): Promise<NamespaceSchema> {
  return db.transaction().execute(async (trx) => {
    await trx
      .selectFrom('ext_storage_install_locks')
      .select('install_id')
      .where('tenant_id', '=', scope.tenantId)
      .where('install_id', '=', scope.installId)
      .forUpdate()
      .execute();
    const version = ((await activeSchemaVersion(trx, scope)) ?? 0) + 1;
    const row = await trx
      .insertInto('ext_storage_schemas')
      .values({
        tenant_id: scope.tenantId,
        install_id: scope.installId,
        namespace: scope.namespace,
        version,
        schema: JSON.stringify(schema),
        created_at: sql`now()`,
      })
      .returning(['version', 'schema', 'created_at'])
      .executeTakeFirstOrThrow();
    await appendAuditEvent(trx, scope, { operation: 'setNamespaceSchema', namespace: scope.namespace, actor: who.actor, requestId: who.requestId });
    return { version: row.version, schema: row.schema, createdAt: row.created_at };
  });
}
