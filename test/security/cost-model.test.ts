/**
 * The cost model itself (src/graphql/cost.ts, src/graphql/work.ts): how each field is priced, with
 * variables, fragments and aliases; that every field of the schema is priced on purpose; the
 * Runner REST prices; and the per-request accounting used during execution.
 */
import fc from 'fast-check';
import { isInterfaceType, isObjectType, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import {
  evaluatePlan,
  FIELD_RULES,
  installRefKey,
  installRefsOf,
  isFreeField,
  overLimit,
  PlanCache,
  rateUnits,
  runnerPrice,
  compilePlan,
  ECHO_OVERHEAD_BYTES,
  type InstallRef,
  type Price,
} from '../../src/graphql/cost.js';
import { reservationOf } from '../../src/graphql/cost-plugin.js';
import { namespaceGlobalId, recordGlobalId } from '../../src/storage/global-id.js';
import { schema } from '../../src/graphql/schema.js';
import { jsonSize, RequestWork, STATEMENTS_AT_ONCE } from '../../src/graphql/work.js';
import type { StoredRecord } from '../../src/storage/records.js';

const limits = loadConfig({ NODE_ENV: 'test' }).limits;

/** The price of a document, with Install.namespaces bounded by `bounds` (by install ref, default 32). */
function price(query: string, variables: Record<string, unknown> = {}, bounds: Record<string, number> = {}, operationName?: string): Price {
  const plan = compilePlan(schema, parse(query), operationName);
  return evaluatePlan(plan, variables, { limits, namespaceBound: (ref) => bounds[installRefKey(ref)] ?? 32 });
}

const keys = (n: number, same = false) => Array.from({ length: n }, (_, i) => (same ? 'k' : `k${i}`));
const aliases = (n: number, field: string) => Array.from({ length: n }, (_, i) => `a${i}: ${field}`).join('\n');

describe('every field of the schema is priced on purpose', () => {
  const fields: string[] = [];
  for (const type of Object.values(schema.getTypeMap())) {
    if (type.name.startsWith('__') || !(isObjectType(type) || isInterfaceType(type))) continue;
    for (const name of Object.keys(type.getFields())) fields.push(`${type.name}.${name}`);
  }

  it('as a database read (or a list bound) or as a projection of what is already loaded', () => {
    const unpriced = fields.filter((f) => !(f in FIELD_RULES) && !isFreeField(f.split('.')[0]!, f.split('.')[1]!));
    expect(unpriced, 'add each to FIELD_RULES or FREE_FIELDS in src/graphql/cost.ts').toEqual([]);
  });

  it('and no rule names a field that does not exist', () => {
    expect(Object.keys(FIELD_RULES).filter((f) => !fields.includes(f))).toEqual([]);
  });
});

describe('prices', () => {
  it('introspection and projections read nothing', () => {
    expect(price('{ __typename }')).toEqual({ reads: 0, records: 0 });
    expect(price('{ __schema { types { name } } }')).toEqual({ reads: 0, records: 0 });
    expect(price('{ install { id tenantId enabled capabilities { read namespaces } quota { maxBytes } } }')).toEqual({ reads: 1, records: 0 });
  });

  it('record, records(keys) and recordList(first), keys counted with duplicates, pages by first', () => {
    expect(price('{ record(namespace: "a", key: "k") { value } }')).toEqual({ reads: 1, records: 1 });
    expect(price('{ records(namespace: "a", keys: ["a", "b", "c"]) { value } }')).toEqual({ reads: 1, records: 3 });
    expect(price('query($k: [String!]!) { records(namespace: "a", keys: $k) { key } }', { k: keys(100, true) })).toEqual({ reads: 1, records: 100 });
    // A single value is coerced to a list of one; beyond the per-read limit the field is refused without reading.
    expect(price('query($k: [String!]!) { records(namespace: "a", keys: $k) { key } }', { k: 'one' })).toEqual({ reads: 1, records: 1 });
    expect(price('query($k: [String!]!) { records(namespace: "a", keys: $k) { key } }', { k: keys(150) })).toEqual({ reads: 1, records: 100 });
    expect(price('{ recordList(namespace: "a") { edges { node { key } } } }')).toEqual({ reads: 1, records: 25 });
    expect(price('{ recordList(namespace: "a", first: 100) { pageInfo { hasNextPage } } }')).toEqual({ reads: 1, records: 100 });
    expect(price('query($n: Int) { recordList(namespace: "a", first: $n) { pageInfo { hasNextPage } } }', { n: 7 })).toEqual({ reads: 1, records: 7 });
    expect(price('query($n: Int) { recordList(namespace: "a", first: $n) { pageInfo { hasNextPage } } }', { n: null })).toEqual({ reads: 1, records: 25 });
    expect(price('query($n: Int = 9) { recordList(namespace: "a", first: $n) { pageInfo { hasNextPage } } }')).toEqual({ reads: 1, records: 9 });
    expect(price('query($n: Int) { recordList(namespace: "a", first: $n) { pageInfo { hasNextPage } } }')).toEqual({ reads: 1, records: 25 });
  });

  it('aliases add up: the 30 x 100 finding is 3,000 records', () => {
    const q = `query($k: [String!]!) { ${aliases(30, 'records(namespace: "a", keys: $k) { value }')} }`;
    expect(price(q, { k: keys(100, true) })).toEqual({ reads: 30, records: 3000 });
  });

  it('Install.namespaces multiplies by the install namespace quota; its usage comes with it', () => {
    expect(price('{ install { namespaces { name keyCount bytesUsed } } }')).toEqual({ reads: 2, records: 0 });
    expect(price('{ install { namespaces { schema { version } } } }')).toEqual({ reads: 2 + 32, records: 0 });
    expect(price('{ install { namespaces { schema { version } } } }', {}, { self: 3 })).toEqual({ reads: 2 + 3, records: 0 });
    const sixteenPages = `{ install { namespaces { ${aliases(16, 'recordList(first: 100) { edges { node { key } } }')} } } }`;
    expect(price(sixteenPages)).toEqual({ reads: 2 + 16 * 32, records: 16 * 32 * 100 });
    const nested = `query($k: [String!]!) { install { namespaces { ${aliases(30, 'records(keys: $k) { value }')} } } }`;
    expect(price(nested, { k: keys(100, true) })).toEqual({ reads: 2 + 30 * 32, records: 30 * 32 * 100 });
  });

  it('a namespace by name reads its usage once for keyCount and bytesUsed', () => {
    expect(price('{ install { namespace(name: "a") { keyCount bytesUsed k2: keyCount schema { version } } } }')).toEqual({ reads: 3, records: 0 });
    expect(price('{ install { a: namespace(name: "a") { keyCount } b: namespace(name: "b") { bytesUsed } } }')).toEqual({ reads: 3, records: 0 });
  });

  it('installs(first) multiplies what each install costs; the installs refs are looked up as the tenant', () => {
    const q = '{ installs(first: 5) { edges { node { usage { keys } auditLog(first: 10) { edges { node { id } } } namespaces { schema { version } } } } } }';
    expect(price(q, {}, { tenant: 40 })).toEqual({ reads: 1 + 5 * (3 + 40), records: 0 });
    const plan = compilePlan(schema, parse(q), undefined);
    expect(installRefsOf(plan, {}, limits)).toEqual([{ kind: 'tenant' }]);
    const byId = compilePlan(schema, parse('query($id: ID) { install(id: $id) { namespaces { schema { version } } } }'), undefined);
    const ref: InstallRef = { kind: 'id', id: '00000000-0000-4000-8000-0000000000a1' };
    expect(installRefsOf(byId, { id: '00000000-0000-4000-8000-0000000000A1' }, limits)).toEqual([ref]);
    expect(installRefsOf(byId, {}, limits)).toEqual([{ kind: 'self' }]);
    // Namespace names (and their usage) cost nothing per namespace: no quota is looked up for them.
    expect(installRefsOf(compilePlan(schema, parse('{ install { namespaces { name keyCount bytesUsed } } }'), undefined), {}, limits)).toEqual([]);
  });

  it('mutations: each aliased write counts, bulk puts by their items; the records they return are echoed', () => {
    const put = 'putRecord(input: { namespace: "a", key: "k", value: 1 }) { __typename }';
    expect(price(`mutation { ${aliases(3, put)} }`)).toEqual({ reads: 3, records: 3, echoed: 3 });
    const bulk = 'bulkPutRecords(input: { namespace: "a", items: $items }) { ... on BulkPutRecordsSuccess { records { key } } }';
    const items = Array.from({ length: 100 }, (_, i) => ({ key: `k${i}`, value: i }));
    expect(price(`mutation($items: [BulkPutItem!]!) { ${aliases(11, bulk)} }`, { items })).toEqual({ reads: 11, records: 1100, echoed: 1100 });
    expect(price(`mutation($input: BulkPutRecordsInput!) { bulkPutRecords(input: $input) { __typename } }`, { input: { namespace: 'a', items } })).toEqual({ reads: 1, records: 100, echoed: 100 });
    expect(price('mutation { bulkPutRecords(input: { namespace: "a", items: [{ key: "a", value: 1 }, { key: "b", value: 2 }] }) { __typename } }')).toEqual({ reads: 1, records: 2, echoed: 2 });
    // An install read under a write's answer is not echoed: its records are priced as reads.
    expect(price('mutation { upsertInstall(input: { id: "x", extensionId: "e", enabled: true, canRead: true, canWrite: true }) { namespace(name: "a") { records(keys: ["k", "j"]) { value } } } }')).toEqual({
      reads: 2,
      records: 2,
    });
    expect(price('mutation { deleteRecord(input: { namespace: "a", key: "k" }) { __typename } }')).toEqual({ reads: 1, records: 0 });
  });

  it('the response pool reserves read records at their largest, echoed ones at most what the request carried', () => {
    const bound = 256 * 1024 + 16 * 1024;
    const max = 16 * 1024 * 1024;
    // A bulk put of 100 small items (30 KB request): far below half the budget, so not a large request.
    expect(reservationOf({ reads: 1, records: 100, echoed: 100 }, bound, 30_000, max)).toBe(2 * 30_000 + 100 * ECHO_OVERHEAD_BYTES);
    // A 100-key read: each record at its largest, capped at the budget.
    expect(reservationOf({ reads: 1, records: 100 }, bound, 300, max)).toBe(max);
    expect(reservationOf({ reads: 1, records: 10 }, bound, 300, max)).toBe(10 * bound);
    // Echoed records never reserve more than records at their largest; an unknown request size reserves that.
    expect(reservationOf({ reads: 1, records: 1, echoed: 1 }, 100, 4 * 1024 * 1024, max)).toBe(100);
    expect(reservationOf({ reads: 1, records: 3, echoed: 3 }, bound, Number.NaN, max)).toBe(3 * bound);
    // A mixed request: the read part at its largest plus the echoed part.
    expect(reservationOf({ reads: 2, records: 12, echoed: 2 }, bound, 1000, max)).toBe(10 * bound + 2 * 1000 + 2 * ECHO_OVERHEAD_BYTES);
  });

  it('node(id) is one read and at most one record; an Install it returns lists the namespaces of the install its id names', () => {
    expect(price('{ node(id: "x") { id } }')).toEqual({ reads: 1, records: 1 });
    expect(price(`{ ${aliases(3, 'node(id: "x") { id ... on Record { value } }')} }`)).toEqual({ reads: 3, records: 3 });
    const installId = '00000000-0000-4000-8000-0000000000a1';
    const nsId = namespaceGlobalId(installId, 'ns');
    const q = 'query($id: ID!) { node(id: $id) { ... on Install { namespaces { schema { version } } } } }';
    expect(price(q, { id: installId.toUpperCase() }, { [`id:${installId}`]: 5 })).toEqual({ reads: 1 + 1 + 5, records: 1 });
    expect(installRefsOf(compilePlan(schema, parse(q), undefined), { id: nsId }, limits)).toEqual([{ kind: 'id', id: installId }]);
    expect(installRefsOf(compilePlan(schema, parse(q), undefined), { id: recordGlobalId(installId, 'ns', 'k') }, limits)).toEqual([{ kind: 'id', id: installId }]);
    // A malformed id names no install: nothing is listed for it (the field is refused when it runs).
    expect(installRefsOf(compilePlan(schema, parse(q), undefined), { id: 'rec_nonsense' }, limits)).toEqual([{ kind: 'id', id: '' }]);
    // A Namespace from node() reads its usage like install.namespace(name); its pages as recordList.
    expect(price('{ node(id: "x") { ... on Namespace { keyCount bytesUsed recordList(first: 10) { totalCount edges { node { key } } } } } }')).toEqual({
      reads: 1 + 1 + 2,
      records: 1 + 10,
    });
  });

  it('totalCount is one more read per connection (not per edge); pageInfo is free', () => {
    expect(price('{ recordList(namespace: "a") { totalCount } }')).toEqual({ reads: 2, records: 25 });
    expect(price('{ recordList(namespace: "a", first: 100) { totalCount edges { node { id key } } pageInfo { hasPreviousPage startCursor } } }')).toEqual({ reads: 2, records: 100 });
    expect(price(`{ ${aliases(40, 'recordList(namespace: "a", first: 1) { totalCount }')} }`)).toEqual({ reads: 80, records: 40 });
    expect(price('{ install { namespaces { recordList { totalCount } } } }')).toEqual({ reads: 2 + 32 * 2, records: 32 * 25 });
  });

  it('fragments count; fields merged by graphql-js (one response key) count once', () => {
    const q = `{ record(namespace: "a", key: "k") { key } ...F ... on Query { r2: record(namespace: "a", key: "j") { key } } }
      fragment F on Query { record(namespace: "a", key: "k") { value } records(namespace: "a", keys: ["x", "y"]) { key } }`;
    expect(price(q)).toEqual({ reads: 3, records: 4 });
  });

  it('prices the operation that runs', () => {
    const q = 'query A { records(namespace: "a", keys: ["a", "b"]) { key } } query B { recordList(namespace: "a", first: 50) { pageInfo { hasNextPage } } }';
    expect(price(q, {}, {}, 'A')).toEqual({ reads: 1, records: 2 });
    expect(price(q, {}, {}, 'B')).toEqual({ reads: 1, records: 50 });
    expect(price(q, {}, {}, 'C')).toEqual({ reads: 0, records: 0 });
  });

  it('variables of the wrong type never throw (coercion refuses them later)', () => {
    const q = 'query($k: [String!]!, $n: Int) { records(namespace: "a", keys: $k) { key } recordList(namespace: "a", first: $n) { pageInfo { hasNextPage } } }';
    expect(() => price(q, { k: 7, n: 'ten' })).not.toThrow();
    expect(() => price(q, { k: { a: 1 }, n: [1] })).not.toThrow();
  });

  it('a plan is compiled once per document and operation', () => {
    const cache = new PlanCache(schema);
    const doc = parse('{ record(namespace: "a", key: "k") { key } }');
    expect(cache.planFor(doc, undefined)).toBe(cache.planFor(doc, null));
  });
});

describe('limits and rate units', () => {
  it('refuses past 64 reads or 1,000 records, naming the limit', () => {
    const max = { maxStatements: 64, maxRecords: 1000 };
    expect(overLimit({ reads: 64, records: 1000 }, max)).toBeNull();
    expect(overLimit({ reads: 65, records: 0 }, max)).toEqual({ limit: 'statements', cost: 65, max: 64 });
    expect(overLimit({ reads: 30, records: 3000 }, max)).toEqual({ limit: 'records', cost: 3000, max: 1000 });
  });

  it('charges one unit per statement plus one per ten records, at least one', () => {
    expect(rateUnits({ reads: 0, records: 0 })).toBe(1);
    expect(rateUnits({ reads: 1, records: 1 })).toBe(1);
    expect(rateUnits({ reads: 1, records: 100 })).toBe(11);
    expect(rateUnits({ reads: 30, records: 1000 })).toBe(130);
  });

  it('prices the Runner REST operations as the GraphQL fields they stand for', () => {
    expect(runnerPrice('get', {}, limits)).toEqual({ reads: 1, records: 1 });
    expect(runnerPrice('put', {}, limits)).toEqual({ reads: 1, records: 1 });
    expect(runnerPrice('delete', {}, limits)).toEqual({ reads: 1, records: 0 });
    expect(runnerPrice('list', {}, limits)).toEqual({ reads: 1, records: 25 });
    expect(runnerPrice('list', { limit: 100 }, limits)).toEqual({ reads: 1, records: 100 });
    expect(runnerPrice('list', { limit: 5000 }, limits)).toEqual({ reads: 1, records: 100 });
    expect(runnerPrice('bulkPut', { items: Array.from({ length: 50 }, () => ({})) }, limits)).toEqual({ reads: 1, records: 50 });
    expect(runnerPrice('bulkPut', { items: 'nope' }, limits)).toEqual({ reads: 1, records: 1 });
  });
});

describe('RequestWork: database calls and returned bytes of one request', () => {
  const rec = (bytes: number): StoredRecord => ({
    installId: '00000000-0000-4000-8000-000000000001',
    namespace: 'a',
    key: 'k',
    value: 'x'.repeat(bytes - 4),
    metadata: {},
    revision: 1,
    schemaVersion: null,
    ttlExpiresAt: null,
    createdAt: new Date(),
    updatedAt: new Date(),
    storedBytes: bytes,
  });

  it('measures a record as the UTF-8 bytes of its compact JSON, without building the text', () => {
    for (const v of [null, true, false, 0, -0, 1.5e300, -12, '', 'é€😀', 'a"b\\c\n\u0001\u001f', [], {}, [1, [2, { a: null }]], { 'k"': 'v', n: { m: [true] } }]) {
      expect(jsonSize(v), JSON.stringify(v)).toBe(Buffer.byteLength(JSON.stringify(v), 'utf8'));
    }
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6, stringUnit: 'grapheme' }), (v) => jsonSize(v) === Buffer.byteLength(JSON.stringify(v), 'utf8')),
      { numRuns: 500 },
    );
  });

  it(`runs at most ${STATEMENTS_AT_ONCE} database calls at once, in order`, async () => {
    const work = new RequestWork({ maxResponseBytes: 1 << 20, maxStatements: 64 });
    let running = 0;
    let most = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        work.read(async () => {
          running++;
          most = Math.max(most, running);
          await new Promise((r) => setTimeout(r, 5));
          running--;
          order.push(i);
        }),
      ),
    );
    expect(most).toBe(STATEMENTS_AT_ONCE);
    expect(order).toHaveLength(10);
  });

  it('counts a record each time it is returned and stops past the budget; nothing starts after', async () => {
    const work = new RequestWork({ maxResponseBytes: 1000, maxStatements: 64 });
    const r = rec(300); // 298 bytes of value text + 2 of metadata
    work.returned([r, null, r, r]);
    expect(work.returnedBytes).toBe(900);
    expect(() => work.returned([r])).toThrow(/exceed 1000 bytes/);
    expect(work.stopped?.extensions.code).toBe('RESPONSE_TOO_LARGE');
    let ran = false;
    await expect(work.read(async () => (ran = true))).rejects.toBe(work.stopped);
    expect(ran).toBe(false);
  });

  it('stops calls beyond the statement limit (a namespace list longer than its quota)', async () => {
    const work = new RequestWork({ maxResponseBytes: 1 << 20, maxStatements: 3 });
    for (let i = 0; i < 3; i++) await work.read(async () => i);
    await expect(work.read(async () => 4)).rejects.toMatchObject({ extensions: { code: 'QUERY_TOO_COSTLY', limit: 'statements', max: 3 } });
  });

  it('calls waiting for a turn when the request stops never start', async () => {
    const work = new RequestWork({ maxResponseBytes: 10, maxStatements: 64 });
    let started = 0;
    const calls = Array.from({ length: 6 }, () =>
      work.read(async () => {
        started++;
        await new Promise((r) => setTimeout(r, 5));
        work.returned([rec(300)]);
      }),
    );
    await Promise.allSettled(calls);
    expect(started).toBe(STATEMENTS_AT_ONCE);
  });
});
