/**
 * Migration 011 skips the sweep's read when the usage counters show no expired record. An expired
 * target is swept whatever the counters say: the targets read sees it, and a put onto it makes a
 * new record (revision 1, a new createdAt), never an update of the expired row.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { Storage } from '../../src/storage/storage.js';
import { openTestDatabase, type TestDatabase } from '../support/db.js';

const tenantId = '5a1f9a2e-5b6c-4d7e-8f90-1a2b3c4d5e6f';
const installId = '9e8f9a0b-1c2d-4e3f-8a5b-6c7d8e9f0a1b';
const caller = { principal: { kind: 'admin' as const, tenantId, actor: 'sweep-gate-test' }, requestId: null };

let t: TestDatabase;
let storage: Storage;
beforeAll(async () => {
  t = await openTestDatabase();
  storage = new Storage(t.handle.db, loadConfig({ NODE_ENV: 'test', STORAGE_MIN_TTL_SECONDS: '1' }));
  await storage.upsertInstall(caller, { id: installId, extensionId: 'x', enabled: true, canRead: true, canWrite: true });
});
afterAll(async () => {
  await t?.dispose();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the sweep of expired records (migration 011)', () => {
  it('removes the install\'s expired records on the next write, counted or not by the call\'s own ops', async () => {
    for (const key of ['a', 'b', 'c']) await storage.putRecord(caller, { installId, namespace: 'gone', key, value: key, ttlSeconds: 1 });
    await sleep(1_100);
    await storage.putRecord(caller, { installId, namespace: 'other', key: 'x', value: 1 });
    const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM ext_storage_records
      WHERE tenant_id = ${tenantId}::uuid AND install_id = ${installId}::uuid AND namespace = 'gone'`.execute(t.handle.db);
    expect(rows[0]!.n).toBe(0);
    await t.assertCountersConsistent();
  });

  it('sweeps an expired target even when the expiry buckets no longer show it', async () => {
    const first = await storage.putRecord(caller, { installId, namespace: 'n', key: 'k', value: 1, ttlSeconds: 1 });
    await storage.putRecord(caller, { installId, namespace: 'n', key: 'k', value: 2, ttlSeconds: 1 });
    // Expired in an earlier second than the next write's: only the (now missing) buckets would count it.
    await sleep(2_100);
    // The buckets forget it: the usage now finds no expired record of the install.
    await sql`DELETE FROM ext_storage_expiries WHERE tenant_id = ${tenantId}::uuid AND install_id = ${installId}::uuid`.execute(t.handle.db);
    const again = await storage.putRecord(caller, { installId, namespace: 'n', key: 'k', value: 3 });
    expect(again.revision).toBe(1);
    expect(again.createdAt.getTime()).toBeGreaterThan(first.createdAt.getTime());
    const { rows } = await sql<{ revision: number; created_at: Date }>`SELECT revision, created_at FROM ext_storage_records
      WHERE tenant_id = ${tenantId}::uuid AND install_id = ${installId}::uuid AND namespace = 'n' AND key = 'k'`.execute(t.handle.db);
    expect(rows).toEqual([{ revision: 1, created_at: again.createdAt }]);
  });
});
