/**
 * The fast path (POST /graphql with a JSON object, src/http/graphql-fast-path.ts) and compiled
 * queries (src/graphql/jit.ts) must answer exactly as Yoga's fetch path and graphql-js did.
 *
 * Each case is sent three times: through Yoga's fetch path (a query string keeps a request off the
 * fast path), then the fast path, then Yoga again. A document runs on graphql-js the first time
 * and compiled from the second, so the three answers also compare the two executors.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fastPathParams } from '../../src/http/graphql-fast-path.js';
import { startTestApp, type TestApp, type TestInstall } from '../support/app.js';

let t: TestApp;
let install: TestInstall;
let token: string;
beforeAll(async () => {
  t = await startTestApp();
  install = await t.createInstall();
  token = await install.token();
  const put = `mutation($k: String!, $v: JSON!) { putRecord(input: { namespace: "fp", key: $k, value: $v }) { __typename } }`;
  for (const k of ['a', 'b', 'c']) await t.gql(put, { k, v: { k, n: [1, 2, 3] } }, { token });
});
afterAll(async () => {
  await t?.close();
});

interface Answer {
  status: number;
  contentType: string | null;
  body: unknown;
}

async function post(path: string, body: unknown, bearer = token): Promise<Answer> {
  const res = await fetch(`${t.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, contentType: res.headers.get('content-type'), body: await res.json() };
}

/** Yoga, fast path, Yoga again: all three answers, which must be equal. */
async function threeWays(body: (run: number) => unknown, bearer?: string): Promise<Answer> {
  const yoga1 = await post('/graphql?via=yoga', body(0), bearer);
  const fast = await post('/graphql', body(1), bearer);
  const yoga2 = await post('/graphql?via=yoga', body(2), bearer);
  expect(fast).toEqual(yoga1);
  expect(yoga2).toEqual(yoga1);
  return fast;
}

const RECORD = 'namespace key value metadata revision schemaVersion ttlExpiresAt createdAt updatedAt';

describe('the fast path answers exactly as Yoga does', () => {
  it('takes only plain POST /graphql JSON requests', () => {
    const body = Buffer.from(JSON.stringify({ query: '{ __typename }' }));
    const json = { 'content-type': 'application/json' };
    expect(fastPathParams('POST', '/graphql', json, body)).toEqual({ query: '{ __typename }' });
    expect(fastPathParams('POST', '/graphql', { 'content-type': 'application/json; charset=utf-8' }, body)).not.toBeNull();
    expect(fastPathParams('POST', '/graphql?via=yoga', json, body)).toBeNull();
    expect(fastPathParams('GET', '/graphql', json, body)).toBeNull();
    expect(fastPathParams('POST', '/graphql', { 'content-type': 'application/graphql+json' }, body)).toBeNull();
    expect(fastPathParams('POST', '/graphql', { 'content-type': 'application/json, text/plain' }, body)).toBeNull();
    expect(fastPathParams('POST', '/graphql', json, Buffer.from('[{"query":"{ __typename }"}]'))).toBeNull();
    expect(fastPathParams('POST', '/graphql', json, Buffer.from('{"query":'))).toBeNull();
    expect(fastPathParams('POST', '/graphql', json, Buffer.from('{"query":"{ __typename }","extra":1}'))).toBeNull();
    expect(fastPathParams('POST', '/graphql', json, Buffer.from('{"query":"{ __typename }","variables":[]}'))).toBeNull();
    expect(fastPathParams('POST', '/graphql', json, Buffer.from('{"query":"{ __typename }","operationName":3}'))).toBeNull();
    expect(fastPathParams('POST', '/graphql', json, Buffer.from('\ufeff{"query":"{ __typename }"}'))).toBeNull();
  });

  it('a normal query', async () => {
    const a = await threeWays(() => ({ query: `{ records(namespace: "fp", keys: ["a", "b", "zz"]) { ${RECORD} } }` }));
    expect(a.status).toBe(200);
    expect((a.body as any).data.records).toHaveLength(3);
  });

  it('a query with variables', async () => {
    const a = await threeWays(() => ({ query: `query One($key: String!) { record(namespace: "fp", key: $key) { ${RECORD} } }`, variables: { key: 'c' } }));
    expect((a.body as any).data.record.value).toEqual({ k: 'c', n: [1, 2, 3] });
  });

  it('a page of a list', async () => {
    await threeWays(() => ({ query: `{ recordList(namespace: "fp", first: 2) { edges { cursor node { ${RECORD} } } pageInfo { hasNextPage endCursor } } }` }));
  });

  it('a parse error: 400', async () => {
    const a = await threeWays(() => ({ query: '{ records(namespace: "fp", keys: ["a"] { key } }' }));
    expect(a.status).toBe(400);
  });

  it('a validation error: 400', async () => {
    const a = await threeWays(() => ({ query: '{ records(namespace: "fp", keys: ["a"]) { nope } }' }));
    expect(a.status).toBe(400);
  });

  it('a field error (FORBIDDEN), with its locations and path', async () => {
    const readOnly = await install.token('storage:write');
    const a = await threeWays(() => ({ query: `query R { ok: __typename\n  record(namespace: "fp", key: "a") { key } }` }), readOnly);
    expect((a.body as any).errors[0]).toMatchObject({ extensions: { code: 'FORBIDDEN' }, path: ['record'], locations: [{ line: 2, column: 3 }] });
  });

  it('another install\'s token: its own (empty) namespace, no error', async () => {
    const other = await t.createInstall();
    const foreign = await other.token();
    await threeWays(() => ({ query: `{ records(namespace: "fp", keys: ["a"]) { key } install { id } }` }), foreign);
  });

  it('a mutation', async () => {
    const a = await threeWays((run) => ({
      query: `mutation Put($k: String!) { putRecord(input: { namespace: "fp-m", key: $k, value: { x: 1 } }) {
        __typename ... on PutRecordSuccess { record { namespace value revision } } } }`,
      variables: { k: `m-${run}` },
    }));
    expect((a.body as any).data.putRecord.record.revision).toBe(1);
  });

  it('a bulk mutation with variables, compiled from its second run (jit runs mutations too)', async () => {
    const query = `mutation Bulk($input: BulkPutRecordsInput!) { bulkPutRecords(input: $input) { __typename
      ... on BulkPutRecordsSuccess { records { namespace value metadata revision schemaVersion } }
      ... on RevisionMismatch { namespace expectedRevision currentRevision } ... on LimitExceeded { limit } } }`;
    const items = (run: number) =>
      Array.from({ length: 5 }, (_, i) => ({ key: `b-${run}-${i}`, value: { i, s: 'x', nested: [{ a: null }] }, metadata: i % 2 ? { m: i } : null, ttlSeconds: i === 3 ? 3600 : null }));
    const a = await threeWays((run) => ({ query, variables: { input: { namespace: 'fp-bulk', items: items(run) } } }));
    expect((a.body as any).data.bulkPutRecords.records).toHaveLength(5);
    // A typed error (a revision check on a key that does not exist), the same on both executors.
    const b = await threeWays((run) => ({ query, variables: { input: { namespace: 'fp-bulk', items: [{ key: `absent-${run}`, value: 1, ifRevision: 4 }] } } }));
    expect((b.body as any).data.bulkPutRecords.__typename).toBe('RevisionMismatch');
  });

  it('a mutation with bad variables: the same refusal compiled or not, and nothing is written', async () => {
    const query = `mutation Bulk($input: BulkPutRecordsInput!) { bulkPutRecords(input: $input) { __typename } }`;
    await threeWays((run) => ({ query, variables: { input: { namespace: 'fp-bad', items: [{ key: `ok-${run}`, value: 1 }] } } }));
    for (const input of [{ namespace: 'fp-bad', items: [{ key: 'x', value: 1, ttlSeconds: 'soon' }] }, { namespace: 'fp-bad', items: [{ value: 1 }] }, { items: [] }, null]) {
      const a = await threeWays(() => ({ query, variables: { input } }));
      expect(a.status).toBe(400);
      expect((a.body as any).errors[0].extensions.code).toBe('BAD_USER_INPUT');
    }
    const read = await post('/graphql', { query: '{ record(namespace: "fp-bad", key: "x") { key } }' });
    expect((read.body as any).data.record).toBeNull();
  });

  it('operationName picks one of several operations', async () => {
    const query = `query A { records(namespace: "fp", keys: ["a"]) { key } } query B { record(namespace: "fp", key: "b") { key value } }`;
    const b = await threeWays(() => ({ query, operationName: 'B' }));
    expect((b.body as any).data).toEqual({ record: { key: 'b', value: { k: 'b', n: [1, 2, 3] } } });
    const none = await threeWays(() => ({ query }));
    expect(none.status).toBe(400);
    await threeWays(() => ({ query, operationName: 'C' }));
  });

  it('bad variables: BAD_USER_INPUT, 400', async () => {
    const query = `query One($key: String!) { record(namespace: "fp", key: $key) { key } }`;
    // The document is compiled after its first run: the refusal must not change with it.
    await threeWays(() => ({ query, variables: { key: 'a' } }));
    const a = await threeWays(() => ({ query, variables: { key: 7 } }));
    expect(a.status).toBe(400);
    expect((a.body as any).errors[0].extensions.code).toBe('BAD_USER_INPUT');
    await threeWays(() => ({ query }));
  });

  it('an unknown install id argument', async () => {
    await threeWays(() => ({ query: `query($id: ID) { record(namespace: "fp", key: "a", installId: $id) { key } }`, variables: { id: randomUUID() } }));
  });

  it('a complexity refusal', async () => {
    const keys = Array.from({ length: 2000 }, (_, i) => `k${i}`);
    const a = await threeWays(() => ({ query: `query($keys: [String!]!) { records(namespace: "fp", keys: $keys) { key } }`, variables: { keys } }));
    expect(a.status).not.toBe(500);
  });
});
