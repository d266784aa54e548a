/**
 * Relay global object identification, totalCount, PageInfo and keys-only pages (contract, "Reads":
 * global ids, totalCount, recordList).
 */
import { randomUUID } from 'node:crypto';
import type { LogEvent } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeGlobalId, namespaceGlobalId, recordGlobalId } from '../../src/storage/global-id.js';
import { startTestApp, type GqlResult, type TestApp } from '../support/app.js';
import { dataOf, errorOf, extensionClient, sleep, type ExtensionClient } from '../records/client.js';

/** Every statement the data layer sends, as Kysely compiled it. */
const statements: string[] = [];
const observe = (event: LogEvent) => {
  if (event.level === 'query') statements.push(event.query.sql);
};

/** The statements one call sends (the tests of a file run one at a time). */
async function sqlOf<T>(run: () => Promise<T>): Promise<{ result: T; sql: string[] }> {
  statements.length = 0;
  const result = await run();
  return { result, sql: [...statements] };
}

/** Small enough that two 40 KB values overflow it, large enough for everything else here. */
const MAX_RESPONSE_BYTES = 60_000;

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ STORAGE_MIN_TTL_SECONDS: '1', STORAGE_MAX_RESPONSE_BYTES: String(MAX_RESPONSE_BYTES) }, [observe]);
});
afterAll(async () => {
  await t?.close();
});

const UUID_SHAPE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
const RECORD = 'id installId namespace key value metadata revision schemaVersion ttlExpiresAt createdAt updatedAt';
const NODE = `query Node($id: ID!) {
  node(id: $id) {
    __typename id
    ... on Record { ${RECORD} }
    ... on Namespace { name keyCount bytesUsed }
    ... on Install { tenantId extensionId enabled capabilities { read write namespaces } }
  }
}`;

const nodeOf = (c: { gql(q: string, v?: Record<string, unknown>): Promise<GqlResult> }, id: string) => c.gql(NODE, { id });

const recordId = async (c: ExtensionClient, namespace: string, key: string): Promise<string> =>
  dataOf(await c.gql('query($ns: String!, $k: String!) { record(namespace: $ns, key: $k) { id } }', { ns: namespace, k: key })).record.id;

/** An answer refused with one field error of this code, and null where the node would be. */
function expectRefused(res: GqlResult, code: string) {
  expect(res.status).toBe(200);
  expect(errorOf(res).extensions.code).toBe(code);
  expect(res.body.data).toEqual({ node: null });
}

describe('global ids', () => {
  let c: ExtensionClient;
  beforeAll(async () => {
    c = await extensionClient(t);
  });

  it('a record has one id wherever it comes from: record, records, recordList, namespace(name), putRecord, bulkPutRecords', async () => {
    const put = await c.put({ namespace: 'ids', key: 'a/b', value: 1 });
    expect(put.__typename).toBe('PutRecordSuccess');
    const bulk = dataOf(
      await c.gql('mutation { bulkPutRecords(input: { namespace: "ids", items: [{ key: "a/b", value: 2 }] }) { ... on BulkPutRecordsSuccess { records { id installId } } } }'),
    ).bulkPutRecords.records[0];
    const putId = dataOf(await c.gql('mutation { putRecord(input: { namespace: "ids", key: "a/b", value: 3 }) { ... on PutRecordSuccess { record { id installId } } } }')).putRecord.record;
    const read = dataOf(
      await c.gql(`{
        record(namespace: "ids", key: "a/b") { id installId revision }
        records(namespace: "ids", keys: ["a/b"]) { id }
        recordList(namespace: "ids") { edges { node { id } } }
        install { id namespace(name: "ids") { id record(key: "a/b") { id } recordList { edges { node { id } } } } }
      }`),
    );
    const id = read.record.id as string;
    expect(read.record.revision).toBe(3);
    expect([bulk.id, putId.id, read.records[0].id, read.recordList.edges[0].node.id, read.install.namespace.record.id, read.install.namespace.recordList.edges[0].node.id]).toEqual(Array(6).fill(id));
    expect([read.record.installId, bulk.installId, putId.installId]).toEqual(Array(3).fill(c.install.id));
    expect(read.install.id).toBe(c.install.id);
    expect(read.install.namespace.id).not.toBe(id);
    for (const x of [id, read.install.namespace.id]) {
      expect(x).not.toMatch(UUID_SHAPE);
      expect(x).not.toContain(c.install.id);
    }
  });

  it('stays the same across revisions and across delete and re-create of the key', async () => {
    await c.put({ namespace: 'ids', key: 'stable', value: 1 });
    const first = await recordId(c, 'ids', 'stable');
    await c.put({ namespace: 'ids', key: 'stable', value: { changed: true }, metadata: { m: 1 } });
    expect(await recordId(c, 'ids', 'stable')).toBe(first);
    expect((await c.del({ namespace: 'ids', key: 'stable' })).deleted).toBe(true);
    const again = await c.put({ namespace: 'ids', key: 'stable', value: 'new', ifRevision: 0 });
    expect(again.record.revision).toBe(1);
    expect(await recordId(c, 'ids', 'stable')).toBe(first);
  });

  it('differs between keys, namespaces and installs, however their names could be confused', async () => {
    const other = await extensionClient(t);
    const keys = ['a', 'a/b', 'a\\b', 'a"b', 'ab', 'b', '😀', 'e\u0301', '\u00e9', 'a/b/'];
    for (const key of keys) {
      await c.put({ namespace: 'n1', key, value: 1 });
      await c.put({ namespace: 'n2', key, value: 1 });
      await other.put({ namespace: 'n1', key, value: 1 });
    }
    const ids = new Set<string>();
    for (const key of keys) {
      ids.add(await recordId(c, 'n1', key));
      ids.add(await recordId(c, 'n2', key));
      ids.add(await recordId(other, 'n1', key));
    }
    expect(ids.size).toBe(keys.length * 3);
    const namespaceIds = dataOf(await c.gql('{ install { a: namespace(name: "n1") { id } b: namespace(name: "n2") { id } } }')).install;
    const otherNs = dataOf(await other.gql('{ install { namespace(name: "n1") { id } } }')).install.namespace.id;
    expect(new Set([namespaceIds.a.id, namespaceIds.b.id, otherNs, ...ids]).size).toBe(keys.length * 3 + 3);
  });

  it('encodes and decodes in one place: every id decodes to what it names', () => {
    const install = randomUUID();
    const limits = { maxKeyLength: 256 };
    for (const key of ['k', 'a/b', '"\\', '😀'.repeat(256), 'x'.repeat(256)]) {
      expect(decodeGlobalId(recordGlobalId(install, 'ns', key), limits)).toEqual({ type: 'Record', installId: install, namespace: 'ns', key });
    }
    expect(decodeGlobalId(namespaceGlobalId(install, 'ns.x-1_'), limits)).toEqual({ type: 'Namespace', installId: install, namespace: 'ns.x-1_' });
    expect(decodeGlobalId(install.toUpperCase(), limits)).toEqual({ type: 'Install', installId: install });
  });
});

describe('node(id) returns the object the originating field returns', () => {
  it('for a record, a namespace and an install, to the extension and to an admin of the tenant', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'same', key: 'k/1', value: { deep: [1, 'two'] }, metadata: { tag: 'x' }, ttlSeconds: 3600 });
    const admin = { gql: async (q: string, v?: Record<string, unknown>) => t.gql(q, v, { token: await t.adminToken() }) };
    for (const who of [c, admin]) {
      const origin = dataOf(
        await who.gql(
          `query($id: ID!) {
            record(namespace: "same", key: "k/1", installId: $id) { __typename ${RECORD} }
            install(id: $id) { __typename id tenantId extensionId enabled capabilities { read write namespaces }
              namespace(name: "same") { __typename id name keyCount bytesUsed } }
          }`,
          { id: c.install.id },
        ),
      );
      expect(dataOf(await nodeOf(who, origin.record.id)).node).toEqual(origin.record);
      const { namespace, ...install } = origin.install;
      expect(dataOf(await nodeOf(who, namespace.id)).node).toEqual(namespace);
      expect(dataOf(await nodeOf(who, install.id)).node).toEqual(install);
      // Ids are compared case-insensitively, as install(id) compares them.
      expect(dataOf(await nodeOf(who, install.id.toUpperCase())).node).toEqual(install);
    }
  });

  it('a namespace that holds nothing comes back empty, as install.namespace(name) does', async () => {
    const c = await extensionClient(t);
    const id = namespaceGlobalId(c.install.id, 'empty');
    expect(dataOf(await nodeOf(c, id)).node).toEqual({ __typename: 'Namespace', id, name: 'empty', keyCount: 0, bytesUsed: 0 });
  });

  it('a record deleted since is null, without an error', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'gone', key: 'k', value: 1 });
    const id = await recordId(c, 'gone', 'k');
    await c.del({ namespace: 'gone', key: 'k' });
    expect(dataOf(await nodeOf(c, id)).node).toBeNull();
    // A key never written: the same.
    expect(dataOf(await nodeOf(c, recordGlobalId(c.install.id, 'gone', 'never'))).node).toBeNull();
  });

  it('an expired record is null at once', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ttl', key: 'k', value: 1, ttlSeconds: 1 });
    const id = await recordId(c, 'ttl', 'k');
    expect(dataOf(await nodeOf(c, id)).node.key).toBe('k');
    await sleep(1300);
    expect(dataOf(await nodeOf(c, id)).node).toBeNull();
  });
});

describe('node(id) is refused exactly where the originating field is', () => {
  let owner: ExtensionClient;
  let ids: { record: string; namespace: string; install: string };
  beforeAll(async () => {
    owner = await extensionClient(t, { namespaces: ['open'] });
    await owner.put({ namespace: 'open', key: 'k', value: 1 });
    ids = { record: await recordId(owner, 'open', 'k'), namespace: namespaceGlobalId(owner.install.id, 'open'), install: owner.install.id };
  });

  it('an extension asking for another install of its tenant: FORBIDDEN', async () => {
    const other = await extensionClient(t);
    for (const id of Object.values(ids)) expectRefused(await nodeOf(other, id), 'FORBIDDEN');
    expect(errorOf(await other.gql('query($id: ID) { install(id: $id) { id } }', { id: ids.install })).extensions.code).toBe('FORBIDDEN');
  });

  it('an admin of another tenant: FORBIDDEN, as for an install that does not exist', async () => {
    const stranger = await t.adminToken(randomUUID());
    for (const id of Object.values(ids)) expectRefused(await t.gql(NODE, { id }, { token: stranger }), 'FORBIDDEN');
    const admin = await t.adminToken();
    const unknown = randomUUID();
    for (const id of [unknown, namespaceGlobalId(unknown, 'open'), recordGlobalId(unknown, 'open', 'k')]) {
      expectRefused(await t.gql(NODE, { id }, { token: admin }), 'FORBIDDEN');
      expectRefused(await owner.gql(NODE, { id }), 'FORBIDDEN');
    }
  });

  it('without read capability: records and namespaces FORBIDDEN, the install itself readable (as install(id))', async () => {
    const writeOnly = await owner.install.token('storage:write');
    const as = (id: string) => t.gql(NODE, { id }, { token: writeOnly });
    expectRefused(await as(ids.record), 'FORBIDDEN');
    expectRefused(await as(ids.namespace), 'FORBIDDEN');
    expect(dataOf(await as(ids.install)).node.id).toBe(owner.install.id);
    expect(errorOf(await t.gql('{ record(namespace: "open", key: "k") { id } }', {}, { token: writeOnly })).extensions.code).toBe('FORBIDDEN');
    // An install without the read capability: the same.
    const noRead = await extensionClient(t, { canRead: false });
    expectRefused(await nodeOf(noRead, namespaceGlobalId(noRead.install.id, 'open')), 'FORBIDDEN');
    expectRefused(await nodeOf(noRead, recordGlobalId(noRead.install.id, 'open', 'k')), 'FORBIDDEN');
  });

  it('a namespace outside the install allow-list: FORBIDDEN, even for a record an admin wrote there', async () => {
    await t.app.storage.putRecord(t.adminCaller(), { installId: owner.install.id, namespace: 'closed', key: 'k', value: 1 });
    const admin = await t.adminToken();
    const closed = dataOf(await t.gql('query($i: ID) { record(namespace: "closed", key: "k", installId: $i) { id } }', { i: owner.install.id }, { token: admin })).record.id;
    expect(dataOf(await t.gql(NODE, { id: closed }, { token: admin })).node.key).toBe('k');
    expectRefused(await nodeOf(owner, closed), 'FORBIDDEN');
    expectRefused(await nodeOf(owner, namespaceGlobalId(owner.install.id, 'closed')), 'FORBIDDEN');
    expect(errorOf(await owner.gql('{ record(namespace: "closed", key: "k") { id } }')).extensions.code).toBe('FORBIDDEN');
  });
});

describe('a malformed id is BAD_USER_INPUT, never a 500', () => {
  const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64url');

  it('refuses hostile shapes, other spellings of real ids, and ids with edited parts', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'real', key: 'k', value: 1 });
    const real = await recordId(c, 'real', 'k');
    const realNs = namespaceGlobalId(c.install.id, 'real');
    const install = c.install.id;
    const parts = (id: string) => JSON.parse(Buffer.from(id.replace(/^(rec|ns)_/, ''), 'base64url').toString('utf8')) as string[];
    const shapes: string[] = [
      '',
      ' ',
      'x',
      'rec_',
      'ns_',
      'rec',
      'Record:1',
      'rec_!!!',
      'rec_a b',
      `rec_${b64('not json')}`,
      `rec_${b64('null')}`,
      `rec_${b64('{}')}`,
      `rec_${b64('[1,2,3]')}`,
      `rec_${b64(JSON.stringify([install, 'real']))}`, // a namespace's parts under the record prefix
      `ns_${b64(JSON.stringify([install, 'real', 'k']))}`, // and the other way round
      `rec_${b64(JSON.stringify([install, 'real', 'k', 'extra']))}`,
      `rec_${b64(install)}`, // a bare UUID behind a prefix
      `rec_${b64(JSON.stringify(['not-a-uuid', 'real', 'k']))}`,
      `rec_${b64(JSON.stringify([install.toUpperCase(), 'real', 'k']))}`, // another spelling of the same parts
      `rec_${b64(JSON.stringify([install, 'Real', 'k']))}`, // namespace format
      `rec_${b64(JSON.stringify([install, '', 'k']))}`,
      `rec_${b64(JSON.stringify([install, 'real', '']))}`, // key length
      `rec_${b64(JSON.stringify([install, 'real', 'x'.repeat(257)]))}`,
      `rec_${b64(JSON.stringify([install, 'real', 'a\u0001b']))}`, // control character
      `rec_${b64('["' + install + '","real","\\ud800"]')}`, // lone surrogate
      `rec_${b64(' ' + JSON.stringify(parts(real)))}`, // JSON spacing
      `rec_${b64(JSON.stringify(parts(real)).replace('"k"', '"\\u006b"'))}`, // JSON escape
      `rec_${b64(Buffer.from([0x5b, 0x22, 0xff, 0xfe, 0x22, 0x5d]))}`, // not UTF-8
      `${real}=`, // padding
      `${real}A`,
      real.slice(0, -1),
      real.toUpperCase(),
      `${real} `,
      ` ${install}`,
      `${install}x`,
      install.replace(/-/g, ''),
      realNs.replace(/^ns_/, 'rec_'),
      real.replace(/^rec_/, 'ns_'),
      'rec_' + 'A'.repeat(1_000_000), // huge
      '\u0000',
      '😀',
    ];
    for (const id of shapes) {
      const res = await nodeOf(c, id);
      expect(res.status, JSON.stringify(id.slice(0, 80))).toBe(200);
      expect(errorOf(res).extensions.code, JSON.stringify(id.slice(0, 80))).toBe('BAD_USER_INPUT');
      expect(errorOf(res).message).not.toMatch(/select|ext_storage|stack|at .*\.ts/i);
      expect(res.body.data).toEqual({ node: null });
    }
    // An Int literal is an ID too.
    expect(errorOf(await c.gql('{ node(id: 12345) { id } }')).extensions.code).toBe('BAD_USER_INPUT');
    // The real ones still work.
    expect(dataOf(await nodeOf(c, real)).node.key).toBe('k');
    expect(dataOf(await nodeOf(c, realNs)).node.name).toBe('real');
  });
});

describe('RecordConnection.totalCount', () => {
  const COUNTS = `query($ns: String!, $p: String) {
    all: recordList(namespace: $ns, first: 1) { totalCount }
    some: recordList(namespace: $ns, prefix: $p, first: 1) { totalCount edges { node { key } } }
    install { namespace(name: $ns) { recordList(prefix: $p) { totalCount } } }
  }`;

  it('counts the live records matching the prefix, or the whole namespace, not just the page; never the expired ones', async () => {
    const c = await extensionClient(t);
    await c.bulk('cnt', ['a/1', 'a/2', 'a/3', 'b/1', 'a%', 'ab'].map((key) => ({ key, value: key })));
    await c.put({ namespace: 'cnt', key: 'a/brief', value: 1, ttlSeconds: 1 });
    await c.put({ namespace: 'other', key: 'a/1', value: 1 });
    const before = dataOf(await c.gql(COUNTS, { ns: 'cnt', p: 'a/' }));
    expect(before.all.totalCount).toBe(7);
    expect(before.some).toEqual({ totalCount: 4, edges: [{ node: { key: 'a/1' } }] });
    expect(before.install.namespace.recordList.totalCount).toBe(4);
    await sleep(1300);
    const after = dataOf(await c.gql(COUNTS, { ns: 'cnt', p: 'a/' }));
    expect([after.all.totalCount, after.some.totalCount, after.install.namespace.recordList.totalCount]).toEqual([6, 3, 3]);
    // LIKE's wildcards are plain characters in a prefix.
    expect(dataOf(await c.gql(COUNTS, { ns: 'cnt', p: 'a%' })).some.totalCount).toBe(1);
    expect(dataOf(await c.gql(COUNTS, { ns: 'cnt', p: 'zz' })).some).toEqual({ totalCount: 0, edges: [] });
    expect(dataOf(await c.gql(COUNTS, { ns: 'never', p: null })).all.totalCount).toBe(0);
  });

  it('is checked like the page: a malformed prefix or namespace is LIMIT_EXCEEDED, another install FORBIDDEN', async () => {
    const c = await extensionClient(t);
    expect(errorOf(await c.gql('{ recordList(namespace: "cnt", prefix: "a\\u0001") { totalCount } }')).extensions.limit).toBe('keyFormat');
    expect(errorOf(await c.gql('{ recordList(namespace: "BAD") { totalCount } }')).extensions.limit).toBe('namespaceFormat');
    expect(errorOf(await c.gql('query($i: ID) { recordList(namespace: "cnt", installId: $i) { totalCount } }', { i: randomUUID() })).extensions.code).toBe('FORBIDDEN');
  });

  it('stays exact with writers racing it', async () => {
    const c = await extensionClient(t);
    const N = 20;
    const counts: number[] = [];
    const count = async () => counts.push(dataOf(await c.gql('{ recordList(namespace: "race") { totalCount } }')).recordList.totalCount);
    await Promise.all([...Array.from({ length: N }, (_, i) => c.put({ namespace: 'race', key: `k${i}`, value: i })), count(), count(), count(), count()]);
    for (const n of counts) expect(n >= 0 && n <= N).toBe(true);
    await count();
    expect(counts.at(-1)).toBe(N);
  });

  it('runs its count only when selected, and the count reads neither value nor metadata', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'q', key: 'k', value: 'v' });
    const without = await sqlOf(() => c.gql('{ recordList(namespace: "q") { edges { node { key value } } } }'));
    expect(without.sql.filter((s) => /count\(\*\)/i.test(s))).toEqual([]);
    const withCount = await sqlOf(() => c.gql('{ recordList(namespace: "q") { totalCount } }'));
    expect(dataOf(withCount.result).recordList.totalCount).toBe(1);
    const counts = withCount.sql.filter((s) => /count\(\*\)/i.test(s));
    expect(counts).toHaveLength(1);
    expect(counts[0]).toMatch(/^SELECT count\(\*\)::int AS n FROM ext_storage_records WHERE tenant_id = \$1/);
    expect(counts[0]).not.toMatch(/"?\b(value|metadata)(_bytes)?\b"?/);
  });
});

describe('PageInfo', () => {
  const PAGE = `query($ns: String!, $p: String, $after: String) {
    recordList(namespace: $ns, prefix: $p, first: 2, after: $after) {
      edges { cursor node { key } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }`;

  it('on full, partial and empty pages: hasPreviousPage false, startCursor the first edge cursor (null when empty)', async () => {
    const c = await extensionClient(t);
    await c.bulk('pi', ['a', 'b', 'c', 'd', 'e'].map((key) => ({ key, value: 1 })));
    const pages = [];
    let after: string | null = null;
    do {
      const page: { edges: Array<{ cursor: string; node: { key: string } }>; pageInfo: Record<string, unknown> } = dataOf(await c.gql(PAGE, { ns: 'pi', after })).recordList;
      pages.push(page);
      expect(page.pageInfo).toEqual({
        hasNextPage: pages.length < 3,
        hasPreviousPage: false,
        startCursor: page.edges[0]!.cursor,
        endCursor: page.edges.at(-1)!.cursor,
      });
      after = page.pageInfo.hasNextPage ? (page.pageInfo.endCursor as string) : null;
    } while (after);
    expect(pages.map((p) => p.edges.length)).toEqual([2, 2, 1]);
    const empty = dataOf(await c.gql(PAGE, { ns: 'pi', p: 'zz' })).recordList;
    expect(empty).toEqual({ edges: [], pageInfo: { hasNextPage: false, hasPreviousPage: false, startCursor: null, endCursor: null } });
  });

  it('on installs and auditLog pages too', async () => {
    const tenantId = randomUUID();
    const installs = [await t.createInstall({ tenantId }), await t.createInstall({ tenantId }), await t.createInstall({ tenantId })];
    const admin = await t.adminToken(tenantId);
    const q = `query($after: String) { installs(first: 2, after: $after) { edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }`;
    const first = dataOf(await t.gql(q, {}, { token: admin })).installs;
    expect(first.pageInfo).toEqual({ hasNextPage: true, hasPreviousPage: false, startCursor: first.edges[0].cursor, endCursor: first.edges[1].cursor });
    const second = dataOf(await t.gql(q, { after: first.pageInfo.endCursor }, { token: admin })).installs;
    expect(second.pageInfo).toEqual({ hasNextPage: false, hasPreviousPage: false, startCursor: second.edges[0].cursor, endCursor: second.edges[0].cursor });
    expect([...first.edges, ...second.edges].map((e: { node: { id: string } }) => e.node.id)).toEqual(installs.map((i) => i.id).sort());
    const audit = dataOf(
      await t.gql('query($id: ID) { install(id: $id) { auditLog(first: 5) { pageInfo { hasPreviousPage startCursor endCursor } } } }', { id: installs[0]!.id }, { token: admin }),
    ).install.auditLog.pageInfo;
    expect(audit.hasPreviousPage).toBe(false);
    expect(audit.startCursor).toBe(audit.endCursor); // one event: the upsert
  });
});

describe('a page that shows neither value nor metadata reads neither', () => {
  let c: ExtensionClient;
  const big = (n: number) => 'x'.repeat(n);
  beforeAll(async () => {
    c = await extensionClient(t);
    // Two 40 KB values: more than the response budget together.
    await c.put({ namespace: 'big', key: 'a', value: big(40_000), metadata: { m: 1 } });
    await c.put({ namespace: 'big', key: 'b', value: big(40_000) });
  });

  const pageStatements = (sql: string[]) => sql.filter((s) => /from "?ext_storage_records"?/i.test(s) && /order by "?key"?/i.test(s));
  const readsData = (s: string) => /"value"|"metadata"|value_bytes|metadata_bytes/.test(s);

  const KEYS_ONLY = [
    '{ recordList(namespace: "big") { edges { cursor node { id key revision createdAt } } totalCount } }',
    '{ recordList(namespace: "big") { pageInfo { endCursor } } }',
    '{ install { namespace(name: "big") { recordList { edges { node { key } } } } } }',
    // A record's value elsewhere in the query does not make the page read values.
    '{ record(namespace: "big", key: "zz") { value } recordList(namespace: "big") { edges { node { key } } } }',
  ];
  const WITH_DATA = [
    '{ recordList(namespace: "big") { edges { node { key value } } } }',
    '{ recordList(namespace: "big") { edges { node { key m: metadata } } } }',
    '{ recordList(namespace: "big") { edges { node { ...F } } } } fragment F on Record { value }',
    '{ recordList(namespace: "big") { ...C } } fragment C on RecordConnection { edges { ... on RecordEdge { node { ... on Record { metadata } } } } }',
    '{ recordList(namespace: "big") { edges { node { key } } e2: edges { node { v: value @include(if: false) } } } }',
    '{ install { namespace(name: "big") { recordList { edges { node { metadata } } } } } }',
  ];

  it('keys-only pages select no value or metadata column; pages that show either select both', async () => {
    for (const query of KEYS_ONLY) {
      // Three runs: graphql-js, then compiled by graphql-jit (src/graphql/jit.ts) from the second.
      for (let run = 0; run < 3; run++) {
        const { result, sql } = await sqlOf(() => c.gql(query));
        dataOf(result);
        const pages = pageStatements(sql);
        expect(pages, query).toHaveLength(1);
        expect(readsData(pages[0]!), `${query}\n${pages[0]}`).toBe(false);
      }
    }
    for (const query of WITH_DATA) {
      for (let run = 0; run < 3; run++) {
        const { result, sql } = await sqlOf(() => c.gql(query));
        // Both values together are over the budget: the one error, nothing else.
        expect(errorOf(result).extensions.code, query).toBe('RESPONSE_TOO_LARGE');
        const pages = pageStatements(sql);
        expect(pages, query).toHaveLength(1);
        expect(pages[0]).toMatch(/value::text AS value, metadata::text AS metadata/);
      }
    }
  });

  it('a keys-only page loads no value bytes: it fits the response budget the values would overflow', async () => {
    const keys = dataOf(await c.gql(KEYS_ONLY[0]!)).recordList;
    expect(keys.totalCount).toBe(2);
    expect(keys.edges.map((e: { node: { key: string } }) => e.node.key)).toEqual(['a', 'b']);
    expect(keys.edges[0].node.id).toBe(await recordId(c, 'big', 'a'));
    // One value alone fits.
    expect(dataOf(await c.gql('{ recordList(namespace: "big", first: 1) { edges { node { value } } } }')).recordList.edges[0].node.value).toBe(big(40_000));
  });

  it('the Runner list without values or metadata reads neither either', async () => {
    const list = (body: Record<string, unknown>) =>
      fetch(`${t.url}/api/internal/ext-storage/install/${c.install.id}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-runner-auth': t.runnerToken, 'x-install-id': c.install.id },
        body: JSON.stringify({ operation: 'list', namespace: 'big', limit: 1, ...body }),
      }).then(async (r) => ({ status: r.status, body: await r.json() }));
    const keysOnly = await sqlOf(() => list({ includeValues: false, includeMetadata: false }));
    expect(keysOnly.result.status).toBe(200);
    expect(keysOnly.result.body.items.map((i: Record<string, unknown>) => Object.keys(i).sort())).toEqual([['createdAt', 'key', 'namespace', 'revision', 'ttlExpiresAt', 'updatedAt']]);
    expect(readsData(pageStatements(keysOnly.sql)[0]!)).toBe(false);
    const withMeta = await sqlOf(() => list({ includeValues: false }));
    expect(withMeta.result.body.items[0].metadata).toEqual({ m: 1 });
    expect(readsData(pageStatements(withMeta.sql)[0]!)).toBe(true);
  });
});

describe('the fast path and compiled queries answer the new fields as Yoga and graphql-js do', () => {
  it('node, ids, totalCount and pageInfo: the same answer on every path and executor', async () => {
    const c = await extensionClient(t);
    await c.bulk('fp', ['a', 'b', 'c'].map((key) => ({ key, value: { key }, metadata: { k: key } })));
    const recId = await recordId(c, 'fp', 'b');
    const queries = [
      { query: NODE, variables: { id: recId } },
      { query: NODE, variables: { id: namespaceGlobalId(c.install.id, 'fp') } },
      { query: NODE, variables: { id: c.install.id } },
      { query: NODE, variables: { id: 'rec_garbage' } },
      { query: NODE, variables: { id: randomUUID() } },
      {
        query: `{ recordList(namespace: "fp", first: 2) { totalCount edges { cursor node { id installId key } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } }
                  install { id namespace(name: "fp") { id recordList(prefix: "z") { totalCount pageInfo { hasPreviousPage startCursor endCursor } } } } }`,
      },
      { query: '{ recordList(namespace: "fp") { edges { node { key value metadata } } } }' },
    ];
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${t.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${c.token}` },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: await res.json() };
    };
    for (const body of queries) {
      // Yoga's fetch path (graphql-js on the first run), then the fast path and Yoga again (compiled by graphql-jit).
      const answers = [await post('/graphql?via=yoga', body), await post('/graphql', body), await post('/graphql?via=yoga', body), await post('/graphql', body)];
      for (const a of answers.slice(1)) expect(a).toEqual(answers[0]);
    }
  });
});
