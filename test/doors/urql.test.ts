/**
 * urql with Graphcache against a running gateway, with the client package's `graphcacheOptions`
 * (possibleTypes, keys, relayPagination resolvers, the deleteRecord updater): writes update cached
 * reads in place, typed errors keep their fields, pages merge, deletes leave the cache.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Client, fetchExchange, type AnyVariables, type TypedDocumentNode } from '@urql/core';
import { cacheExchange } from '@urql/exchange-graphcache';
import { relayPagination } from '@urql/exchange-graphcache/extras';
import { buildSchema, isObjectType, parse } from 'graphql';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi, type MockInstance } from 'vitest';
import { createStorageClient, embeddedTypes, graphcacheOptions, possibleTypes } from '../../client/index.js';
import {
  DeleteRecordDocument,
  GetRecordDocument,
  GetRecordsDocument,
  ListRecordsDocument,
  PutRecordDocument,
  type TypedDocumentString,
} from '../../client/generated/graphql.js';
import { startTestApp, type TestApp } from '../support/app.js';

let t: TestApp;
let token: string;
beforeAll(async () => {
  t = await startTestApp();
  token = await (await t.createInstall()).token();
});
afterAll(async () => {
  await t?.close();
});

// Graphcache warns (console.warn) about a type it cannot key or a fragment it cannot match: with
// the package's options there must be none.
let warnings: MockInstance;
beforeEach(() => {
  warnings = vi.spyOn(console, 'warn');
});
afterEach(() => {
  expect(warnings.mock.calls).toEqual([]);
  warnings.mockRestore();
});

function doc<R, V extends AnyVariables>(document: TypedDocumentString<R, V>): TypedDocumentNode<R, V> {
  return parse(document.toString()) as unknown as TypedDocumentNode<R, V>;
}

const GetRecord = doc(GetRecordDocument);
const GetRecords = doc(GetRecordsDocument);
const ListRecords = doc(ListRecordsDocument);
const PutRecord = doc(PutRecordDocument);
const DeleteRecord = doc(DeleteRecordDocument);
const NodeQuery = parse(`query Node($id: ID!) { node(id: $id) { __typename id ... on Record { key value revision } } }`) as unknown as TypedDocumentNode<
  { node: { __typename: string; id: string; key?: string; value?: unknown; revision?: number } | null },
  { id: string }
>;

/** An urql client with Graphcache on the gateway and an extension token; `requests()` counts fetches. */
function urql() {
  let count = 0;
  const client = new Client({
    url: `${t.url}/graphql`,
    exchanges: [cacheExchange(graphcacheOptions({ relayPagination })), fetchExchange],
    fetchOptions: { headers: { authorization: `Bearer ${token}` } },
    fetch: (input, init) => {
      count++;
      return fetch(input, init);
    },
  });
  return { client, requests: () => count };
}

async function put(client: Client, namespace: string, key: string, value: unknown, ifRevision?: number) {
  const result = await client.mutation(PutRecord, { input: { namespace, key, value, ifRevision } }).toPromise();
  expect(result.error).toBeUndefined();
  return result.data!.putRecord;
}

const cacheOnly = { requestPolicy: 'cache-only' } as const;

describe('urql Graphcache: the package options fit the schema', () => {
  it('every object type without an id is embedded (keys → null), every one with an id is not', () => {
    const schema = buildSchema(readFileSync(resolve(import.meta.dirname, '../../schema/schema.graphql'), 'utf8'));
    const withoutId = Object.values(schema.getTypeMap())
      .filter((type) => isObjectType(type) && !type.name.startsWith('__') && !['Query', 'Mutation', 'Subscription'].includes(type.name))
      .filter((type) => isObjectType(type) && !type.getFields().id)
      .map((type) => type.name)
      .sort();
    expect([...embeddedTypes].sort()).toEqual(withoutId);
    expect(possibleTypes.StorageError).toEqual(['CommitConflict', 'LimitExceeded', 'QuotaExceeded', 'RevisionMismatch', 'ValidationFailed']);
    expect(possibleTypes.Node).toEqual(['Install', 'Namespace', 'Record']);
  });
});

describe('urql Graphcache: a put updates cached reads of the same record in place', () => {
  it('record(namespace, key): a cache-only read after the mutation shows the new revision, without a request', async () => {
    const { client, requests } = urql();
    await put(client, 'urql', 'inplace', { v: 1 });
    const first = await client.query(GetRecord, { namespace: 'urql', key: 'inplace' }, { requestPolicy: 'network-only' }).toPromise();
    expect(first.data?.record).toMatchObject({ revision: 1, value: { v: 1 } });

    expect(await put(client, 'urql', 'inplace', { v: 2 })).toMatchObject({ __typename: 'PutRecordSuccess', record: { revision: 2 } });
    const before = requests();
    const cached = await client.query(GetRecord, { namespace: 'urql', key: 'inplace' }, cacheOnly).toPromise();
    expect(cached.data?.record).toMatchObject({ id: first.data?.record?.id, revision: 2, value: { v: 2 } });
    expect(requests()).toBe(before);
  });

  it('node(id): answered from the cache once the record is there, and updated in place by a put', async () => {
    const { client, requests } = urql();
    await put(client, 'urql', 'bynode', 'one');
    const id = (await client.query(GetRecord, { namespace: 'urql', key: 'bynode' }).toPromise()).data!.record!.id;

    const before = requests();
    const viaNode = await client.query(NodeQuery, { id }).toPromise();
    expect(viaNode.data?.node).toEqual({ __typename: 'Record', id, key: 'bynode', value: 'one', revision: 1 });
    expect(requests()).toBe(before);

    await put(client, 'urql', 'bynode', 'two');
    const after = requests();
    expect((await client.query(NodeQuery, { id }, cacheOnly).toPromise()).data?.node).toMatchObject({ id, value: 'two', revision: 2 });
    expect(requests()).toBe(after);
  });

  it('recordList edges: a put updates the record inside a cached page', async () => {
    const { client, requests } = urql();
    await put(client, 'urql-list', 'a', 'a1');
    await put(client, 'urql-list', 'b', 'b1');
    const page = await client.query(ListRecords, { namespace: 'urql-list', first: 10 }).toPromise();
    expect(page.data?.recordList.edges.map((e) => [e.node.key, e.node.revision])).toEqual([
      ['a', 1],
      ['b', 1],
    ]);

    await put(client, 'urql-list', 'b', 'b2');
    const before = requests();
    const cached = await client.query(ListRecords, { namespace: 'urql-list', first: 10 }, cacheOnly).toPromise();
    expect(cached.data?.recordList.edges.map((e) => [e.node.key, e.node.value, e.node.revision])).toEqual([
      ['a', 'a1', 1],
      ['b', 'b2', 2],
    ]);
    expect(requests()).toBe(before);
  });
});

describe('urql Graphcache: typed errors keep their fields', () => {
  it('a RevisionMismatch arrives with code, message and currentRevision', async () => {
    const { client } = urql();
    await put(client, 'urql-err', 'k', 1);
    expect(await put(client, 'urql-err', 'k', 2, 0)).toEqual({
      __typename: 'RevisionMismatch',
      code: 'REVISION_MISMATCH',
      message: expect.any(String),
      namespace: 'urql-err',
      key: 'k',
      expectedRevision: 0,
      currentRevision: 1,
    });
  });
});

describe('urql Graphcache: recordList pages merge', () => {
  it('pages queried with after read as one list in key order, without duplicates, with the last pageInfo', async () => {
    const storage = createStorageClient({ url: t.url, token });
    for (const key of ['p/05', 'p/01', 'p/04', 'p/02', 'p/03']) expect((await storage.put('urql-pages', key, key)).ok).toBe(true);

    const { client, requests } = urql();
    const variables = { namespace: 'urql-pages', prefix: 'p/', first: 2 };
    const first = await client.query(ListRecords, variables).toPromise();
    expect(first.data!.recordList.edges.map((e) => e.node.key)).toEqual(['p/01', 'p/02']);
    const cursor1 = first.data!.recordList.pageInfo.endCursor;
    const second = await client.query(ListRecords, { ...variables, after: cursor1 }).toPromise();
    const cursor2 = second.data!.recordList.pageInfo.endCursor;
    // The same page again must not duplicate its records.
    await client.query(ListRecords, { ...variables, after: cursor1 }, { requestPolicy: 'network-only' }).toPromise();
    const last = await client.query(ListRecords, { ...variables, after: cursor2 }).toPromise();
    expect(last.data!.recordList.pageInfo.hasNextPage).toBe(false);

    const before = requests();
    const merged = await client.query(ListRecords, variables, cacheOnly).toPromise();
    expect(requests()).toBe(before);
    const list = merged.data!.recordList;
    expect(list.edges.map((e) => e.node.key)).toEqual(['p/01', 'p/02', 'p/03', 'p/04', 'p/05']);
    expect(list.pageInfo).toMatchObject({ hasNextPage: false, endCursor: last.data!.recordList.pageInfo.endCursor });
  });
});

describe('urql Graphcache: a delete removes the record from the cache (the package updater)', () => {
  it('record, records, node and recordList read it as gone, without a request', async () => {
    const { client, requests } = urql();
    await put(client, 'urql-del', 'keep', 1);
    await put(client, 'urql-del', 'gone', 1);
    const id = (await client.query(GetRecord, { namespace: 'urql-del', key: 'gone' }).toPromise()).data!.record!.id;
    const keepId = (await client.query(GetRecords, { namespace: 'urql-del', keys: ['gone', 'keep'] }).toPromise()).data!.records[1]!.id;
    await client.query(NodeQuery, { id }).toPromise();
    await client.query(ListRecords, { namespace: 'urql-del', first: 10 }).toPromise();

    const deleted = await client.mutation(DeleteRecord, { input: { namespace: 'urql-del', key: 'gone' } }).toPromise();
    expect(deleted.data?.deleteRecord).toMatchObject({ __typename: 'DeleteRecordSuccess', deleted: true });

    const before = requests();
    expect((await client.query(GetRecord, { namespace: 'urql-del', key: 'gone' }, cacheOnly).toPromise()).data?.record).toBeNull();
    const many = await client.query(GetRecords, { namespace: 'urql-del', keys: ['gone', 'keep'] }, cacheOnly).toPromise();
    expect(many.data?.records.map((r) => r?.key ?? null)).toEqual([null, 'keep']);
    const list = await client.query(ListRecords, { namespace: 'urql-del', first: 10 }, cacheOnly).toPromise();
    expect(list.data?.recordList.edges.map((e) => e.node.key)).toEqual(['keep']);
    expect((await client.query(NodeQuery, { id }, cacheOnly).toPromise()).data?.node ?? null).toBeNull();
    expect(requests()).toBe(before);
    // The record that was kept is still read from the cache.
    expect((await client.query(NodeQuery, { id: keepId }, cacheOnly).toPromise()).data?.node).toMatchObject({ key: 'keep', revision: 1 });
    expect(requests()).toBe(before);
  });
});
