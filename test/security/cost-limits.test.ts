/**
 * Worst-case pricing before execution (contract, "Cost, fairness and availability"), with the
 * findings of issue 11 reproduced as they were found: each was served (or crashed) before and is
 * now refused with HTTP 400 QUERY_TOO_COSTLY before a single record is read.
 */
import type { LogEvent } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataOf, startTestApp, type GqlResult, type TestApp } from '../support/app.js';
import { expectNoInternals } from './support.js';

let t: TestApp;
/** Statements that touched the records table since the last reset. */
let recordStatements = 0;
let token: string;
let installId: string;

const observe = (event: LogEvent) => {
  if (/ext_storage_records/.test(event.query.sql)) recordStatements++;
};

/** A value of 64 KB exactly (its JSON text is the limit). */
const BIG = 'x'.repeat(65536 - 2);
const NAMESPACES = Array.from({ length: 32 }, (_, i) => `n${String(i).padStart(2, '0')}`);
const aliases = (n: number, field: string) => Array.from({ length: n }, (_, i) => `a${i}: ${field}`).join('\n');
const copies = (n: number, key: string) => Array.from({ length: n }, () => key);

const PUT = `mutation($input: PutRecordInput!) { putRecord(input: $input) { __typename } }`;

beforeAll(async () => {
  t = await startTestApp({}, [observe]);
  const install = await t.createInstall();
  installId = install.id;
  token = await install.token();
  // One record in each of the 32 namespaces the default quota allows; the first holds the 64 KB key.
  expect(dataOf(await t.gql(PUT, { input: { namespace: 'n00', key: 'big', value: BIG } }, { token })).putRecord.__typename).toBe('PutRecordSuccess');
  for (const namespace of NAMESPACES) {
    expect(dataOf(await t.gql(PUT, { input: { namespace, key: 'small', value: { ns: namespace } } }, { token })).putRecord.__typename).toBe('PutRecordSuccess');
  }
});
afterAll(async () => {
  await t?.close();
});

async function counted(query: string, variables: Record<string, unknown> = {}, as = token, headers: Record<string, string> = {}): Promise<GqlResult & { statements: number; bytes: number }> {
  recordStatements = 0;
  const res = await t.gql(query, variables, { token: as, headers });
  return { ...res, statements: recordStatements, bytes: JSON.stringify(res.body).length };
}

function expectTooCostly(res: GqlResult & { statements: number; bytes: number }, limit: 'statements' | 'records', cost: number, max: number): void {
  expect(res.status).toBe(400);
  expect(res.body).not.toHaveProperty('data');
  expect(res.body.errors).toHaveLength(1);
  expect(res.body.errors![0]!.extensions).toMatchObject({ code: 'QUERY_TOO_COSTLY', limit, cost, max });
  expect(res.body.errors![0]!.message).toMatch(new RegExp(`${cost}.*${max}`));
  expect(res.statements, 'not one record read').toBe(0);
  expect(res.bytes).toBeLessThan(1000);
  expectNoInternals(res);
}

describe('the findings, as they were found', () => {
  const thirtyAliases = `query($k: [String!]!) { ${aliases(30, 'records(namespace: "n00", keys: $k) { key value metadata revision }')} }`;

  it('30 aliases of records(keys: $k), 100 copies of one 64 KB key (a 195 MB answer; 24 at once crashed the process): 400 before any read', async () => {
    const res = await counted(thirtyAliases, { k: copies(100, 'big') });
    expectTooCostly(res, 'records', 3000, 1000);
  });

  it('the same through GET (the yoga.fetch path) and with the GraphQL-over-HTTP media type', async () => {
    const url = `${t.url}/graphql?query=${encodeURIComponent(thirtyAliases)}&variables=${encodeURIComponent(JSON.stringify({ k: copies(100, 'big') }))}`;
    recordStatements = 0;
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
    const body = (await res.json()) as GqlResult['body'];
    expect(res.status).toBe(400);
    expect(body.errors?.[0]?.extensions).toMatchObject({ code: 'QUERY_TOO_COSTLY', cost: 3000, max: 1000 });
    expect(recordStatements).toBe(0);
    const spec = await counted(thirtyAliases, { k: copies(100, 'big') }, token, { accept: 'application/graphql-response+json' });
    expectTooCostly(spec, 'records', 3000, 1000);
  });

  it('the same nested under Install.namespaces (was a 500: RangeError: Invalid string length): 400 before any read', async () => {
    const nested = `query($k: [String!]!) { install { namespaces { name ${aliases(30, 'records(keys: $k) { key value }')} } } }`;
    const res = await counted(nested, { k: copies(100, 'big') });
    // 1 install + 1 namespace list + 30 reads in each of up to 32 namespaces.
    expectTooCostly(res, 'statements', 2 + 30 * 32, 64);
  });

  it('16 aliased recordList(first: 100) under namespaces (passed the old cost limit and ran 512 statements): 400 before any read', async () => {
    const sixteen = `{ install { namespaces { ${aliases(16, 'recordList(first: 100) { edges { node { key value } } }')} } } }`;
    const res = await counted(sixteen);
    expectTooCostly(res, 'statements', 2 + 16 * 32, 64);
  });
});

describe('the limits, at their edges', () => {
  it('1,000 records are served; 1,001 are refused', async () => {
    const reads = aliases(10, 'records(namespace: "n01", keys: $k) { key }');
    const served = await counted(`query($k: [String!]!) { ${reads} }`, { k: copies(100, 'small') });
    expect(dataOf(served).a9).toHaveLength(100);
    expect(served.statements).toBe(1);
    const refused = await counted(`query($k: [String!]!) { ${reads} one: record(namespace: "n01", key: "small") { key } }`, { k: copies(100, 'small') });
    expectTooCostly(refused, 'records', 1001, 1000);
  });

  it('pages under Install.namespaces are priced by the install namespace quota: first 31 runs, first 32 is refused', async () => {
    const page = (first: number) => `{ install { namespaces { name recordList(first: ${first}) { edges { node { key } } } } } }`;
    const served = await counted(page(31));
    const namespaces = dataOf(served).install.namespaces;
    expect(namespaces.map((n: { name: string }) => n.name)).toEqual(NAMESPACES);
    expect(namespaces[0].recordList.edges.map((e: { node: { key: string } }) => e.node.key)).toEqual(['big', 'small']);
    expect(served.statements).toBe(32);
    expectTooCostly(await counted(page(32)), 'records', 32 * 32, 1000);
  });

  it("an install's own namespace quota is its bound: 30 pages in each of 2 namespaces run (62 reads priced)", async () => {
    const small = await t.createInstall({ quota: { maxNamespaces: 2 } });
    const smallToken = await small.token();
    for (const namespace of ['p', 'q']) await t.gql(PUT, { input: { namespace, key: 'k', value: 1 } }, { token: smallToken });
    const q = `{ install { namespaces { ${aliases(30, 'recordList(first: 10) { edges { node { key } } }')} } } }`;
    const res = await counted(q, {}, smallToken);
    expect(dataOf(res).install.namespaces).toHaveLength(2);
    expect(res.statements).toBe(60);
    // The same document from an install with the default quota (32 namespaces) is 2 + 30 x 32 reads.
    expectTooCostly(await counted(q), 'statements', 2 + 30 * 32, 64);
  });

  it('aliased mutations add up: 11 bulk puts of 100 items are refused and write nothing; 10 are served', async () => {
    const items = Array.from({ length: 100 }, (_, i) => ({ key: `m${i}`, value: i }));
    const bulk = (n: number) => `mutation($items: [BulkPutItem!]!) { ${aliases(n, 'bulkPutRecords(input: { namespace: "n02", items: $items }) { __typename }')} }`;
    const usage = async () => dataOf(await t.gql('{ install { namespace(name: "n02") { keyCount } } }', {}, { token })).install.namespace.keyCount;
    const before = await usage();
    expectTooCostly(await counted(bulk(11), { items }), 'records', 1100, 1000);
    expect(await usage()).toBe(before);
    const served = dataOf(await t.gql(bulk(10), { items }, { token }));
    expect(Object.values(served).every((r) => (r as { __typename: string }).__typename === 'BulkPutRecordsSuccess')).toBe(true);
    expect(await usage()).toBe(before + 100);
  });

  it('a namespace list longer than the quota it was priced with (quota lowered below usage) stops at the statement limit while running', async () => {
    const install = await t.createInstall();
    const ext = await install.token();
    for (let i = 0; i < 5; i++) await t.gql(PUT, { input: { namespace: `s${i}`, key: 'k', value: i } }, { token: ext });
    const admin = await t.adminToken();
    const lowered = await t.gql(
      'mutation($input: UpsertInstallInput!) { upsertInstall(input: $input) { quota { maxNamespaces } } }',
      { input: { id: install.id, extensionId: 'test-extension', enabled: true, canRead: true, canWrite: true, quota: { maxNamespaces: 2 } } },
      { token: admin },
    );
    expect(dataOf(lowered).upsertInstall.quota.maxNamespaces).toBe(2);
    // Priced 2 + 30 x 2 = 62 reads; the 5 stored namespaces would make 150.
    const res = await counted(`{ install { namespaces { ${aliases(30, 'schema { version }')} } } }`, {}, ext);
    expect(res.status).toBe(200);
    expect(res.body.data).toBeNull();
    expect(res.body.errors).toHaveLength(1);
    expect(res.body.errors![0]!.extensions).toMatchObject({ code: 'QUERY_TOO_COSTLY', limit: 'statements', max: 64 });
    expectNoInternals(res);
  });

  it("installs(first) is priced with the largest namespace quota among the admin's installs", async () => {
    const tenant = '00000000-0000-4000-8000-0000000000c0';
    await t.createInstall({ tenantId: tenant, quota: { maxNamespaces: 40 } });
    await t.createInstall({ tenantId: tenant });
    const admin = await t.adminToken(tenant);
    const q = (first: number) => `{ installs(first: ${first}) { edges { node { id namespaces { schema { version } } } } } }`;
    // 1 list + 1 install x (1 namespace list + 40 schemas): served.
    const one = await counted(q(1), {}, admin);
    expect(dataOf(one).installs.edges).toHaveLength(1);
    expectTooCostly(await counted(q(2), {}, admin), 'statements', 1 + 2 * 41, 64);
  });

  it("an admin's price never reflects another tenant's install (no quota or existence leaks through QUERY_TOO_COSTLY)", async () => {
    const q = `query($id: ID!) { install(id: $id) { namespaces { ${aliases(16, 'recordList(first: 100) { edges { node { key } } }')} } } }`;
    const own = await counted(q, { id: installId }, await t.adminToken());
    expectTooCostly(own, 'statements', 2 + 16 * 32, 64);
    const other = await counted(q, { id: installId }, await t.adminToken('00000000-0000-4000-8000-00000000beef'));
    expect(other.status).toBe(200);
    expect(other.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(other.statements).toBe(0);
  });
});
