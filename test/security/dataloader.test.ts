import type { LogEvent } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp, type TestInstall } from '../support/app.js';
import { PUT } from './support.js';

let t: TestApp;
let install: TestInstall;
let token: string;
/** Statements that touched the records table since the last reset (install lookups do not count). */
let recordStatements: string[] = [];

function observe(event: LogEvent): void {
  if (/ext_storage_records/.test(event.query.sql)) recordStatements.push(event.query.sql);
}

beforeAll(async () => {
  t = await startTestApp({}, [observe]);
  install = await t.createInstall();
  token = await install.token();
  const items = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => ({ key: `${prefix}${i}`, value: { n: i } }));
  for (const [namespace, list] of [
    ['alpha', items('k', 100)],
    ['beta', items('k', 10)],
  ] as const) {
    const res = await t.gql(`mutation($input: BulkPutRecordsInput!) { bulkPutRecords(input: $input) { __typename } }`, { input: { namespace, items: list } }, { token });
    expect(res.body.data.bulkPutRecords.__typename).toBe('BulkPutRecordsSuccess');
  }
});
afterAll(async () => {
  await t?.close();
});

/** Runs a query and returns its data with the records-table statements it caused. */
async function counted(query: string, variables: Record<string, unknown> = {}): Promise<{ data: any; statements: string[] }> {
  recordStatements = [];
  const res = await t.gql(query, variables, { token });
  expect(res.status).toBe(200);
  expect(res.body.errors).toBeUndefined();
  return { data: res.body.data, statements: recordStatements };
}

const aliases = (namespace: string, keys: readonly string[]) =>
  keys.map((k, i) => `${namespace}${i}: record(namespace: "${namespace}", key: "${k}") { key value }`).join('\n');

describe('record reads of one request are batched per install and namespace', () => {
  it('ten record fields (aliases) of one namespace run exactly one statement', async () => {
    const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
    const { data, statements } = await counted(`{ ${aliases('alpha', keys)} }`);
    expect(statements).toHaveLength(1);
    keys.forEach((k, i) => expect(data[`alpha${i}`]).toEqual({ key: k, value: { n: i } }));
  });

  it('records(keys) with 100 keys runs exactly one statement', async () => {
    const keys = Array.from({ length: 100 }, (_, i) => `k${99 - i}`);
    const { data, statements } = await counted(`query($keys: [String!]!) { records(namespace: "alpha", keys: $keys) { key } }`, { keys });
    expect(statements).toHaveLength(1);
    expect(data.records.map((r: { key: string }) => r.key)).toEqual(keys);
  });

  it('record fields of two namespaces run exactly two statements', async () => {
    const keys = Array.from({ length: 5 }, (_, i) => `k${i}`);
    const { data, statements } = await counted(`{ ${aliases('alpha', keys)} ${aliases('beta', keys)} }`);
    expect(statements).toHaveLength(2);
    expect(data.beta4).toEqual({ key: 'k4', value: { n: 4 } });
  });

  it('records(keys) calls of two namespaces run exactly two statements', async () => {
    const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
    const { data, statements } = await counted(
      `query($keys: [String!]!) { a: records(namespace: "alpha", keys: $keys) { key } b: records(namespace: "beta", keys: $keys) { key } }`,
      { keys },
    );
    expect(statements).toHaveLength(2);
    expect(data.a).toHaveLength(10);
    expect(data.b).toHaveLength(10);
  });

  it('top-level and nested reads of one namespace, missing keys included, share one statement', async () => {
    const { data, statements } = await counted(`{
      top: record(namespace: "alpha", key: "k1") { key }
      many: records(namespace: "alpha", keys: ["k2", "absent", "k3"]) { key }
      install { namespace(name: "alpha") { record(key: "k4") { key } records(keys: ["k1", "k5"]) { key } } }
    }`);
    expect(statements).toHaveLength(1);
    expect(data).toEqual({
      top: { key: 'k1' },
      many: [{ key: 'k2' }, null, { key: 'k3' }],
      install: { namespace: { record: { key: 'k4' }, records: [{ key: 'k1' }, { key: 'k5' }] } },
    });
  });

  it('the same key asked twice is fetched once and answered twice', async () => {
    const { data, statements } = await counted(`{ a: record(namespace: "beta", key: "k7") { value } b: record(namespace: "beta", key: "k7") { value } }`);
    expect(statements).toHaveLength(1);
    expect(data).toEqual({ a: { value: { n: 7 } }, b: { value: { n: 7 } } });
  });

  it('the loader does not outlive its request: a write between two requests is seen by the second', async () => {
    const before = await counted(`{ record(namespace: "beta", key: "k0") { revision } }`);
    expect(before.data.record.revision).toBe(1);
    const put = await t.gql(PUT, { input: { namespace: 'beta', key: 'k0', value: 'changed' } }, { token });
    expect(put.body.data.putRecord.record.revision).toBe(2);
    const after = await counted(`{ record(namespace: "beta", key: "k0") { value revision } }`);
    expect(after.statements).toHaveLength(1);
    expect(after.data.record).toEqual({ value: 'changed', revision: 2 });
  });
});
