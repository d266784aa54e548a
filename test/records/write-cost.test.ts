/**
 * A write's work in the database does not grow with what the install holds (migrations/007): the
 * write function finds every row it reads or removes by its primary key or a bounded index range,
 * with the generic plans it runs on PostgreSQL and PGlite. Measured without timing: the rows the
 * database reads from the records and audit tables during one call, counted by PostgreSQL's own
 * per-transaction statistics. A plan that scanned the install's records (as the first draft of 007
 * did once statistics were missing: 22 ms a put at 10,000 records) reads thousands of rows here.
 * Not on Citus: there the call runs on a worker, whose statistics this session cannot see.
 */
import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onCitus, openTestDatabase, type TestDatabase } from '../support/db.js';
import { sleep } from './client.js';

const RECORDS = 3_000;
let t: TestDatabase;
beforeAll(async () => {
  t = await openTestDatabase();
});
afterAll(async () => {
  await t?.dispose();
});

interface Item {
  kind: 'put' | 'delete';
  key: string;
  ttlSeconds?: number;
}

/** One call of the write function, as the gateway makes it (src/storage/write.ts). */
function request(namespace: string, items: Item[], auditRetentionSeconds = 7_776_000) {
  return {
    operation: items.length > 1 ? 'bulkPut' : items[0]!.kind,
    actor: 'cost-test',
    requestId: null,
    sweep: 10,
    auditRetentionSeconds,
    quota: { namespaces: 100, keys: 1_000_000, bytes: 1_000_000_000 },
    schemas: [],
    invalid: false,
    ops: items.map((item) =>
      item.kind === 'delete'
        ? { kind: 'delete', namespace, key: item.key, ifRevision: null }
        : { kind: 'put', namespace, key: item.key, ifRevision: null, value: { v: item.key }, metadata: {}, valueBytes: 20, metadataBytes: 2, ttlSeconds: item.ttlSeconds ?? null, schemaVersion: null },
    ),
  };
}

/** Calls one of the write functions with a JSON argument and returns its parsed answer. */
async function callJson(db: Kysely<any>, fn: 'ext_storage_write_v1' | 'ext_storage_write_batch_v1', tenantId: string, installId: string, body: unknown): Promise<any> {
  const { rows } = await sql<{ answer: unknown }>`SELECT ${sql.raw(fn)}(${tenantId}::uuid, ${installId}::uuid, ${JSON.stringify(body)}::jsonb) AS answer`.execute(db);
  const answer = rows[0]!.answer;
  return typeof answer === 'string' ? JSON.parse(answer) : answer;
}

async function write(db: Kysely<any>, tenantId: string, installId: string, body: unknown): Promise<any> {
  const answer = await callJson(db, 'ext_storage_write_v1', tenantId, installId, body);
  expect(answer.ok, JSON.stringify(answer)).toBe(true);
  return answer;
}

/**
 * Rows read from the records and audit tables in the current transaction: by sequential scans
 * (counted on the table) and by index and bitmap scans (counted on the index and the table).
 */
async function rowsRead(db: Kysely<any>): Promise<number> {
  const { rows } = await sql<{ n: string }>`
    WITH tables AS (SELECT c.oid FROM pg_class c WHERE c.relname IN ('ext_storage_records', 'ext_storage_audit'))
    SELECT sum(pg_stat_get_xact_tuples_returned(r.oid) + pg_stat_get_xact_tuples_fetched(r.oid))::text AS n
      FROM (SELECT oid FROM tables UNION ALL SELECT i.indexrelid FROM pg_index i WHERE i.indrelid IN (SELECT oid FROM tables)) r`.execute(db);
  return Number(rows[0]!.n);
}

/** Rows the call read, measured inside one transaction (and kept: the call commits). */
async function readsOf(tenantId: string, installId: string, body: unknown): Promise<{ read: number; answer: any }> {
  return t.handle.db.transaction().execute(async (trx) => {
    const before = await rowsRead(trx);
    const answer = await write(trx, tenantId, installId, body);
    const read = (await rowsRead(trx)) - before;
    return { read, answer };
  });
}

async function seed(tenantId: string, installId: string, namespace: string, count: number, ttlSeconds?: number): Promise<void> {
  for (let i = 0; i < count; i += 100) {
    const items = Array.from({ length: Math.min(100, count - i) }, (_, j): Item => ({ kind: 'put', key: `seed-${i + j}`, ttlSeconds }));
    await write(t.handle.db, tenantId, installId, request(namespace, items));
  }
}

describe.skipIf(onCitus)(`a write reads a bounded number of rows, whatever the install holds (${RECORDS} records)`, () => {
  const tenantId = randomUUID();
  const installId = randomUUID();
  // Seeded and measured at once: no statistics gathered yet, as on a new database.
  beforeAll(async () => {
    await seed(tenantId, installId, 'big', RECORDS);
    await seed(tenantId, installId, 'old', RECORDS, 1);
    // The 'old' records expire: a backlog for the sweep, all in seconds already past.
    await sleep(2_100);
    // Warm the connection's plans so the measured calls use the cached ones.
    for (let i = 0; i < 6; i++) await write(t.handle.db, tenantId, installId, request('big', [{ kind: 'put', key: `warm-${i}` }]));
  });

  // Counted: index entries plus table rows, so a row found by an index counts twice. Every call
  // below also sweeps 10 records of the backlog. A scan of the install would count over 6,000.
  it('a put of an existing key, a put of a new key and a delete read fewer than 200 rows each', async () => {
    for (const item of [{ kind: 'put', key: 'seed-7' }, { kind: 'put', key: 'fresh-1' }, { kind: 'delete', key: 'seed-8' }] as Item[]) {
      const { read } = await readsOf(tenantId, installId, request('big', [item]));
      expect(read, `${item.kind} ${item.key}`).toBeLessThan(200);
    }
  });

  it('the sweep of an expired backlog removes its batch of 10 and reads about that many rows', async () => {
    const { read, answer } = await readsOf(tenantId, installId, request('big', [{ kind: 'put', key: 'fresh-2' }]));
    expect(answer.swept).toBe(10);
    expect(read).toBeLessThan(200);
  });

  it('writes combined into one batch call sweep once: the first up to its batch, the others only their expired targets', async () => {
    const requests = ['fresh-b1', 'fresh-b2', 'fresh-b3'].map((key) => request('big', [{ kind: 'put', key }]));
    const answers = await callJson(t.handle.db, 'ext_storage_write_batch_v1', tenantId, installId, requests);
    expect(answers.map((a: any) => [a.ok, a.swept])).toEqual([[true, 10], [true, 0], [true, 0]]);
  });

  it('a bulk put of 100 reads rows in proportion to its items, not to the install', async () => {
    const items = Array.from({ length: 100 }, (_, i): Item => ({ kind: 'put', key: i % 2 === 0 ? `seed-${i}` : `bulk-${i}` }));
    const { read, answer } = await readsOf(tenantId, installId, request('big', items));
    expect(answer.results).toHaveLength(100);
    expect(read).toBeLessThan(600);
  });

  it('audit retention removes a bounded batch of old events by id', async () => {
    const events = async () => {
      const { rows } = await sql<{ n: string }>`SELECT count(*)::text AS n FROM ext_storage_audit WHERE tenant_id = ${tenantId}::uuid AND install_id = ${installId}::uuid`.execute(t.handle.db);
      return Number(rows[0]!.n);
    };
    // Retention of one second: every seeded event is past it; a call removes 2 × (items + swept) + 10.
    await sleep(1_100);
    const before = await events();
    expect(before).toBeGreaterThan(RECORDS);
    const { read, answer } = await readsOf(tenantId, installId, request('big', [{ kind: 'put', key: 'fresh-3' }], 1));
    expect(read).toBeLessThan(400);
    const added = 1 + answer.swept;
    expect(await events()).toBe(before + added - (2 * added + 10));
  });

  it('the counters still match what is stored', async () => {
    await t.assertCountersConsistent();
  });
});
