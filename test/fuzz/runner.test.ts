/**
 * Fuzzing the Runner's REST door (POST /api/internal/ext-storage/install/{id}): every field with
 * every wrong type, missing and unknown fields, unknown operations, 1 MB strings, 5,000-deep JSON,
 * invalid UTF-8, numbers like 1e400, -0 and 1.5, odd paths, headers and methods. Every answer
 * stays below 500 with the protocol's error shape and leaks nothing; the server stays up; the
 * fuzzed install (its quota full, so no write can succeed) holds exactly what it held before.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import {
  applyDamage,
  checkAnswer,
  damageArb,
  deepJson,
  expectHealthy,
  expectUnchanged,
  fuzz,
  HUGE_STRING,
  INVALID_UTF8,
  ODD_NUMBERS,
  rawRequest,
  snapshot,
  type Damage,
} from './support.js';

const RUNNER = '/api/internal/ext-storage/install/';
const SEED_KEYS = ['seed/51d0-one', 'seed/51d0-two'];
const SEED_VALUES = [{ n: 1 }, { n: 2, tags: ['x'] }];

let t: TestApp;
let full: { id: string; tenantId: string };
let readOnly: { id: string; tenantId: string };
let disabled: { id: string; tenantId: string };
let secrets: string[];
let sent = 0;
const outcomes = new Map<string, number>();

beforeAll(async () => {
  t = await startTestApp();
  const caller = t.adminCaller();
  const bytes = SEED_VALUES.reduce((s, v) => s + Buffer.byteLength(JSON.stringify(v)) + 2, 0);
  full = await t.createInstall({ quota: { maxNamespaces: 1, maxKeysPerNamespace: 2, maxBytes: bytes } });
  await t.app.storage.setNamespaceSchema(caller, { installId: full.id, namespace: 'full', schema: { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } } });
  for (const [i, key] of SEED_KEYS.entries()) await t.app.storage.putRecord(caller, { installId: full.id, namespace: 'full', key, value: SEED_VALUES[i] });
  readOnly = await t.createInstall({ canWrite: false });
  disabled = await t.createInstall({ enabled: false });
  secrets = [t.secret, t.runnerToken, 'second-runner-token', await t.adminToken()];
});
afterAll(async () => {
  await t?.close();
});

// ---------------------------------------------------------------------------------- bodies

const SEEDS: Array<Record<string, unknown>> = [
  { operation: 'put', namespace: 'full', key: 'target-key', value: { n: 1 }, metadata: { m: 1 }, ttlSeconds: 3600, ifRevision: 0, schemaVersion: 1 },
  { operation: 'put', namespace: 'other', key: 'target-key', value: 'text' },
  { operation: 'get', namespace: 'full', key: 'target-key' },
  { operation: 'list', namespace: 'full', limit: 1, cursor: null, keyPrefix: 'seed/', includeValues: false, includeMetadata: true },
  { operation: 'list', namespace: 'full', limit: 2, cursor: 'bm90LWEtY3Vyc29y' },
  { operation: 'delete', namespace: 'full', key: 'target-key', ifRevision: 1 },
  { operation: 'delete', namespace: 'full', key: 'target-key' },
  { operation: 'bulkPut', namespace: 'full', items: [{ key: 'bulk-a', value: { n: 1 } }, { key: 'bulk-b', value: { n: 2 }, ttlSeconds: 120, ifRevision: 0, metadata: {} }] },
  // Neither can succeed whatever is edited: a seed value is no number (valueType), a new key is past the quota.
  { operation: 'increment', namespace: 'full', key: SEED_KEYS[0], by: 1, ttlSeconds: 3600 },
  { operation: 'increment', namespace: 'full', key: 'target-key', by: 0.5 },
  // Each operation list fails on its own (a new key past the quota, an increment of an object), checks or not.
  {
    operation: 'commit',
    checks: [{ namespace: 'full', key: SEED_KEYS[0], revision: 1 }, { namespace: 'full', key: 'target-key', revision: 0 }],
    operations: [
      { put: { namespace: 'full', key: 'target-key', value: { n: 1 }, metadata: { m: 1 }, ttlSeconds: 3600, schemaVersion: 1 } },
      { increment: { namespace: 'full', key: SEED_KEYS[1], by: 1, ttlSeconds: 120 } },
      { delete: { namespace: 'full', key: 'absent-key' } },
    ],
    dryRun: false,
  },
  { operation: 'commit', namespace: 'full', checks: [{ namespace: 'full', key: SEED_KEYS[1], revision: 9 }], operations: [{ increment: { namespace: 'other', key: 'c', by: 1 } }], dryRun: true },
];
const FIELDS = ['operation', 'namespace', 'key', 'value', 'metadata', 'ttlSeconds', 'ifRevision', 'schemaVersion', 'limit', 'cursor', 'keyPrefix', 'includeValues', 'includeMetadata', 'items', 'by', 'checks', 'operations', 'dryRun'];

/** Raw JSON text for a field: wrong types, odd numbers, huge and deep values, odd strings. */
const rawArb = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...ODD_NUMBERS) },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      '"str"', '""', 'true', 'false', 'null', '[]', '{}', '[{}]', '[null]', '[1,2]', '{"key":1}', '"\\u0000"', '"\\ud800"', '"a\\u0001b"',
      '"put"', '"get"', '"list"', '"delete"', '"bulkPut"', '"increment"', '"commit"', '"PUT"', '"constructor"', '"__proto__"', '"toString"', '"hasOwnProperty"',
      '"Bad NS"', '"../full"', '"full "', '"FULL"', '"seed/"', '"\\u202e"',
      '{"__proto__":{"polluted":1}}', '{"constructor":{"prototype":{"polluted":1}}}',
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom('huge', 'deepArray', 'deepObject', 'manyItems') },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
);

function expandRaw(raw: string): string {
  if (raw === 'huge') return JSON.stringify(HUGE_STRING);
  if (raw === 'deepArray') return deepJson(5000, 'array');
  if (raw === 'deepObject') return deepJson(5000, 'object');
  if (raw === 'manyItems') return JSON.stringify(Array.from({ length: 101 }, (_, i) => ({ key: `many-${i}`, value: { n: i } })));
  return raw;
}

type FieldEdit = { t: 'set'; field: string; raw: string } | { t: 'drop'; field: string } | { t: 'itemSet'; field: string; raw: string } | { t: 'unknown'; raw: string };
const fieldEditArb: fc.Arbitrary<FieldEdit> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constant('set' as const), field: fc.constantFrom(...FIELDS), raw: rawArb }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('drop' as const), field: fc.constantFrom(...FIELDS) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('itemSet' as const), field: fc.constantFrom('key', 'value', 'metadata', 'ttlSeconds', 'ifRevision', 'namespace', 'by', 'extra'), raw: rawArb }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('unknown' as const), raw: rawArb }) },
);

const SHAPES = ['object', 'array', 'string', 'number', 'null', 'empty', 'deep', 'random', 'two objects', 'bom'] as const;

/** The body as JSON text: fields are spliced in as raw text, so 1e400 and -0 reach the server as written. */
function bodyText(seed: Record<string, unknown>, edits: FieldEdit[], shape: (typeof SHAPES)[number], random: unknown): string {
  const fields = new Map<string, string>(Object.entries(seed).map(([k, v]) => [k, JSON.stringify(v)]));
  for (const e of edits) {
    if (e.t === 'set') fields.set(e.field, expandRaw(e.raw));
    else if (e.t === 'drop') fields.delete(e.field);
    else if (e.t === 'unknown') fields.set('unexpectedField', expandRaw(e.raw));
    else if (Array.isArray(seed.operations)) {
      // A commit: the edit lands in the first operation's put, delete or increment.
      const ops = seed.operations as Array<Record<string, Record<string, unknown>>>;
      if (!fields.get('operations')?.startsWith('[{')) continue;
      const [kind, target] = Object.entries(ops[0]!)[0]!;
      const inner = Object.entries(target).map(([k, v]) => `${JSON.stringify(k)}:${k === e.field ? expandRaw(e.raw) : JSON.stringify(v)}`);
      if (!(e.field in target)) inner.push(`${JSON.stringify(e.field)}:${expandRaw(e.raw)}`);
      fields.set('operations', `[{${JSON.stringify(kind)}:{${inner.join(',')}}}${ops.length > 1 ? `,${ops.slice(1).map((o) => JSON.stringify(o)).join(',')}` : ''}]`);
    } else {
      const items = seed.items as Array<Record<string, unknown>> | undefined;
      if (!items || !fields.get('items')?.startsWith('[{')) continue;
      const first = Object.entries(items[0]!).map(([k, v]) => `${JSON.stringify(k)}:${k === e.field ? expandRaw(e.raw) : JSON.stringify(v)}`);
      if (!(e.field in items[0]!)) first.push(`${JSON.stringify(e.field)}:${expandRaw(e.raw)}`);
      fields.set('items', `[{${first.join(',')}}${items.length > 1 ? `,${items.slice(1).map((i) => JSON.stringify(i)).join(',')}` : ''}]`);
    }
  }
  const object = `{${[...fields.entries()].map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
  switch (shape) {
    case 'object':
      return object;
    case 'array':
      return `[${object}]`;
    case 'string':
      return JSON.stringify(object);
    case 'number':
      return '1e400';
    case 'null':
      return 'null';
    case 'empty':
      return '';
    case 'deep':
      return deepJson(5000, 'object');
    case 'random':
      return JSON.stringify(random) ?? '';
    case 'two objects':
      return `${object}${object}`;
    case 'bom':
      return `\ufeff${object}`;
  }
}

const PATH_KINDS = ['full', 'upper', 'readOnly', 'disabled', 'unknown', 'garbage', 'empty', 'badPercent', 'encoded', 'trailing', 'query', 'dotdot', 'nul'] as const;
const AUTH_KINDS = ['valid', 'second', 'none', 'wrong', 'empty', 'prefix', 'duplicate', 'duplicateBad', 'bearer', 'long', 'spaces'] as const;

const requestArb = fc.record({
  seed: fc.nat(),
  edits: fc.oneof({ weight: 1, arbitrary: fc.constant([] as FieldEdit[]) }, { weight: 3, arbitrary: fc.array(fieldEditArb, { minLength: 1, maxLength: 3 }) }),
  shape: fc.oneof({ weight: 10, arbitrary: fc.constant<(typeof SHAPES)[number]>('object') }, { weight: 1, arbitrary: fc.constantFrom(...SHAPES) }),
  random: fc.jsonValue({ maxDepth: 3 }),
  damage: fc.oneof({ weight: 8, arbitrary: fc.constant([] as Damage[]) }, { weight: 1, arbitrary: fc.array(damageArb, { minLength: 1, maxLength: 3 }) }),
  method: fc.oneof({ weight: 15, arbitrary: fc.constant('POST') }, { weight: 1, arbitrary: fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE') }),
  path: fc.oneof({ weight: 12, arbitrary: fc.constant<(typeof PATH_KINDS)[number]>('full') }, { weight: 1, arbitrary: fc.constantFrom(...PATH_KINDS) }),
  auth: fc.oneof({ weight: 12, arbitrary: fc.constant<(typeof AUTH_KINDS)[number]>('valid') }, { weight: 1, arbitrary: fc.constantFrom(...AUTH_KINDS) }),
  contentType: fc.constantFrom('application/json', 'application/json', 'application/json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data', '', 'application/json; charset=latin1'),
  extra: fc.oneof(
    { weight: 4, arbitrary: fc.constant([] as Array<[string, string]>) },
    {
      weight: 1,
      arbitrary: fc.array(
        fc.constantFrom<[string, string]>(['content-encoding', 'gzip'], ['x-install-id', 'not-a-uuid'], ['expect', '100-continue'], ['x-request-id', '\u00ff'.repeat(3)], ['accept', 'text/html'], ['authorization', 'Bearer nope']),
        { minLength: 1, maxLength: 2 },
      ),
    },
  ),
  chunked: fc.integer({ min: 0, max: 9 }),
});
type RequestSpec = typeof requestArb extends fc.Arbitrary<infer T> ? T : never;

function pathFor(kind: (typeof PATH_KINDS)[number]): string {
  switch (kind) {
    case 'full':
      return RUNNER + full.id;
    case 'upper':
      return RUNNER + full.id.toUpperCase();
    case 'readOnly':
      return RUNNER + readOnly.id;
    case 'disabled':
      return RUNNER + disabled.id;
    case 'unknown':
      return RUNNER + randomUUID();
    case 'garbage':
      return `${RUNNER}not-a-uuid`;
    case 'empty':
      return RUNNER;
    case 'badPercent':
      return `${RUNNER}%ff%E0%A4%A`;
    case 'encoded':
      return RUNNER + encodeURIComponent(full.id).replace(/-/g, '%2D');
    case 'trailing':
      return `${RUNNER + full.id}/extra`;
    case 'query':
      return `${RUNNER + full.id}?operation=put&x=%ff`;
    case 'dotdot':
      return `${RUNNER}..%2F..%2Fgraphql`;
    case 'nul':
      return `${RUNNER + full.id}%00`;
  }
}

function authFor(kind: (typeof AUTH_KINDS)[number]): Array<[string, string]> {
  switch (kind) {
    case 'valid':
      return [['x-runner-auth', t.runnerToken]];
    case 'second':
      return [['x-runner-auth', 'second-runner-token']];
    case 'none':
      return [];
    case 'wrong':
      return [['x-runner-auth', 'runner-wrong-token']];
    case 'empty':
      return [['x-runner-auth', '']];
    case 'prefix':
      return [['x-runner-auth', t.runnerToken.slice(0, -1)]];
    case 'duplicate':
      return [['x-runner-auth', t.runnerToken], ['x-runner-auth', t.runnerToken]];
    case 'duplicateBad':
      return [['x-runner-auth', 'nope'], ['x-runner-auth', t.runnerToken]];
    case 'bearer':
      return [['x-runner-auth', `Bearer ${t.runnerToken}`]];
    case 'long':
      return [['x-runner-auth', 'r'.repeat(10_000)]];
    case 'spaces':
      return [['x-runner-auth', ` ${t.runnerToken} `]];
  }
}

const ERROR_CODES = new Set(['VALIDATION_FAILED', 'LIMIT_EXCEEDED', 'UNAUTHORIZED', 'FORBIDDEN', 'NOT_FOUND', 'REVISION_MISMATCH', 'QUOTA_EXCEEDED', 'RATE_LIMITED', 'METHOD_NOT_ALLOWED', 'PAYLOAD_TOO_LARGE']);

async function send(spec: RequestSpec): Promise<void> {
  const seed = SEEDS[spec.seed % SEEDS.length]!;
  const text = bodyText(seed, spec.edits, spec.shape, spec.random);
  const body = applyDamage(Buffer.from(text, 'utf8'), spec.damage);
  const path = pathFor(spec.path);
  const headers: Array<[string, string]> = [...(spec.contentType ? [['content-type', spec.contentType] as [string, string]] : []), ...authFor(spec.auth), ...spec.extra];
  const withBody = spec.method !== 'GET' && spec.method !== 'HEAD';
  const what = `${spec.method} ${path} auth=${spec.auth} headers ${JSON.stringify(spec.extra)} body ${body.subarray(0, 400).toString('utf8')}${body.length > 400 ? `…(${body.length} bytes)` : ''}`;
  const res = await rawRequest(t.url, { method: spec.method, path, headers, body: withBody ? body : undefined, chunked: withBody && spec.chunked === 0 }).catch((error: Error) => {
    throw new Error(`${error.message}: ${what}`);
  });
  sent++;
  let json: { code?: string; error?: unknown; details?: unknown } | undefined;
  try {
    json = JSON.parse(res.text);
  } catch {
    json = undefined;
  }
  const key = `${res.status} ${json?.code ?? (res.status === 200 ? spec.edits.length === 0 ? (seed.operation as string) : 'ok' : '-')}`;
  outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  checkAnswer(res, `${path}\n${text}`, secrets, what);
  // Errors of the protocol keep its shape: {error, code, details}.
  if (res.status >= 400 && path.startsWith(RUNNER) && spec.method !== 'HEAD' && json !== undefined) {
    expect(ERROR_CODES.has(json.code ?? ''), `error code ${json.code} (${what})`).toBe(true);
    expect(typeof json.error, `error message (${what})`).toBe('string');
    expect('details' in json, `details (${what})`).toBe(true);
  }
}

describe('fuzzing the Runner door', () => {
  it('answers thousands of random and damaged requests below 500 in the protocol shape, leaks nothing, stays up and writes nothing', async () => {
    const before = [await snapshot(t, full.id, full.tenantId), await snapshot(t, readOnly.id, readOnly.tenantId), await snapshot(t, disabled.id, disabled.tenantId)];
    await fuzz(
      fc.asyncProperty(fc.array(requestArb, { minLength: 6, maxLength: 6 }), async (specs) => {
        await Promise.all(specs.map(send));
        await expectHealthy(t.url);
      }),
      250,
    );
    if (process.env.FC_VERBOSE) console.log([...outcomes.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n}\t${k}`).join('\n'));
    expect(sent).toBeGreaterThanOrEqual(1000);
    const after = [await snapshot(t, full.id, full.tenantId), await snapshot(t, readOnly.id, readOnly.tenantId), await snapshot(t, disabled.id, disabled.tenantId)];
    expectUnchanged(before, after);
  }, 600_000);
});

describe('targeted bad input on the Runner door', () => {
  const post = (installId: string, body: Buffer) =>
    rawRequest(t.url, { method: 'POST', path: RUNNER + installId, headers: [['content-type', 'application/json'], ['x-runner-auth', t.runnerToken]], body });

  it('refuses a body with invalid UTF-8 instead of repairing it, and writes nothing', async () => {
    const roomy = await t.createInstall();
    for (const bad of INVALID_UTF8) {
      for (const [before, after] of [
        ['{"operation":"put","namespace":"ns","key":"K', '","value":1}'],
        ['{"operation":"put","namespace":"ns","key":"k","value":"V', '"}'],
        ['{"operation":"bulkPut","namespace":"ns","items":[{"key":"k","value":{"v":"', '"}}]}'],
      ] as const) {
        const res = await post(roomy.id, Buffer.concat([Buffer.from(before), bad, Buffer.from(after)]));
        checkAnswer(res, before + after, secrets, `invalid UTF-8 ${bad.toString('hex')}`);
        expect(res.status, `${before}<${bad.toString('hex')}>${after}: ${res.text}`).toBe(400);
        expect(JSON.parse(res.text).code).toBe('VALIDATION_FAILED');
      }
    }
    const list = await post(roomy.id, Buffer.from('{"operation":"list","namespace":"ns"}'));
    expect(JSON.parse(list.text)).toEqual({ items: [], nextCursor: null });
  });

  it('reads numbers as JSON says: 1e400 and 1.5 are not integers, -0 is 0', async () => {
    const roomy = await t.createInstall();
    const put = (extra: string) => post(roomy.id, Buffer.from(`{"operation":"put","namespace":"ns","key":"k","value":1,${extra}}`));
    for (const field of ['ifRevision', 'ttlSeconds', 'schemaVersion']) {
      for (const n of ['1e400', '-1e400', '1.5']) {
        const res = await put(`"${field}":${n}`);
        checkAnswer(res, '', secrets, `${field}: ${n}`);
        expect([400], `${field}: ${n} → ${res.status} ${res.text}`).toContain(res.status);
      }
    }
    for (const n of ['1e400', '1.5', '-0', '0', '101']) {
      const res = await post(roomy.id, Buffer.from(`{"operation":"list","namespace":"ns","limit":${n}}`));
      checkAnswer(res, '', secrets, `limit ${n}`);
      expect(res.status, `limit ${n}: ${res.text}`).toBe(400);
      expect(JSON.parse(res.text).code).toBe(n === '1e400' || n === '1.5' ? 'VALIDATION_FAILED' : 'LIMIT_EXCEEDED');
    }
    // -0 is the number 0: create-only for ifRevision, below the minimum for ttlSeconds.
    const created = await put('"ifRevision":-0');
    expect(created.status, created.text).toBe(200);
    expect(JSON.parse(created.text).revision).toBe(1);
    const again = await put('"ifRevision":-0');
    expect(again.status).toBe(409);
    const ttl = await put('"ttlSeconds":-0');
    expect(ttl.status).toBe(400);
    expect(JSON.parse(ttl.text).details.limit).toBe('ttlSeconds');
    await expectHealthy(t.url);
  });

  it('answers 5,000- and 50,000-deep bodies and 1 MB strings with a clear 400', async () => {
    for (const depth of [5000, 50_000]) {
      for (const kind of ['array', 'object'] as const) {
        const res = await post(full.id, Buffer.from(`{"operation":"put","namespace":"other","key":"deep","value":${deepJson(depth, kind)}}`));
        checkAnswer(res, '', secrets, `value ${depth} deep`);
        expect(res.status).toBe(400);
        expect(JSON.parse(res.text).details.limit).toBe('valueFormat');
        const whole = await post(full.id, Buffer.from(deepJson(depth, kind)));
        checkAnswer(whole, '', secrets, `body ${depth} deep`);
        expect(whole.status).toBe(400);
      }
    }
    const huge = await post(full.id, Buffer.from(JSON.stringify({ operation: 'put', namespace: 'other', key: HUGE_STRING, value: HUGE_STRING })));
    checkAnswer(huge, '', secrets, '1 MB key');
    expect(huge.status).toBe(400);
    expect(JSON.parse(huge.text).details.limit).toBe('keyLength');
    expect(huge.text.length, 'the answer does not echo a megabyte').toBeLessThan(10_000);
    const op = await post(full.id, Buffer.from(JSON.stringify({ operation: HUGE_STRING, namespace: 'full' })));
    expect(op.status).toBe(400);
    expect(op.text.length).toBeLessThan(10_000);
  });
});
