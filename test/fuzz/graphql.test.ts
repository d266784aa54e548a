/**
 * Fuzzing /graphql with raw HTTP: random JSON, damaged valid operations, wrong variable types,
 * 1 MB strings, 5,000-deep JSON, invalid UTF-8, odd and duplicated headers, wrong content types
 * and methods. Every answer stays below 500 and leaks nothing; the server stays up; nothing is
 * written. The fuzzed install's quota is full (one namespace, every key, every byte used), so no
 * write the fuzzer can build may succeed: the snapshot taken before must equal the one after.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../../src/auth/credentials.js';
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
  withRawAt,
  type Damage,
  type RawRequest,
} from './support.js';

let t: TestApp;
let full: { id: string; tenantId: string };
let readOnly: { id: string; tenantId: string };
let otherTenant: string;
let tokens: Record<string, string>;
let secrets: string[];
let sent = 0;
/** Status and first typename or error code of every answer (printed with FC_VERBOSE=1). */
const outcomes = new Map<string, number>();

const SEED_VALUES = [{ n: 1, note: '2026-01-31' }, { n: 2 }, { n: 3, tags: ['a', 'b'] }];
const SEED_KEYS = ['seed/8c1f2a-one', 'seed/8c1f2a-two', 'seed/8c1f2a-three'];

beforeAll(async () => {
  t = await startTestApp();
  const caller = t.adminCaller();
  // A full install: its one namespace holds its 3 keys and every byte of its quota.
  const bytes = SEED_VALUES.reduce((s, v) => s + Buffer.byteLength(JSON.stringify(v)) + 2, 0);
  const install = await t.createInstall({ quota: { maxNamespaces: 1, maxKeysPerNamespace: 3, maxBytes: bytes } });
  full = install;
  await t.app.storage.setNamespaceSchema(caller, {
    installId: install.id,
    namespace: 'full',
    schema: { type: 'object', properties: { n: { type: 'integer' }, note: { type: 'string', format: 'date' } }, required: ['n'] },
  });
  for (const [i, key] of SEED_KEYS.entries()) {
    await t.app.storage.putRecord(caller, { installId: install.id, namespace: 'full', key, value: SEED_VALUES[i] });
  }
  const ro = await t.createInstall({ canWrite: false });
  readOnly = ro;
  otherTenant = randomUUID();
  const now = Math.floor(Date.now() / 1000);
  tokens = {
    rw: await install.token(),
    read: await install.token('storage:read'),
    write: await install.token('storage:write'),
    readOnlyInstall: await ro.token(),
    otherAdmin: await t.adminToken(otherTenant),
    expired: await mintToken(t.secret, { sub: 'x', tid: install.tenantId, role: 'extension', iid: install.id, scope: 'storage:read storage:write', expiresIn: now - 3600 }),
    wrongSecret: await mintToken('not-the-secret-0123456789abcdef0123456789', { sub: 'x', tid: install.tenantId, role: 'extension', iid: install.id, scope: 'storage:read storage:write' }),
    unknownInstall: await mintToken(t.secret, { sub: 'x', tid: install.tenantId, role: 'extension', iid: randomUUID(), scope: 'storage:read storage:write' }),
  };
  secrets = [t.secret, t.runnerToken, 'second-runner-token', ...Object.values(tokens), await t.adminToken()];
});
afterAll(async () => {
  await t?.close();
});

// ---------------------------------------------------------------------------------- seeds

const ERRORS = `
  ... on RevisionMismatch { code message key expectedRevision currentRevision }
  ... on QuotaExceeded { code message quota allowed used itemIndex }
  ... on LimitExceeded { code message limit max actual itemIndex }
  ... on ValidationFailed { code message schemaVersion issues { path message keyword } }`;
const PUT_RESULT = `__typename ... on PutRecordSuccess { record { key value revision ttlExpiresAt } } ${ERRORS}`;
const BULK_RESULT = `__typename ... on BulkPutRecordsSuccess { records { key revision } } ${ERRORS}`;

interface Seed {
  name: string;
  query: string;
  variables?: Record<string, unknown>;
  operationName?: string;
  /** A valid admin of another tenant could make this one succeed somewhere (upsertInstall of a new id). */
  noAdmin?: boolean;
}

function seeds(): Seed[] {
  return [
    {
      name: 'put',
      query: `mutation Put($input: PutRecordInput!) { putRecord(input: $input) { ${PUT_RESULT} } }`,
      variables: { input: { namespace: 'full', key: 'target-key', value: { n: 1, note: '2026-01-31' }, metadata: { a: 1 }, ttlSeconds: 3600, ifRevision: 0 } },
      operationName: 'Put',
    },
    {
      name: 'put elsewhere',
      query: `mutation($input: PutRecordInput!) { putRecord(input: $input) { ${PUT_RESULT} } }`,
      variables: { input: { namespace: 'other', key: 'target-key', value: 'text', schemaVersion: 1 } },
    },
    {
      name: 'put inline',
      query: `mutation { putRecord(input: { namespace: "full", key: "target/inline", value: { n: 2, list: [1, 2.5, "x", null, true] }, ifRevision: 3 }) { ${PUT_RESULT} } }`,
    },
    {
      name: 'bulk',
      query: `mutation Bulk($ns: String!, $items: [BulkPutItem!]!) { bulkPutRecords(input: { namespace: $ns, items: $items }) { ${BULK_RESULT} } }`,
      variables: { ns: 'full', items: [{ key: 'bulk-a', value: { n: 1 } }, { key: 'bulk-b', value: { n: 2 }, metadata: { m: true }, ttlSeconds: 120 }, { key: 'bulk-c', value: { n: 3 }, ifRevision: 0 }] },
      operationName: 'Bulk',
    },
    {
      name: 'delete',
      query: `mutation($key: String!, $rev: Int) { deleteRecord(input: { namespace: "full", key: $key, ifRevision: $rev }) {
        __typename ... on DeleteRecordSuccess { deleted } ... on RevisionMismatch { currentRevision } ... on LimitExceeded { limit } } }`,
      variables: { key: 'target-key', rev: 2 },
    },
    {
      name: 'reads',
      query: `query Reads($ns: String!, $keys: [String!]!, $first: Int, $after: String) {
        records(namespace: $ns, keys: $keys) { key value revision }
        recordList(namespace: $ns, first: $first, after: $after, prefix: "seed/") { edges { cursor node { key } } pageInfo { hasNextPage endCursor } }
        record(namespace: $ns, key: "target-key") { key } }`,
      variables: { ns: 'full', keys: ['target-key', 'missing'], first: 2, after: null },
      operationName: 'Reads',
    },
    {
      name: 'install',
      query: `query { install { id tenantId enabled usage { namespaces keys bytes } quota { maxBytes maxNamespaces }
        capabilities { read write namespaces } namespaces { name keyCount bytesUsed schema { version schema } }
        namespace(name: "full") { keyCount records(keys: ["a"]) { key } recordList(first: 1) { edges { cursor } } } } }`,
    },
    { name: 'audit', query: `query($first: Int, $after: String) { install { auditLog(first: $first, after: $after) { edges { cursor node { id operation } } } } }`, variables: { first: 5, after: 'bm90LWEtY3Vyc29y' } },
    { name: 'installs', query: `{ installs(first: 10) { edges { cursor node { id } } pageInfo { hasNextPage } } }` },
    {
      name: 'upsertInstall',
      query: `mutation($input: UpsertInstallInput!) { upsertInstall(input: $input) { id quota { maxBytes } } }`,
      variables: { input: { id: '00000000-0000-4000-8000-000000000001', extensionId: 'x', enabled: true, canRead: true, canWrite: true, quota: { maxBytes: 999999999 } } },
      noAdmin: true,
    },
    {
      name: 'setNamespaceSchema',
      query: `mutation($input: SetNamespaceSchemaInput!) { setNamespaceSchema(input: $input) { __typename ... on ValidationFailed { issues { path } } } }`,
      variables: { input: { installId: '00000000-0000-4000-8000-000000000002', namespace: 'full', schema: { type: 'string' } } },
    },
    { name: 'introspection', query: `{ __schema { queryType { name } types { name kind fields { name args { name type { name } } } } } }` },
    { name: 'aliases', query: `{ ${Array.from({ length: 40 }, (_, i) => `a${i}: install { id }`).join(' ')} }` },
    { name: 'deep selection', query: `{ install { ${'namespace(name: "full") { schema { schema } '.repeat(3)}${'}'.repeat(3)} } }` },
    { name: 'fragments', query: `query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }` },
    { name: 'deep document', query: `{ install ${'{ id '.repeat(3000)}${'}'.repeat(3000)} }` },
    { name: 'two operations', query: `query A { install { id } } mutation B { deleteRecord(input: { namespace: "full", key: "target-key" }) { __typename } }`, operationName: 'B' },
    { name: 'subscription', query: `subscription { install { id } }` },
  ];
}

// ---------------------------------------------------------------------------------- requests

type VariableSwap = { pick: number; raw: string };

const rawValueArb = fc.oneof(
  fc.constantFrom(...ODD_NUMBERS),
  fc.constantFrom('"str"', 'true', 'false', 'null', '[]', '{}', '[1,"a",null]', '{"__proto__":{"x":1}}', '"\\ud800"', '"\\u0000"', '"2026-13-45"', '""', '"   "'),
  fc.constantFrom('huge', 'deepArray', 'deepObject'),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
);

function expandRaw(raw: string): string {
  if (raw === 'huge') return JSON.stringify(HUGE_STRING);
  if (raw === 'deepArray') return deepJson(5000, 'array');
  if (raw === 'deepObject') return deepJson(5000, 'object');
  return raw;
}

type DocEdit = { t: 'delete' | 'duplicate' | 'swap'; at: number; n: number } | { t: 'insert'; at: number; text: string };
const docEditArb: fc.Arbitrary<DocEdit> = fc.oneof(
  fc.record({ t: fc.constantFrom<'delete' | 'duplicate' | 'swap'>('delete', 'duplicate', 'swap'), at: fc.nat(), n: fc.integer({ min: 1, max: 6 }) }),
  fc.record({ t: fc.constant('insert' as const), at: fc.nat(), text: fc.constantFrom('{', '}', '(', ')', '[', ']', ':', '$', '!', '@skip(if: true)', '...', '"', '"""', '#', 'query', 'mutation', '__typename', 'String', '1e400', '\u0000', '\ufeff', ' ') }),
);

function editDocument(doc: string, edits: DocEdit[]): string {
  let out = doc;
  for (const e of edits) {
    const at = e.at % (out.length + 1);
    if (e.t === 'delete') out = out.slice(0, at) + out.slice(at + e.n);
    else if (e.t === 'duplicate') out = out.slice(0, at) + out.slice(at, at + e.n) + out.slice(at);
    else if (e.t === 'swap') out = out.slice(0, at) + out.slice(at + e.n, at + 2 * e.n) + out.slice(at, at + e.n) + out.slice(at + 2 * e.n);
    else if (e.t === 'insert') out = out.slice(0, at) + e.text + out.slice(at);
  }
  return out;
}

const SHAPES = ['object', 'random json', 'array of operations', 'query not a string', 'variables not an object', 'operationName odd', 'extensions', 'empty'] as const;

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/graphql-response+json',
  'application/graphql+json',
  'application/json; charset=latin1',
  'APPLICATION/JSON',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=xyz',
  'multipart/form-data',
  'application/graphql',
  'application/octet-stream',
  '',
  'application/json, text/plain',
  ';;;',
];
const ACCEPTS = ['application/json', 'application/graphql-response+json', 'text/html', 'text/event-stream', 'multipart/mixed', '*/*', 'image/png', '', 'application/json;q=0, */*;q=0'];
const AUTHS = ['rw', 'read', 'write', 'readOnlyInstall', 'otherAdmin', 'expired', 'wrongSecret', 'unknownInstall', 'none', 'garbage', 'basic', 'bearerOnly', 'lowercase', 'runner', 'runnerNoInstall', 'runnerBadInstall'] as const;
const METHODS = ['POST', 'POST', 'POST', 'POST', 'GET', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'FOO', 'get'];
const PATHS = ['/graphql', '/graphql', '/graphql', '/graphql/', '/GRAPHQL', '/graphql?', '/graphql?x=%ff', '/graphql?query=%7B', '/graphql%00', '/%ff%fe', '/graphql?variables=%7B%22a', '/graphql#frag', '//graphql'];

const requestArb = fc.record({
  seed: fc.nat(),
  shape: fc.oneof({ weight: 12, arbitrary: fc.constant('object' as const) }, { weight: 1, arbitrary: fc.constantFrom(...SHAPES) }),
  random: fc.jsonValue({ maxDepth: 3 }),
  docEdits: fc.oneof({ weight: 3, arbitrary: fc.constant([] as DocEdit[]) }, { weight: 1, arbitrary: fc.array(docEditArb, { minLength: 1, maxLength: 3 }) }),
  swaps: fc.oneof({ weight: 1, arbitrary: fc.constant([] as VariableSwap[]) }, { weight: 1, arbitrary: fc.array(fc.record({ pick: fc.nat(), raw: rawValueArb }), { minLength: 1, maxLength: 2 }) }),
  damage: fc.oneof({ weight: 8, arbitrary: fc.constant([] as Damage[]) }, { weight: 1, arbitrary: fc.array(damageArb, { minLength: 1, maxLength: 3 }) }),
  method: fc.oneof({ weight: 12, arbitrary: fc.constant('POST') }, { weight: 1, arbitrary: fc.constantFrom(...METHODS) }),
  path: fc.oneof({ weight: 16, arbitrary: fc.constant('/graphql') }, { weight: 1, arbitrary: fc.constantFrom(...PATHS) }),
  contentTypes: fc.oneof(
    { weight: 12, arbitrary: fc.constant<string[]>(['application/json']) },
    { weight: 1, arbitrary: fc.array(fc.constantFrom(...CONTENT_TYPES), { minLength: 0, maxLength: 2 }) },
  ),
  auths: fc.oneof(
    { weight: 12, arbitrary: fc.constant(['rw' as (typeof AUTHS)[number]]) },
    { weight: 6, arbitrary: fc.constantFrom(...AUTHS).map((a) => [a]) },
    { weight: 1, arbitrary: fc.array(fc.constantFrom(...AUTHS), { minLength: 2, maxLength: 3 }) }),
  accept: fc.option(fc.constantFrom(...ACCEPTS), { freq: 4 }),
  extraHeaders: fc.oneof({ weight: 4, arbitrary: fc.constant([] as Array<[string, string]>) }, { weight: 1, arbitrary: fc.array(
    fc.constantFrom<[string, string]>(
      ['x-request-id', 'a'.repeat(300)],
      ['x-request-id', '../../etc'],
      ['x-install-id', 'not-a-uuid'],
      ['content-encoding', 'gzip'],
      ['content-encoding', 'deflate'],
      ['content-encoding', 'br'],
      ['content-encoding', 'identity, gzip'],
      ['origin', 'https://evil.example'],
      ['x-forwarded-for', '1.2.3.4'],
      ['expect', '100-continue'],
      ['x-very-long', 'v'.repeat(12_000)],
      ['graphql-require-preflight', 'true'],
      ['apollo-require-preflight', 'x'],
      ['x-runner-auth', ''],
      ['content-type', 'application/json'],
    ),
    { minLength: 1, maxLength: 2 },
  ) }),
  chunkedPick: fc.integer({ min: 0, max: 9 }),
});

type RequestSpec = typeof requestArb extends fc.Arbitrary<infer T> ? T : never;

function authHeaders(auth: (typeof AUTHS)[number]): Array<[string, string]> {
  switch (auth) {
    case 'none':
      return [];
    case 'garbage':
      return [['authorization', 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.garbage']];
    case 'basic':
      return [['authorization', 'Basic dXNlcjpwYXNz']];
    case 'bearerOnly':
      return [['authorization', 'Bearer']];
    case 'lowercase':
      return [['authorization', `bearer  ${tokens.rw}`]];
    case 'runner':
      return [['x-runner-auth', t.runnerToken], ['x-install-id', full.id]];
    case 'runnerNoInstall':
      return [['x-runner-auth', t.runnerToken]];
    case 'runnerBadInstall':
      return [['x-runner-auth', 'second-runner-token'], ['x-install-id', `${full.id}x`]];
    default:
      return [['authorization', `Bearer ${tokens[auth]}`]];
  }
}

function buildRequest(spec: RequestSpec): { req: RawRequest; what: string } {
  const all = seeds();
  const seed = all[spec.seed % all.length]!;
  const query = editDocument(seed.query, spec.docEdits);
  let variablesText = seed.variables === undefined ? undefined : JSON.stringify(seed.variables);
  if (spec.swaps.length > 0 && seed.variables) variablesText = withRawAt(seed.variables, spec.swaps.map((w) => ({ pick: w.pick, raw: expandRaw(w.raw) })));
  let bodyText: string;
  switch (spec.shape) {
    case 'object':
      bodyText = `{"query":${JSON.stringify(query)}${variablesText === undefined ? '' : `,"variables":${variablesText}`}${seed.operationName ? `,"operationName":${JSON.stringify(seed.operationName)}` : ''}}`;
      break;
    case 'random json':
      bodyText = JSON.stringify(spec.random);
      break;
    case 'array of operations':
      bodyText = `[{"query":${JSON.stringify(query)}},{"query":"{ install { id } }"}]`;
      break;
    case 'query not a string':
      bodyText = `{"query":${JSON.stringify(spec.random) ?? 'null'}}`;
      break;
    case 'variables not an object':
      bodyText = `{"query":${JSON.stringify(query)},"variables":${JSON.stringify(JSON.stringify(seed.variables ?? {}))}}`;
      break;
    case 'operationName odd':
      bodyText = `{"query":${JSON.stringify(query)},"operationName":${JSON.stringify(spec.random) ?? '7'}}`;
      break;
    case 'extensions':
      bodyText = `{"query":${JSON.stringify(query)},"extensions":{"persistedQuery":{"version":1,"sha256Hash":"abc"}},"variables":${variablesText ?? 'null'}}`;
      break;
    case 'empty':
      bodyText = '';
      break;
  }
  const body = applyDamage(Buffer.from(bodyText, 'utf8'), spec.damage);
  const admin = spec.auths.some((a) => a === 'otherAdmin');
  const auths = seed.noAdmin && admin ? spec.auths.filter((a) => a !== 'otherAdmin') : spec.auths;
  let path = spec.path;
  const method = spec.method;
  if (method === 'GET' || method === 'get') {
    const params = new URLSearchParams({ query });
    if (variablesText !== undefined && variablesText.length < 4000) params.set('variables', variablesText);
    path = `${spec.path.split('?')[0]}?${params.toString()}`;
  }
  const headers: Array<[string, string]> = [
    ...spec.contentTypes.map((c): [string, string] => ['content-type', c]),
    ...auths.flatMap(authHeaders),
    ...(spec.accept === null ? [] : ([['accept', spec.accept]] as Array<[string, string]>)),
    ...spec.extraHeaders,
  ];
  const withBody = method !== 'GET' && method !== 'get' && method !== 'HEAD';
  return {
    req: { method, path, headers, body: withBody ? body : undefined, chunked: withBody && spec.chunkedPick === 0 },
    what: `${method} ${path.slice(0, 120)} [${seed.name}; shape ${spec.shape}; edits ${JSON.stringify(spec.docEdits)}; swaps ${JSON.stringify(spec.swaps).slice(0, 200)}; damage ${JSON.stringify(spec.damage)}] headers ${JSON.stringify(headers.map(([k, v]) => [k, v.slice(0, 40)]))} body ${body.subarray(0, 300).toString('utf8')}`,
  };
}

async function send(spec: RequestSpec): Promise<void> {
  const { req, what } = buildRequest(spec);
  const res = await rawRequest(t.url, req).catch((error: Error) => {
    throw new Error(`${error.message}: ${what}`);
  });
  sent++;
  const typename = /"__typename":"(\w+)"/.exec(res.text)?.[1];
  const code = /"code":"(\w+)"/.exec(res.text)?.[1];
  const key = `${res.status} ${typename ?? code ?? "-"}${code === "BAD_REQUEST" ? ` ${/"message":"([^"]{0,90})/.exec(res.text)?.[1]}` : ""}`;
  outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  checkAnswer(res, `${req.path}\n${req.body?.toString('utf8') ?? ''}`, secrets, what);
}

describe('fuzzing /graphql', () => {
  it('answers thousands of random and damaged requests below 500, leaks nothing, stays up and writes nothing', async () => {
    const before = [await snapshot(t, full.id, full.tenantId), await snapshot(t, readOnly.id, readOnly.tenantId)];
    const otherInstalls = await t.gql(`{ installs(first: 100) { edges { node { id } } } }`, {}, { token: tokens.otherAdmin! });
    await fuzz(
      fc.asyncProperty(fc.array(requestArb, { minLength: 6, maxLength: 6 }), async (specs) => {
        await Promise.all(specs.map(send));
        await expectHealthy(t.url);
      }),
      250,
    );
    if (process.env.FC_VERBOSE) console.log([...outcomes.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n}\t${k}`).join('\n'));
    expect(sent).toBeGreaterThanOrEqual(1000);
    const after = [await snapshot(t, full.id, full.tenantId), await snapshot(t, readOnly.id, readOnly.tenantId)];
    expectUnchanged(before, after);
    expect((await t.gql(`{ installs(first: 100) { edges { node { id } } } }`, {}, { token: tokens.otherAdmin! })).body).toEqual(otherInstalls.body);
  }, 600_000);
});

describe('targeted bad input on /graphql', () => {
  const PUT = `mutation($input: PutRecordInput!) { putRecord(input: $input) { ${PUT_RESULT} } }`;

  it('refuses a body with invalid UTF-8 instead of repairing it, and writes nothing', async () => {
    const roomy = await t.createInstall();
    const token = await roomy.token();
    for (const bad of INVALID_UTF8) {
      const text = JSON.stringify({ query: PUT, variables: { input: { namespace: 'ns', key: 'KEY', value: 'VALUE' } } });
      for (const target of ['KEY', 'VALUE']) {
        const i = text.indexOf(target) + 1;
        const body = Buffer.concat([Buffer.from(text.slice(0, i)), bad, Buffer.from(text.slice(i))]);
        const res = await rawRequest(t.url, { method: 'POST', path: '/graphql', headers: [['content-type', 'application/json'], ['authorization', `Bearer ${token}`]], body });
        checkAnswer(res, text, secrets, `invalid UTF-8 ${bad.toString('hex')} in ${target}`);
        expect(res.status, `invalid UTF-8 ${bad.toString('hex')} in ${target}: ${res.text}`).toBe(400);
      }
    }
    const usage = await t.gql(`query($id: ID) { install(id: $id) { usage { keys } } }`, { id: roomy.id }, { token: await t.adminToken() });
    expect(usage.body.data.install.usage.keys).toBe(0);
  });

  it('answers 5,000- and 50,000-deep JSON variables and 1 MB strings with a clear error', async () => {
    const token = tokens.rw!;
    for (const depth of [5000, 50_000]) {
      for (const kind of ['array', 'object'] as const) {
        const body = `{"query":${JSON.stringify(PUT)},"variables":{"input":{"namespace":"other","key":"deep","value":${deepJson(depth, kind)}}}}`;
        const res = await rawRequest(t.url, { method: 'POST', path: '/graphql', headers: [['content-type', 'application/json'], ['authorization', `Bearer ${token}`]], body: Buffer.from(body) });
        checkAnswer(res, body, secrets, `depth ${depth} ${kind}`);
        // Refused before parsing (contract: JSON nesting deeper than 64 levels in variables is 400).
        expect(res.status).toBe(400);
        expect(JSON.parse(res.text).errors[0].extensions.code).toBe('BAD_REQUEST');
        const asVariables = `{"query":${JSON.stringify(PUT)},"variables":${deepJson(depth, kind)}}`;
        const res2 = await rawRequest(t.url, { method: 'POST', path: '/graphql', headers: [['content-type', 'application/json'], ['authorization', `Bearer ${token}`]], body: Buffer.from(asVariables) });
        checkAnswer(res2, asVariables, secrets, `variables ${depth} deep ${kind}`);
        expect(JSON.parse(res2.text).errors?.length, res2.text.slice(0, 300)).toBeGreaterThan(0);
      }
    }
    const huge = JSON.stringify({ query: PUT, variables: { input: { namespace: 'other', key: HUGE_STRING, value: HUGE_STRING } } });
    const res = await rawRequest(t.url, { method: 'POST', path: '/graphql', headers: [['content-type', 'application/json'], ['authorization', `Bearer ${token}`]], body: Buffer.from(huge) });
    checkAnswer(res, huge.slice(0, 100), secrets, '1 MB key and value');
    expect(JSON.parse(res.text).data.putRecord).toMatchObject({ __typename: 'LimitExceeded', limit: 'keyLength' });
    expect(res.text.length, 'the answer does not echo a megabyte').toBeLessThan(10_000);
    await expectHealthy(t.url);
  });
});
