/**
 * Fuzzing helpers: raw HTTP/1.1 requests (exact bytes, duplicated headers, any method), the
 * checks every answer must pass, and a snapshot of everything an install holds, so a fuzz run
 * can prove that no refused request wrote anything.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { expect } from 'vitest';
import { assertProperty } from '../properties/replay.js';
import type { TestApp } from '../support/app.js';
import { raw } from '../support/raw-http.js';

const SEED = 0xf022_2026;

/** fc.assert with this file's fixed seed (see ../properties/replay.ts for FC_SEED, FC_PATH, FC_RUNS). */
export const fuzz = <T>(property: fc.IAsyncProperty<T>, numRuns: number) => assertProperty(property, numRuns, SEED);

export interface RawRequest {
  method: string;
  path: string;
  /** Sent in this order, duplicates kept; Host, Content-Length and Connection are added. */
  headers: Array<[string, string]>;
  body?: Buffer;
  /** Send the body with Transfer-Encoding: chunked instead of Content-Length. */
  chunked?: boolean;
}

export interface RawResponse {
  /** 0 when the server closed the connection without an answer. */
  status: number;
  headers: Record<string, string[]>;
  text: string;
}

/** One request on its own connection, exactly as given (test/support/raw-http.ts). */
export async function rawRequest(baseUrl: string, req: RawRequest, timeoutMs = 20_000): Promise<RawResponse> {
  const res = await raw(baseUrl, { method: req.method, target: req.path, headers: req.headers, body: req.body, chunked: req.chunked, timeoutMs });
  return { status: res.status, headers: res.headers, text: res.text };
}

/** Text no answer may ever contain: stack traces, SQL, table names. */
const LEAKS = ['    at ', 'node_modules', '.ts:', 'SELECT', 'INSERT', 'ext_storage_'];

/**
 * Every answer: no 5xx (the database is up), no stack trace, SQL or secret in the body, unless
 * the request itself carried that text (GraphQL may quote a caller's own input back).
 */
export function checkAnswer(res: RawResponse, sent: string, secrets: string[], what: string): void {
  const context = `${what}\n  → ${res.status} ${res.text.slice(0, 600)}`;
  expect(res.status, `the server answered (${context})`).toBeGreaterThanOrEqual(100);
  expect(res.status, `no 5xx (${context})`).toBeLessThan(500);
  // The GraphiQL page is a bundle of code: its text is not an error message.
  const graphiql = res.status === 200 && (res.headers['content-type'] ?? []).some((v) => v.startsWith('text/html'));
  for (const leak of graphiql ? [] : LEAKS) {
    if (res.text.includes(leak) && !sent.includes(leak)) throw new Error(`the answer contains "${leak}": ${context}`);
  }
  for (const secret of secrets) {
    if (res.text.includes(secret)) throw new Error(`the answer contains a secret: ${context}`);
  }
}

export async function expectHealthy(url: string): Promise<void> {
  const res = await fetch(`${url}/healthz`);
  expect(res.status, 'the server is still up').toBe(200);
}

/**
 * Everything an install holds and what describes it, read by an admin of its tenant: the
 * install, usage, namespaces, every record, schemas and the newest audit events.
 */
export async function snapshot(t: TestApp, installId: string, tenantId: string): Promise<unknown> {
  const token = await t.adminToken(tenantId);
  const head = await t.gql(
    `query($id: ID!) { install(id: $id) {
      id tenantId extensionId enabled capabilities { read write namespaces }
      quota { maxNamespaces maxKeysPerNamespace maxBytes maxValueBytes maxMetadataBytes }
      usage { namespaces keys bytes }
      namespaces { name keyCount bytesUsed schema { version schema } }
      auditLog(first: 100) { edges { node { id at actor operation namespace key revision bytesDelta } } }
    } }`,
    { id: installId },
    { token },
  );
  expect(head.body.errors, JSON.stringify(head.body.errors)).toBeUndefined();
  const install = head.body.data.install;
  const records: Record<string, unknown[]> = {};
  for (const ns of ['full', 'other', ...install.namespaces.map((n: { name: string }) => n.name)]) {
    const all: unknown[] = [];
    let after: string | null = null;
    for (;;) {
      const page: { body: { data?: any; errors?: unknown } } = await t.gql<any>(
        `query($ns: String!, $after: String, $id: ID) { recordList(namespace: $ns, first: 100, after: $after, installId: $id) {
          edges { node { key value metadata revision schemaVersion ttlExpiresAt createdAt updatedAt } } pageInfo { hasNextPage endCursor } } }`,
        { ns, after, id: installId },
        { token },
      );
      expect(page.body.errors, JSON.stringify(page.body.errors)).toBeUndefined();
      all.push(...page.body.data.recordList.edges.map((e: { node: unknown }) => e.node));
      if (!page.body.data.recordList.pageInfo.hasNextPage) break;
      after = page.body.data.recordList.pageInfo.endCursor;
    }
    records[ns] = all;
  }
  return { install, records };
}

export function expectUnchanged(before: unknown, after: unknown): void {
  if (!isDeepStrictEqual(before, after)) {
    expect(after, 'a refused request changed what the install holds').toEqual(before);
  }
}

// ---------------------------------------------------------------------------------- generators

/** Bytes that are not valid UTF-8: lone continuation, truncated sequences, overlong forms, encoded surrogates, 0xFF. */
export const INVALID_UTF8: Buffer[] = [
  Buffer.from([0xff]),
  Buffer.from([0xfe, 0xff]),
  Buffer.from([0x80]),
  Buffer.from([0xc3, 0x28]),
  Buffer.from([0xc0, 0xaf]),
  Buffer.from([0xe2, 0x82]),
  Buffer.from([0xed, 0xa0, 0x80]),
  Buffer.from([0xf4, 0x90, 0x80, 0x80]),
  Buffer.from([0xf0, 0x9f, 0x98]),
];

/** Nested arrays or objects `depth` levels deep, as JSON text (built iteratively: no recursion). */
export function deepJson(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array' ? '['.repeat(depth) + '1' + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

export const HUGE_STRING = 'x'.repeat(1024 * 1024);

/** Number spellings JSON allows but JavaScript and integers do not agree on. */
export const ODD_NUMBERS = ['1e400', '-1e400', '-0', '1.5', '0.0', '1e2', '9007199254740993', '-1', '2147483648', '1E-7', '-0.0e0'];

/** Replaces `bytes` at `at` in `base` (clamped), or inserts them when `remove` is 0. */
export function splice(base: Buffer, at: number, remove: number, bytes: Buffer): Buffer {
  const i = Math.min(at, base.length);
  return Buffer.concat([base.subarray(0, i), bytes, base.subarray(Math.min(base.length, i + remove))]);
}

/** Byte-level damage to a body: deletions, duplications, insertions, invalid UTF-8, truncation. */
export type Damage =
  | { t: 'delete'; at: number; n: number }
  | { t: 'duplicate'; at: number; n: number }
  | { t: 'insert'; at: number; bytes: string }
  | { t: 'invalidUtf8'; at: number; which: number }
  | { t: 'truncate'; at: number };

export const damageArb: fc.Arbitrary<Damage> = fc.oneof(
  fc.record({ t: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ t: fc.constant('duplicate' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ t: fc.constant('insert' as const), at: fc.nat(), bytes: fc.constantFrom('{', '}', '[', ']', '"', ':', ',', '\\', '$', '!', '@', '#', 'null', '0', '-', 'e', ' ', '\u0000', '\u2028', '\ud800') }),
  fc.record({ t: fc.constant('invalidUtf8' as const), at: fc.nat(), which: fc.nat() }),
  fc.record({ t: fc.constant('truncate' as const), at: fc.nat() }),
);

export function applyDamage(body: Buffer, damage: Damage[]): Buffer {
  let out = body;
  for (const d of damage) {
    const at = out.length === 0 ? 0 : d.at % (out.length + 1);
    switch (d.t) {
      case 'delete':
        out = splice(out, at, d.n, Buffer.alloc(0));
        break;
      case 'duplicate':
        out = splice(out, at, 0, out.subarray(at, at + d.n));
        break;
      case 'insert':
        out = splice(out, at, 0, Buffer.from(d.bytes, 'utf8'));
        break;
      case 'invalidUtf8':
        out = splice(out, at, 0, INVALID_UTF8[d.which % INVALID_UTF8.length]!);
        break;
      case 'truncate':
        out = out.subarray(0, at);
        break;
    }
  }
  return out;
}

/**
 * JSON text of `value` with the values at some of its paths (chosen by `pick`) replaced by raw
 * JSON text (which may be huge or deeply nested: it is spliced in as text, never walked).
 */
export function withRawAt(value: unknown, swaps: Array<{ pick: number; raw: string }>): string {
  const paths: Array<Array<string | number>> = [[]];
  const walk = (v: unknown, path: Array<string | number>) => {
    if (Array.isArray(v)) v.forEach((x, i) => (paths.push([...path, i]), walk(x, [...path, i])));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) (paths.push([...path, k]), walk(x, [...path, k]));
  };
  walk(value, []);
  let copy: unknown = structuredClone(value);
  swaps.forEach((swap, n) => {
    const path = paths[swap.pick % paths.length]!;
    const marker = `__fuzz_marker_${n}__`;
    if (path.length === 0) {
      copy = marker;
      return;
    }
    let at: unknown = copy;
    for (const p of path.slice(0, -1)) at = at && typeof at === 'object' ? (at as Record<string | number, unknown>)[p] : undefined;
    // An earlier swap may have replaced a parent: then this one does nothing.
    if (at && typeof at === 'object') (at as Record<string | number, unknown>)[path[path.length - 1]!] = marker;
  });
  let text = JSON.stringify(copy);
  swaps.forEach((swap, n) => {
    text = text.replace(`"__fuzz_marker_${n}__"`, () => swap.raw);
  });
  return text;
}
