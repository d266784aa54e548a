/**
 * Apollo Client (InMemoryCache) against a running gateway, with the client package's
 * `possibleTypes` and `apolloTypePolicies`: writes update cached reads in place (records are
 * normalized by their Relay id), typed errors keep their fields, pages merge, deletes leave the cache.
 */
import { ApolloClient, HttpLink, InMemoryCache, type TypedDocumentNode } from '@apollo/client';
import { relayStylePagination } from '@apollo/client/utilities';
import { parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { apolloTypePolicies, createStorageClient, possibleTypes } from '../../client/index.js';
import {
  DeleteRecordDocument,
  GetRecordDocument,
  GetRecordsDocument,
  ListRecordsDocument,
  PutRecordDocument,
  type TypedDocumentString,
} from '../../client/generated/graphql.js';
import { startTestApp, type TestApp, type TestInstall } from '../support/app.js';

let t: TestApp;
let install: TestInstall;
let token: string;
beforeAll(async () => {
  t = await startTestApp();
  install = await t.createInstall();
  token = await install.token();
});
afterAll(async () => {
  await t?.close();
});

/** The client package's typed document (a string) as the DocumentNode Apollo takes. */
function doc<R, V>(document: TypedDocumentString<R, V>): TypedDocumentNode<R, V> {
  return parse(document.toString()) as TypedDocumentNode<R, V>;
}

const GetRecord = doc(GetRecordDocument);
const GetRecords = doc(GetRecordsDocument);
const ListRecords = doc(ListRecordsDocument);
const PutRecord = doc(PutRecordDocument);
const DeleteRecord = doc(DeleteRecordDocument);
const NodeQuery = parse(`query Node($id: ID!) { node(id: $id) { __typename id ... on Record { key value revision } } }`) as TypedDocumentNode<
  { node: { __typename: string; id: string; key?: string; value?: unknown; revision?: number } | null },
  { id: string }
>;

/** An Apollo client on the gateway with an extension token; `requests()` counts what reached fetch. */
function apollo(cacheConfig: ConstructorParameters<typeof InMemoryCache>[0] = { possibleTypes, typePolicies: apolloTypePolicies({ relayStylePagination }) }) {
  let count = 0;
  const countingFetch: typeof fetch = (input, init) => {
    count++;
    return fetch(input, init);
  };
  const client = new ApolloClient({
    cache: new InMemoryCache(cacheConfig),
    link: new HttpLink({ uri: `${t.url}/graphql`, headers: { authorization: `Bearer ${token}` }, fetch: countingFetch }),
  });
  return { client, requests: () => count };
}

async function put(client: ApolloClient, namespace: string, key: string, value: unknown, ifRevision?: number) {
  const { data } = await client.mutate({ mutation: PutRecord, variables: { input: { namespace, key, value, ifRevision } } });
  return data!.putRecord;
}

describe('Apollo Client: a put updates cached reads of the same record in place', () => {
  it('record(namespace, key): after the mutation a cache-only read shows the new revision, without a request', async () => {
    const { client, requests } = apollo();
    await put(client, 'apollo', 'inplace', { v: 1 });
    const first = await client.query({ query: GetRecord, variables: { namespace: 'apollo', key: 'inplace' }, fetchPolicy: 'network-only' });
    expect(first.data?.record).toMatchObject({ revision: 1, value: { v: 1 } });
    expect(first.data?.record?.id).toEqual(expect.any(String));

    const written = await put(client, 'apollo', 'inplace', { v: 2 });
    expect(written).toMatchObject({ __typename: 'PutRecordSuccess', record: { revision: 2 } });
    const before = requests();
    const cached = await client.query({ query: GetRecord, variables: { namespace: 'apollo', key: 'inplace' }, fetchPolicy: 'cache-only' });
    expect(cached.data?.record).toMatchObject({ id: first.data?.record?.id, revision: 2, value: { v: 2 } });
    expect(requests()).toBe(before);
  });

  it('node(id): answered from the cache once the record is there, and updated in place by a put', async () => {
    const { client, requests } = apollo();
    await put(client, 'apollo', 'bynode', 'one');
    const { data } = await client.query({ query: GetRecord, variables: { namespace: 'apollo', key: 'bynode' } });
    const id = data!.record!.id;

    // The typePolicies redirect node(id) to the cached Record: no request.
    const before = requests();
    const viaNode = await client.query({ query: NodeQuery, variables: { id } });
    expect(viaNode.data?.node).toEqual({ __typename: 'Record', id, key: 'bynode', value: 'one', revision: 1 });
    expect(requests()).toBe(before);

    await put(client, 'apollo', 'bynode', 'two');
    const after = requests();
    const cached = await client.query({ query: NodeQuery, variables: { id }, fetchPolicy: 'cache-only' });
    expect(cached.data?.node).toMatchObject({ id, value: 'two', revision: 2 });
    expect(requests()).toBe(after);
  });

  it('without the typePolicies node(id) goes to the network (the redirect is what saves the request)', async () => {
    const { client, requests } = apollo({ possibleTypes });
    await put(client, 'apollo', 'nopolicy', 1);
    const { data } = await client.query({ query: GetRecord, variables: { namespace: 'apollo', key: 'nopolicy' } });
    const before = requests();
    await client.query({ query: NodeQuery, variables: { id: data!.record!.id } });
    expect(requests()).toBe(before + 1);
  });

  it('recordList edges: a put updates the record inside a cached page', async () => {
    const { client, requests } = apollo();
    await put(client, 'apollo-list', 'a', 'a1');
    await put(client, 'apollo-list', 'b', 'b1');
    const page = await client.query({ query: ListRecords, variables: { namespace: 'apollo-list', first: 10 } });
    expect(page.data?.recordList.edges.map((e) => [e.node.key, e.node.revision])).toEqual([
      ['a', 1],
      ['b', 1],
    ]);

    await put(client, 'apollo-list', 'b', 'b2');
    const before = requests();
    const cached = await client.query({ query: ListRecords, variables: { namespace: 'apollo-list', first: 10 }, fetchPolicy: 'cache-only' });
    expect(cached.data?.recordList.edges.map((e) => [e.node.key, e.node.value, e.node.revision])).toEqual([
      ['a', 'a1', 1],
      ['b', 'b2', 2],
    ]);
    expect(requests()).toBe(before);
  });
});

describe('Apollo Client: typed errors keep their fields', () => {
  it('with possibleTypes a RevisionMismatch arrives with code, message and currentRevision', async () => {
    const { client } = apollo();
    await put(client, 'apollo-err', 'k', 1);
    const result = await put(client, 'apollo-err', 'k', 2, 0);
    expect(result).toEqual({
      __typename: 'RevisionMismatch',
      code: 'REVISION_MISMATCH',
      message: expect.any(String),
      namespace: 'apollo-err',
      key: 'k',
      expectedRevision: 0,
      currentRevision: 1,
    });
  });

  it('without possibleTypes the same answer loses every field of `... on StorageError` (what the export fixes)', async () => {
    const warnings: string[] = [];
    const spies = (['warn', 'error'] as const).map((level) => vi.spyOn(console, level).mockImplementation((...args: unknown[]) => void warnings.push(args.join(' '))));
    try {
      const { client } = apollo({});
      const result = await put(client, 'apollo-err', 'k', 3, 0);
      expect(result).toEqual({ __typename: 'RevisionMismatch' });
      expect(warnings.join('\n')).toMatch(/missing `possibleTypes`/);
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
  });
});

describe('Apollo Client: recordList pages merge', () => {
  it('pages fetched with fetchMore become one list in key order, without duplicates, with the last pageInfo', async () => {
    const storage = createStorageClient({ url: t.url, token });
    for (const key of ['p/05', 'p/01', 'p/04', 'p/02', 'p/03']) expect((await storage.put('apollo-pages', key, key)).ok).toBe(true);

    const { client, requests } = apollo();
    const variables = { namespace: 'apollo-pages', prefix: 'p/', first: 2 };
    const query = client.watchQuery({ query: ListRecords, variables });
    const subscription = query.subscribe(() => {});
    try {
      const first = await client.query({ query: ListRecords, variables });
      const cursor1 = first.data!.recordList.pageInfo.endCursor;
      const second = await query.fetchMore({ variables: { after: cursor1 } });
      const cursor2 = second.data!.recordList.pageInfo.endCursor;
      // The same page again (a retry, a double click) must not duplicate its records.
      await query.fetchMore({ variables: { after: cursor1 } });
      const last = await query.fetchMore({ variables: { after: cursor2 } });
      expect(last.data!.recordList.pageInfo.hasNextPage).toBe(false);

      const before = requests();
      const merged = await client.query({ query: ListRecords, variables, fetchPolicy: 'cache-only' });
      expect(requests()).toBe(before);
      const list = merged.data!.recordList;
      expect(list.edges.map((e) => e.node.key)).toEqual(['p/01', 'p/02', 'p/03', 'p/04', 'p/05']);
      expect(list.pageInfo).toMatchObject({ hasNextPage: false, endCursor: last.data!.recordList.pageInfo.endCursor });
      // The watching query sees the merged list too (its update is broadcast asynchronously).
      await vi.waitFor(() => expect(query.getCurrentResult().data?.recordList?.edges).toHaveLength(5));
    } finally {
      subscription.unsubscribe();
    }
  });

  it('another prefix is another list (keyArgs namespace, prefix, installId)', async () => {
    const { client } = apollo();
    await client.query({ query: ListRecords, variables: { namespace: 'apollo-pages', prefix: 'p/', first: 2 } });
    const other = await client.query({ query: ListRecords, variables: { namespace: 'apollo-pages', prefix: 'p/05', first: 2 } });
    expect(other.data!.recordList.edges.map((e) => e.node.key)).toEqual(['p/05']);
    const cached = await client.query({ query: ListRecords, variables: { namespace: 'apollo-pages', prefix: 'p/', first: 2 }, fetchPolicy: 'cache-only' });
    expect(cached.data!.recordList.edges.map((e) => e.node.key)).toEqual(['p/01', 'p/02']);
  });
});

describe('Apollo Client: after a delete, evict the record', () => {
  it('evict + gc in the mutation update: record, records, node and recordList read it as gone', async () => {
    const { client, requests } = apollo();
    await put(client, 'apollo-del', 'keep', 1);
    await put(client, 'apollo-del', 'gone', 1);
    const read = await client.query({ query: GetRecord, variables: { namespace: 'apollo-del', key: 'gone' } });
    const id = read.data!.record!.id;
    await client.query({ query: GetRecords, variables: { namespace: 'apollo-del', keys: ['gone', 'keep'] } });
    await client.query({ query: NodeQuery, variables: { id } });
    await client.query({ query: ListRecords, variables: { namespace: 'apollo-del', first: 10 } });

    const { data } = await client.mutate({
      mutation: DeleteRecord,
      variables: { input: { namespace: 'apollo-del', key: 'gone' } },
      update(cache, result) {
        if (result.data?.deleteRecord.__typename === 'DeleteRecordSuccess') {
          cache.evict({ id: cache.identify({ __typename: 'Record', id }) });
          cache.gc();
        }
      },
    });
    expect(data?.deleteRecord).toMatchObject({ __typename: 'DeleteRecordSuccess', deleted: true });

    const before = requests();
    const cacheOnly = { fetchPolicy: 'cache-only' } as const;
    expect((await client.query({ query: GetRecord, variables: { namespace: 'apollo-del', key: 'gone' }, ...cacheOnly })).data?.record).toBeNull();
    expect((await client.query({ query: GetRecords, variables: { namespace: 'apollo-del', keys: ['gone', 'keep'] }, ...cacheOnly })).data?.records.map((r) => r?.key ?? null)).toEqual([null, 'keep']);
    const list = await client.query({ query: ListRecords, variables: { namespace: 'apollo-del', first: 10 }, ...cacheOnly });
    expect(list.data?.recordList.edges.map((e) => e.node.key)).toEqual(['keep']);
    // node(id) was answered by the redirect, so no node field was stored: the cache no longer has
    // the record, and a cache-first read asks the server, which answers null.
    expect((await client.query({ query: NodeQuery, variables: { id }, ...cacheOnly })).data).toBeUndefined();
    expect(requests()).toBe(before);
    expect((client.cache.extract() as Record<string, unknown>)[`Record:${id}`]).toBeUndefined();
    expect((await client.query({ query: NodeQuery, variables: { id } })).data?.node).toBeNull();
    expect(requests()).toBe(before + 1);
  });
});
