import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../../src/auth/credentials.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { dataOf, errorOf, extensionClient, GET, GET_MANY, LIST, PUT } from './client.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

const NESTED_RECORDS = `query($ns: String!, $keys: [String!]!) {
  install { namespace(name: $ns) { records(keys: $keys) { key value } } }
}`;

describe('records(keys)', () => {
  it('answers in the order of keys, with null for missing keys and duplicates in place', async () => {
    const c = await extensionClient(t);
    for (const key of ['a', 'b', 'c']) await c.put({ namespace: 'ns', key, value: key.toUpperCase() });
    const keys = ['c', 'missing', 'a', 'b', 'a', 'c', 'also-missing'];
    const got = await c.getMany('ns', keys);
    expect(got.map((r) => (r === null ? null : [r.key, r.value]))).toEqual([
      ['c', 'C'],
      null,
      ['a', 'A'],
      ['b', 'B'],
      ['a', 'A'],
      ['c', 'C'],
      null,
    ]);
  });

  it('answers the same through Install.namespace(name).records', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'x', value: 1 });
    await c.put({ namespace: 'ns', key: 'y', value: 2 });
    const data = dataOf(await c.gql(NESTED_RECORDS, { ns: 'ns', keys: ['y', 'nope', 'x', 'y'] }));
    expect(data.install.namespace.records).toEqual([{ key: 'y', value: 2 }, null, { key: 'x', value: 1 }, { key: 'y', value: 2 }]);
  });

  it('returns an empty list for no keys', async () => {
    const c = await extensionClient(t);
    expect(await c.getMany('ns', [])).toEqual([]);
  });

  it('takes 100 keys', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'k42', value: 42 });
    const keys = Array.from({ length: 100 }, (_, i) => `k${i}`);
    const got = await c.getMany('ns', keys);
    expect(got).toHaveLength(100);
    expect(got.filter((r) => r !== null).map((r) => r!.key)).toEqual(['k42']);
    expect(got[42]).toMatchObject({ key: 'k42', value: 42 });
  });

  it('refuses more than 100 keys with LIMIT_EXCEEDED keysPerRead, on both fields', async () => {
    const c = await extensionClient(t);
    const keys = Array.from({ length: 101 }, (_, i) => `k${i}`);
    for (const res of [await c.gql(GET_MANY, { ns: 'ns', keys }), await c.gql(NESTED_RECORDS, { ns: 'ns', keys })]) {
      const error = errorOf(res);
      expect(error.extensions).toMatchObject({ code: 'LIMIT_EXCEEDED', limit: 'keysPerRead', max: 100, actual: 101 });
    }
  });

  it('refuses a malformed key with LIMIT_EXCEEDED naming the limit', async () => {
    const c = await extensionClient(t);
    expect(errorOf(await c.gql(GET_MANY, { ns: 'ns', keys: ['ok', ''] })).extensions).toMatchObject({ code: 'LIMIT_EXCEEDED', limit: 'keyLength' });
    expect(errorOf(await c.gql(GET_MANY, { ns: 'ns', keys: ['bad\u0001'] })).extensions).toMatchObject({ code: 'LIMIT_EXCEEDED', limit: 'keyFormat' });
    expect(errorOf(await c.gql(GET_MANY, { ns: 'ns', keys: ['lone\ud800'] })).extensions).toMatchObject({ code: 'LIMIT_EXCEEDED', limit: 'keyFormat' });
    expect(errorOf(await c.gql(GET_MANY, { ns: 'ns', keys: ['k'.repeat(257)] })).extensions).toMatchObject({ code: 'LIMIT_EXCEEDED', limit: 'keyLength', max: 256, actual: 257 });
    expect(errorOf(await c.gql(GET, { ns: 'Bad', key: 'k' })).extensions).toMatchObject({ code: 'LIMIT_EXCEEDED', limit: 'namespaceFormat' });
  });
});

describe('record(key)', () => {
  it('returns every field of the record, and null for a missing key', async () => {
    const c = await extensionClient(t);
    const put = await c.put({ namespace: 'ns', key: 'k', value: { a: 1 }, metadata: { tag: 'x' } });
    const got = await c.get('ns', 'k');
    expect(got).toEqual(put.record);
    expect(got).toMatchObject({ namespace: 'ns', key: 'k', value: { a: 1 }, metadata: { tag: 'x' }, revision: 1, schemaVersion: null, ttlExpiresAt: null });
    expect(got!.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(await c.get('ns', 'nope')).toBeNull();
    expect(await c.get('other', 'k')).toBeNull();
  });

  it('compares keys exactly: no case folding, no Unicode normalisation', async () => {
    const c = await extensionClient(t);
    const composed = '\u00e9'; // é as one code point
    const decomposed = 'e\u0301'; // e + combining acute
    await c.put({ namespace: 'ns', key: composed, value: 'composed' });
    await c.put({ namespace: 'ns', key: 'Key', value: 'upper' });
    expect(await c.get('ns', decomposed)).toBeNull();
    expect(await c.get('ns', 'key')).toBeNull();
    await c.put({ namespace: 'ns', key: decomposed, value: 'decomposed' });
    const got = await c.getMany('ns', [composed, decomposed, 'Key']);
    expect(got.map((r) => r?.value)).toEqual(['composed', 'decomposed', 'upper']);
  });
});

describe('tenant and install ids', () => {
  it('are case-insensitive for an admin and come back lower-case', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'k', value: 'v' });
    const upper = c.install.id.toUpperCase();
    const admin = await t.adminToken();

    const read = dataOf(await t.gql(GET, { ns: 'ns', key: 'k', installId: upper }, { token: admin }));
    expect(read.record).toMatchObject({ key: 'k', value: 'v', revision: 1 });

    const many = dataOf(await t.gql(GET_MANY, { ns: 'ns', keys: ['k'], installId: upper }, { token: admin }));
    expect(many.records).toMatchObject([{ key: 'k', value: 'v' }]);

    const list = dataOf(await t.gql(LIST, { ns: 'ns', installId: upper }, { token: admin }));
    expect(list.recordList.edges.map((e: { node: { key: string } }) => e.node.key)).toEqual(['k']);

    const put = dataOf(await t.gql(PUT, { input: { installId: upper, namespace: 'ns', key: 'k', value: 'w' } }, { token: admin }));
    expect(put.putRecord).toMatchObject({ __typename: 'PutRecordSuccess', record: { revision: 2, value: 'w' } });
    expect(await c.get('ns', 'k')).toMatchObject({ value: 'w', revision: 2 });

    const install = dataOf(await t.gql(`query($id: ID) { install(id: $id) { id tenantId } }`, { id: upper }, { token: admin }));
    expect(install.install).toEqual({ id: c.install.id, tenantId: t.tenantId });
    expect(install.install.id).toBe(install.install.id.toLowerCase());
    expect(install.install.tenantId).toBe(install.install.tenantId.toLowerCase());
  });

  it('accept an upper-case tenant id in an admin token and an extension naming its own install in upper case', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'k', value: 'v' });
    const upperTenantAdmin = await mintToken(t.secret, { sub: 'admin-upper', tid: t.tenantId.toUpperCase(), role: 'admin' });
    const read = dataOf(
      await t.gql(`query($id: ID, $ns: String!) { install(id: $id) { id tenantId namespace(name: $ns) { record(key: "k") { value } } } }`, { id: c.install.id.toUpperCase(), ns: 'ns' }, { token: upperTenantAdmin }),
    );
    expect(read.install).toEqual({ id: c.install.id, tenantId: t.tenantId, namespace: { record: { value: 'v' } } });

    const own = dataOf(await c.gql(GET, { ns: 'ns', key: 'k', installId: c.install.id.toUpperCase() }));
    expect(own.record).toMatchObject({ value: 'v' });
  });

  it('refuse an admin of another tenant even with the right install id in another case', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'k', value: 'secret' });
    const stranger = await t.adminToken(randomUUID());
    const res = await t.gql(GET, { ns: 'ns', key: 'k', installId: c.install.id.toUpperCase() }, { token: stranger });
    expect(errorOf(res).extensions.code).toBe('FORBIDDEN');
    expect(res.body.data?.record ?? null).toBeNull();
  });
});

describe('strong consistency', () => {
  it('a read right after each write sees that write, through every read field', async () => {
    const c = await extensionClient(t);
    const query = `query($ns: String!) {
      record(namespace: $ns, key: "k") { revision }
      records(namespace: $ns, keys: ["k"]) { revision }
      recordList(namespace: $ns) { edges { node { revision } } }
    }`;
    for (let n = 1; n <= 5; n++) {
      await c.put({ namespace: 'ns', key: 'k', value: n });
      const data = dataOf(await c.gql(query, { ns: 'ns' }));
      expect(data).toEqual({ record: { revision: n }, records: [{ revision: n }], recordList: { edges: [{ node: { revision: n } }] } });
    }
  });
});
