/**
 * The response budget during execution (contract, "Cost, fairness and availability"): the value and
 * metadata bytes of every record a request returns are counted as it runs (a record under two
 * aliases counts twice; a keys-only page loads, and counts, none); past STORAGE_MAX_RESPONSE_BYTES the request stops with HTTP 200,
 * `data: null` and one RESPONSE_TOO_LARGE error. Each shape runs three times: the third run is
 * executed by graphql-jit (src/graphql/jit.ts), which must stop the same way.
 */
import type { LogEvent } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataOf, startTestApp, type GqlResult, type TestApp } from '../support/app.js';
import { expectNoInternals } from './support.js';

const MiB = 1024 * 1024;
const aliases = (n: number, field: string) => Array.from({ length: n }, (_, i) => `a${i}: ${field}`).join('\n');
const keysOf = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(3, '0')}`);
/** A string value whose JSON text is exactly `bytes` long. */
const valueOf = (bytes: number, fill = 'x') => fill.repeat(bytes - 2);

const BULK = 'mutation($input: BulkPutRecordsInput!) { bulkPutRecords(input: $input) { __typename ... on LimitExceeded { limit } } }';

let recordStatements = 0;
const observe = (event: LogEvent) => {
  if (/ext_storage_records/.test(event.query.sql)) recordStatements++;
};

async function seed(t: TestApp, token: string, namespace: string, keys: string[], value: unknown, metadata?: Record<string, unknown>): Promise<void> {
  // Bulk puts of at most 1 MiB each.
  const perBulk = Math.max(1, Math.floor((MiB - 4096) / (JSON.stringify(value).length + JSON.stringify(metadata ?? {}).length)));
  for (let i = 0; i < keys.length; i += perBulk) {
    const items = keys.slice(i, i + perBulk).map((key) => ({ key, value, metadata }));
    const res = await t.gql(BULK, { input: { namespace, items } }, { token });
    expect(dataOf(res).bulkPutRecords.__typename).toBe('BulkPutRecordsSuccess');
  }
}

async function run(t: TestApp, token: string, query: string, variables: Record<string, unknown> = {}): Promise<GqlResult & { statements: number; length: number }> {
  recordStatements = 0;
  const res = await fetch(`${t.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: JSON.parse(text), statements: recordStatements, length: text.length };
}

function expectTooLarge(res: GqlResult & { length: number }, max: number): void {
  expect(res.status).toBe(200);
  expect(res.body.data).toBeNull();
  expect(res.body.errors).toHaveLength(1);
  expect(res.body.errors![0]!.extensions).toMatchObject({ code: 'RESPONSE_TOO_LARGE', max });
  expect(res.length).toBeLessThan(1000);
  expectNoInternals(res);
}

describe('the default budget (16 MiB) with 64 KB records', () => {
  let t: TestApp;
  let token: string;
  const keys = keysOf('big', 100);
  const BUDGET = 16 * MiB;

  beforeAll(async () => {
    t = await startTestApp({}, [observe]);
    // Two namespaces at most: pages under Install.namespaces are priced by that quota.
    token = await (await t.createInstall({ quota: { maxNamespaces: 2 } })).token();
    await seed(t, token, 'big', keys, valueOf(65536));
  });
  afterAll(async () => {
    await t?.close();
  });

  it('two aliases of 100 distinct 64 KB records (13 MB) are served in full', async () => {
    const res = await run(t, token, `query($k: [String!]!) { ${aliases(2, 'records(namespace: "big", keys: $k) { key value }')} }`, { k: keys });
    expect(res.status).toBe(200);
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data.a1).toHaveLength(100);
    expect(res.length).toBeGreaterThan(200 * 65536);
  });

  it('three aliases (19.7 MB) stop at the budget: 200, data null, one RESPONSE_TOO_LARGE; the records were read once', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await run(t, token, `query($k: [String!]!) { ${aliases(3, 'records(namespace: "big", keys: $k) { key value }')} }`, { k: keys });
      expectTooLarge(res, BUDGET);
      expect(res.statements).toBe(1);
    }
  });

  it('three pages of 100 (recordList) stop at the budget, and so do the same nested under Install.namespace(s)', async () => {
    for (let i = 0; i < 3; i++) {
      expectTooLarge(await run(t, token, `{ ${aliases(3, 'recordList(namespace: "big", first: 100) { edges { node { value } } }')} }`), BUDGET);
      expectTooLarge(await run(t, token, `{ install { namespace(name: "big") { ${aliases(3, 'recordList(first: 100) { edges { node { value } } }')} } } }`), BUDGET);
      expectTooLarge(await run(t, token, `{ install { namespaces { ${aliases(3, 'recordList(first: 100) { edges { node { value } } }')} } } }`), BUDGET);
    }
  });

  it('the next request of the install is served as usual', async () => {
    const res = await run(t, token, '{ record(namespace: "big", key: "big000") { key } }');
    expect(dataOf(res).record.key).toBe('big000');
  });
});

describe('a 1 MiB budget (STORAGE_MAX_RESPONSE_BYTES)', () => {
  let t: TestApp;
  let token: string;
  const ten = keysOf('ten', 60);
  const meta = keysOf('meta', 100);

  beforeAll(async () => {
    t = await startTestApp({ STORAGE_MAX_RESPONSE_BYTES: String(MiB) }, [observe]);
    token = await (await t.createInstall({ quota: { maxValueBytes: 400_000 } })).token();
    // 60 records of 11 KB (value) + 2 bytes ({} metadata): 675,960 bytes.
    await seed(t, token, 'ten', ten, valueOf(11264));
    // 100 records whose bytes are mostly metadata: 2 + 4,000 bytes each.
    await seed(t, token, 'meta', meta, 1, { pad: valueOf(3990) });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('a record under two aliases counts twice: one alias of 660 KB is served, two stop (loaded once)', async () => {
    const one = await run(t, token, 'query($k: [String!]!) { a: records(namespace: "ten", keys: $k) { value } }', { k: ten });
    expect(dataOf(one).a).toHaveLength(60);
    for (let i = 0; i < 3; i++) {
      const two = await run(t, token, `query($k: [String!]!) { ${aliases(2, 'records(namespace: "ten", keys: $k) { key }')} }`, { k: ten });
      expectTooLarge(two, MiB);
      expect(two.statements).toBe(1);
    }
  });

  it('duplicate keys count each time: 100 copies of one 11 KB key (1.1 MB) stop', async () => {
    const k = Array.from({ length: 100 }, () => 'ten000');
    for (let i = 0; i < 3; i++) expectTooLarge(await run(t, token, 'query($k: [String!]!) { records(namespace: "ten", keys: $k) { key } }', { k }), MiB);
  });

  it('metadata bytes count like value bytes', async () => {
    const page = 'recordList(namespace: "meta", first: 100) { edges { node { key metadata } } }';
    expect(dataOf(await run(t, token, `{ ${aliases(2, page)} }`)).a1.edges).toHaveLength(100);
    for (let i = 0; i < 3; i++) expectTooLarge(await run(t, token, `{ ${aliases(3, page)} }`), MiB);
  });

  it('a keys-only page loads neither value nor metadata, so it charges nothing (contract: bytes loaded)', async () => {
    // The same three pages as above without `metadata`: the statement reads keys only (test/graphql/relay.test.ts).
    const page = 'recordList(namespace: "meta", first: 100) { edges { node { key revision } } }';
    for (let i = 0; i < 3; i++) {
      const res = await run(t, token, `{ ${aliases(3, page)} }`);
      expect(res.body.errors).toBeUndefined();
      expect(dataOf(res).a2.edges).toHaveLength(100);
    }
  });

  it('mutations: returned records count; past the budget the request stops and later writes do not run', async () => {
    const put = (i: number) => `w${i}: putRecord(input: { namespace: "w", key: "w${i}", value: $v }) { ... on PutRecordSuccess { record { key } } }`;
    const value = valueOf(300_000);
    const res = await run(t, token, `mutation($v: JSON!) { ${[0, 1, 2, 3, 4].map(put).join('\n')} }`, { v: value });
    expectTooLarge(res, MiB);
    const written = dataOf(await run(t, token, 'query { records(namespace: "w", keys: ["w0", "w3", "w4"]) { key } }')).records;
    // w3 took the request past 1 MiB (4 x 300 KB): written, then the request stopped before w4.
    expect(written).toEqual([{ key: 'w0' }, { key: 'w3' }, null]);
    // The same writes selecting no record return no bytes.
    const quiet = (i: number) => `q${i}: putRecord(input: { namespace: "w", key: "w${i}", value: $v }) { __typename }`;
    const served = await run(t, token, `mutation($v: JSON!) { ${[0, 1, 2, 3, 4].map(quiet).join('\n')} }`, { v: value });
    expect(Object.values(dataOf(served)).map((r) => (r as { __typename: string }).__typename)).toEqual(Array(5).fill('PutRecordSuccess'));
  });
});
