/**
 * What one GraphQL request does while it runs (contract, "Cost, fairness and availability"): its
 * database calls, taken a few at a time and counted, and the value and metadata bytes of every
 * record it returns. Past the response budget (or, should a namespace list outgrow the quota it was
 * priced with, past the statement limit) the request stops: no further database call starts and
 * the result becomes `data: null` with one error (src/graphql/cost-plugin.ts).
 */
import { GraphQLError } from 'graphql';
import type { StoredRecord } from '../storage/records.js';

export interface WorkLimits {
  /** Value and metadata bytes a request may return (STORAGE_MAX_RESPONSE_BYTES). */
  maxResponseBytes: number;
  /** Database calls a request may make (STORAGE_MAX_STATEMENTS_PER_REQUEST). */
  maxStatements: number;
}

/**
 * Database calls of one request at a time: the rows of at most this many statements are held
 * before they are counted (memory per request stays near the budget), and one request never
 * takes more than this many pool connections.
 */
export const STATEMENTS_AT_ONCE = 2;

/** Characters JSON.stringify escapes: quote, backslash and \b \f \n \r \t take one byte more, other controls (\u00XX) five more. */
// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f]/;

function escapeExtra(c: number): number {
  if (c === 0x22 || c === 0x5c || c === 0x08 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d) return 1;
  return c < 0x20 ? 5 : 0;
}

/** Bytes of a string's JSON text: one pass in JavaScript for short strings, native scans for long ones. */
function stringBytes(s: string): number {
  const len = s.length;
  if (len > 256) {
    let n = Buffer.byteLength(s, 'utf8') + 2;
    if (!NEEDS_ESCAPE.test(s)) return n;
    for (let i = 0; i < len; i++) n += escapeExtra(s.charCodeAt(i));
    return n;
  }
  let n = len + 2;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      if (c < 0x20 || c === 0x22 || c === 0x5c) n += escapeExtra(c);
    } else if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff) {
      // A surrogate pair is 4 bytes for 2 UTF-16 units (stored values hold no lone surrogates).
      n += 2;
      i++;
    } else n += 2;
  }
  return n;
}

/**
 * UTF-8 bytes of a JSON value's compact text (what JSON.stringify would produce), without building
 * that text: measuring a 64 KB value must not allocate another 64 KB per record returned.
 */
export function jsonSize(value: unknown): number {
  if (value === null) return 4;
  switch (typeof value) {
    case 'string':
      return stringBytes(value);
    case 'number':
      return Number.isFinite(value) ? String(value).length : 4;
    case 'boolean':
      return value ? 4 : 5;
    case 'object': {
      if (Array.isArray(value)) {
        let n = 2 + Math.max(0, value.length - 1);
        for (const v of value) n += v === undefined || typeof v === 'function' ? 4 : jsonSize(v);
        return n;
      }
      if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
      let n = 2;
      let fields = 0;
      for (const k of Object.keys(value)) {
        const v = (value as Record<string, unknown>)[k];
        if (v === undefined || typeof v === 'function') continue;
        n += stringBytes(k) + 1 + jsonSize(v);
        fields++;
      }
      return n + Math.max(0, fields - 1);
    }
    default:
      return 0;
  }
}

/** Where a loaded record keeps its measured size: a symbol key, invisible to JSON and to GraphQL (cheaper than a WeakMap entry per record). */
const BYTES = Symbol('recordBytes');

/**
 * Stored bytes of a record (compact JSON of value and metadata), measured once per loaded record.
 * A record read with its stored size (`storedBytes`: value_bytes + metadata_bytes, the same figure)
 * is not measured at all: measuring is about 3% of the CPU of a 100-record read.
 */
export function recordBytes(record: StoredRecord): number {
  const r = record as StoredRecord & { [BYTES]?: number; storedBytes?: number };
  if (typeof r.storedBytes === 'number') return r.storedBytes;
  return (r[BYTES] ??= jsonSize(record.value) + jsonSize(record.metadata));
}

export function responseTooLarge(max: number): GraphQLError {
  return new GraphQLError(`the response would exceed ${max} bytes of record values and metadata; ask for fewer records`, {
    extensions: { code: 'RESPONSE_TOO_LARGE', max },
  });
}

export function queryTooCostly(limit: 'statements' | 'records', cost: number, max: number, during = false): GraphQLError {
  const what = limit === 'statements' ? 'database reads' : 'records';
  return new GraphQLError(
    during ? `the request made more than ${max} ${what}; ask for less` : `the query may need ${cost} ${what}; at most ${max} are allowed per request`,
    // Refused before execution: HTTP 400 whatever the Accept header (requestErrorsAnswer400).
    { extensions: { code: 'QUERY_TOO_COSTLY', limit, cost, max, ...(during ? {} : { http: { status: 400 } }) } },
  );
}

export class RequestWork {
  private statements = 0;
  private bytes = 0;
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  /** Why the request stopped, once it has: every later database call and record return throws it. */
  stopped: GraphQLError | null = null;
  /** Response bytes this request may hold at most (its share of the process-wide pool). */
  reservation = 0;

  constructor(private readonly limits: WorkLimits) {}

  /** Value and metadata bytes returned so far. */
  get returnedBytes(): number {
    return this.bytes;
  }

  /** Runs one database call of this request, at most STATEMENTS_AT_ONCE at once; refused once stopped. */
  async read<T>(run: () => Promise<T>): Promise<T> {
    if (this.stopped) throw this.stopped;
    if (++this.statements > this.limits.maxStatements) {
      throw this.stop(queryTooCostly('statements', this.statements, this.limits.maxStatements, true));
    }
    if (this.active < STATEMENTS_AT_ONCE) this.active++;
    else {
      // A finishing call hands its slot over directly (release), so at most STATEMENTS_AT_ONCE run.
      await new Promise<void>((resolve) => this.waiting.push(resolve));
      if (this.stopped) {
        this.release();
        throw this.stopped;
      }
    }
    try {
      return await run();
    } finally {
      this.release();
    }
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }

  /** Counts records handed to the response (once per occurrence: a record under two aliases counts twice). */
  returned(records: readonly (StoredRecord | null | undefined)[]): void {
    if (this.stopped) throw this.stopped;
    let bytes = this.bytes;
    for (const r of records) if (r) bytes += recordBytes(r);
    this.bytes = bytes;
    if (bytes > this.limits.maxResponseBytes) throw this.stop(responseTooLarge(this.limits.maxResponseBytes));
  }

  private stop(error: GraphQLError): GraphQLError {
    this.stopped ??= error;
    return this.stopped;
  }
}
