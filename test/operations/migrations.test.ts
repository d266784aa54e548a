import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { openDatabase } from '../../src/db/database.js';
import { migrateDown, migrateToLatest, migrationsApplied } from '../../src/db/migrate.js';
import { JsonText } from '../../src/storage/json-text.js';
import { Storage } from '../../src/storage/storage.js';
import { backend, createPostgresDatabase, openTestDatabase } from '../support/db.js';

const tenantId = '3d1f9a2e-5b6c-4d7e-8f90-1a2b3c4d5e6f';
const installId = '7e8f9a0b-1c2d-4e3f-8a5b-6c7d8e9f0a1b';
const ALL_UP = ['Up 001_storage_tables', 'Up 002_schemas_and_audit', 'Up 003_install_write_sequence', 'Up 004_install_bytes', 'Up 005_write_function', 'Up 006_write_batch', 'Up 007_write_set_based', 'Up 008_commit_and_counters', 'Up 009_change_feed', 'Up 010_merged_batches', 'Up 011_lean_single_writes'];
const caller = { principal: { kind: 'admin' as const, tenantId, actor: 'migration-test' }, requestId: null };

async function tableExists(db: Parameters<typeof migrationsApplied>[0], name: string): Promise<boolean> {
  const { rows } = await sql<{ present: boolean }>`SELECT to_regclass(${name}) IS NOT NULL AS present`.execute(db);
  return rows[0]!.present;
}

describe('migrations: up, down, up again keep the data the down migration promises to keep', () => {
  it('dropping the write function (005) restores the install byte counter equal to its namespaces, and re-applying it writes again', async () => {
    const t = await openTestDatabase();
    opened.push(t);
    const db = t.handle.db;
    const storage = new Storage(db, loadConfig({ NODE_ENV: 'test' }));
    await storage.upsertInstall(caller, { id: installId, extensionId: 'x', enabled: true, canRead: true, canWrite: true });
    await storage.putRecord(caller, { installId, namespace: 'one', key: 'a', value: 'x'.repeat(100), ttlSeconds: 600 });
    await storage.putRecord(caller, { installId, namespace: 'two', key: 'b', value: 'y'.repeat(50), metadata: { m: 1 } });
    expect(await migrateDown(db)).toEqual(['Down 011_lean_single_writes']);
    expect(await migrateDown(db)).toEqual(['Down 010_merged_batches']);
    expect(await migrateDown(db)).toEqual(['Down 009_change_feed']);
    expect(await migrateDown(db)).toEqual(['Down 008_commit_and_counters']);
    expect(await migrateDown(db)).toEqual(['Down 007_write_set_based']);
    expect(await migrateDown(db)).toEqual(['Down 006_write_batch']);
    expect(await migrateDown(db)).toEqual(['Down 005_write_function']);
    expect(await tableExists(db, 'ext_storage_expiries')).toBe(false);
    const { rows } = await sql<{ install: number }>`
      SELECT bytes::int AS install FROM ext_storage_install_locks WHERE tenant_id = ${tenantId}::uuid AND install_id = ${installId}::uuid`.execute(db);
    expect(rows[0]!.install).toBe(102 + 2 + 52 + JSON.stringify({ m: 1 }).length);
    expect(await migrateToLatest(db)).toEqual(['Up 005_write_function', 'Up 006_write_batch', 'Up 007_write_set_based', 'Up 008_commit_and_counters', 'Up 009_change_feed', 'Up 010_merged_batches', 'Up 011_lean_single_writes']);
    await t.assertCountersConsistent();
    expect((await storage.putRecord(caller, { installId, namespace: 'one', key: 'a', value: 2, ifRevision: 1 })).revision).toBe(2);
    await t.assertCountersConsistent();
  });

  it('applying 005 backfills the expiry minutes and drops namespace rows that hold nothing', async () => {
    const t = await openTestDatabase();
    opened.push(t);
    const db = t.handle.db;
    const storage = new Storage(db, loadConfig({ NODE_ENV: 'test' }));
    await storage.upsertInstall(caller, { id: installId, extensionId: 'x', enabled: true, canRead: true, canWrite: true });
    expect(await migrateDown(db)).toEqual(['Down 011_lean_single_writes']);
    expect(await migrateDown(db)).toEqual(['Down 010_merged_batches']);
    expect(await migrateDown(db)).toEqual(['Down 009_change_feed']);
    expect(await migrateDown(db)).toEqual(['Down 008_commit_and_counters']);
    expect(await migrateDown(db)).toEqual(['Down 007_write_set_based']);
    expect(await migrateDown(db)).toEqual(['Down 006_write_batch']);
    expect(await migrateDown(db)).toEqual(['Down 005_write_function']);
    // As the write path before 005 left them: records with TTLs, and a namespace row emptied by deletes.
    await sql`INSERT INTO ext_storage_records (tenant_id, install_id, namespace, key, value, metadata, value_bytes, metadata_bytes, revision,
                                               ttl_expires_at, created_at, updated_at)
              SELECT ${tenantId}::uuid, ${installId}::uuid, 'ns', k, v::jsonb, '{}', length(v), 2, 1, now() + d, now(), now()
                FROM (VALUES ('soon', '1', interval '10 minutes'), ('later', '22', interval '2 hours')) AS x(k, v, d)`.execute(db);
    await sql`INSERT INTO ext_storage_namespaces (tenant_id, install_id, namespace, key_count, bytes)
              SELECT ${tenantId}::uuid, ${installId}::uuid, n, c, b FROM (VALUES ('ns', 2, 7), ('empty', 0, 0)) AS x(n, c, b)`.execute(db);
    expect(await migrateToLatest(db)).toEqual(['Up 005_write_function', 'Up 006_write_batch', 'Up 007_write_set_based', 'Up 008_commit_and_counters', 'Up 009_change_feed', 'Up 010_merged_batches', 'Up 011_lean_single_writes']);
    await t.assertCountersConsistent();
    const scope = await storage.resolveInstall(caller, installId, 'read');
    expect(await storage.usage(caller, scope)).toEqual({ namespaces: 1, keys: 2, bytes: 7 });
  });

  it('dropping 008 takes commits and counters back out of the write function, and re-applying it brings them back', async () => {
    const t = await openTestDatabase();
    opened.push(t);
    const db = t.handle.db;
    const storage = new Storage(db, loadConfig({ NODE_ENV: 'test' }));
    await storage.upsertInstall(caller, { id: installId, extensionId: 'x', enabled: true, canRead: true, canWrite: true });
    expect((await storage.incrementRecord(caller, { installId, namespace: 'c', key: 'n', by: 2 })).value).toBe(2);
    expect(await migrateDown(db)).toEqual(['Down 011_lean_single_writes']);
    expect(await migrateDown(db)).toEqual(['Down 010_merged_batches']);
    expect(await migrateDown(db)).toEqual(['Down 009_change_feed']);
    expect(await migrateDown(db)).toEqual(['Down 008_commit_and_counters']);
    // 007's function knows no check: the stale check is not decided, so the commit writes.
    const unchecked = await storage.commit(caller, {
      installId,
      checks: [{ namespace: 'c', key: 'n', revision: 9 }],
      operations: [{ put: { namespace: 'c', key: 'p', value: 1 } }],
    });
    expect(unchecked.committed).toBe(true);
    expect(await migrateToLatest(db)).toEqual(['Up 008_commit_and_counters', 'Up 009_change_feed', 'Up 010_merged_batches', 'Up 011_lean_single_writes']);
    await t.assertCountersConsistent();
    await expect(
      storage.commit(caller, { installId, checks: [{ namespace: 'c', key: 'n', revision: 9 }], operations: [{ put: { namespace: 'c', key: 'p', value: 2 } }] }),
    ).rejects.toMatchObject({ code: 'REVISION_MISMATCH', conflicts: [{ index: 0, expectedRevision: 9, currentRevision: 1 }] });
    expect((await storage.incrementRecord(caller, { installId, namespace: 'c', key: 'n', by: 0.5 })).value).toBe(2.5);
    await t.assertCountersConsistent();
  });

  const opened: Array<{ dispose(): Promise<void> }> = [];
  afterAll(async () => {
    for (const o of opened) await o.dispose();
  });

  it('dropping the schema/audit migration keeps installs and records; re-applying it restores writes', async () => {
    const t = await openTestDatabase();
    opened.push(t);
    const db = t.handle.db;
    const storage = new Storage(db, loadConfig({ NODE_ENV: 'test' }));
    await storage.upsertInstall(caller, { id: installId, extensionId: 'x', enabled: true, canRead: true, canWrite: true });
    await storage.putRecord(caller, { installId, namespace: 'ns', key: 'kept', value: { n: 1 } });
    expect(await migrationsApplied(db)).toBe(true);

    expect(await migrateDown(db)).toEqual(['Down 011_lean_single_writes']);
    expect(await migrateDown(db)).toEqual(['Down 010_merged_batches']);
    expect(await migrateDown(db)).toEqual(['Down 009_change_feed']);
    expect(await migrateDown(db)).toEqual(['Down 008_commit_and_counters']);
    expect(await migrateDown(db)).toEqual(['Down 007_write_set_based']);
    expect(await migrateDown(db)).toEqual(['Down 006_write_batch']);
    expect(await migrateDown(db)).toEqual(['Down 005_write_function']);
    expect(await migrateDown(db)).toEqual(['Down 004_install_bytes']);
    expect(await migrateDown(db)).toEqual(['Down 003_install_write_sequence']);
    expect(await migrateDown(db)).toEqual(['Down 002_schemas_and_audit']);
    expect(await tableExists(db, 'ext_storage_audit')).toBe(false);
    expect(await tableExists(db, 'ext_storage_schemas')).toBe(false);
    expect(await migrationsApplied(db)).toBe(false);
    const { rows } = await sql<{ key: string; revision: number }>`
      SELECT key, revision FROM ext_storage_records WHERE tenant_id = ${tenantId}::uuid`.execute(db);
    expect(rows).toEqual([{ key: 'kept', revision: 1 }]);

    expect(await migrateToLatest(db)).toEqual(['Up 002_schemas_and_audit', 'Up 003_install_write_sequence', 'Up 004_install_bytes', 'Up 005_write_function', 'Up 006_write_batch', 'Up 007_write_set_based', 'Up 008_commit_and_counters', 'Up 009_change_feed', 'Up 010_merged_batches', 'Up 011_lean_single_writes']);
    const again = new Storage(db, loadConfig({ NODE_ENV: 'test' }));
    const scope = await again.resolveInstall(caller, installId, 'read');
    expect((await again.readRecords(scope, 'ns', ['kept'])).get('kept')?.value).toEqual(new JsonText('{"n": 1}'));
    const updated = await again.putRecord(caller, { installId, namespace: 'ns', key: 'kept', value: { n: 2 }, ifRevision: 1 });
    expect(updated.revision).toBe(2);
    expect(await again.usage(caller, scope)).toEqual({ namespaces: 1, keys: 1, bytes: JSON.stringify({ n: 2 }).length + 2 });
  });

  it('dropping 011 goes back to 010\'s write function: the same answers, the sweep and the counters still exact', async () => {
    const t = await openTestDatabase();
    opened.push(t);
    const db = t.handle.db;
    const storage = new Storage(db, loadConfig({ NODE_ENV: 'test', STORAGE_MIN_TTL_SECONDS: '1' }));
    await storage.upsertInstall(caller, { id: installId, extensionId: 'x', enabled: true, canRead: true, canWrite: true });
    // Each round finds the last round's 'short' expired: its put sweeps it.
    const write = async () => {
      await new Promise((r) => setTimeout(r, 1_100));
      await storage.putRecord(caller, { installId, namespace: 'n', key: 'a', value: 1 });
      await storage.putRecord(caller, { installId, namespace: 'n', key: 'short', value: 2, ttlSeconds: 1 });
      await storage.deleteRecord(caller, { installId, namespace: 'n', key: 'a' });
    };
    await write();
    expect(await migrateDown(db)).toEqual(['Down 011_lean_single_writes']);
    await write();
    expect(await migrateToLatest(db)).toEqual(['Up 011_lean_single_writes']);
    await write();
    await t.assertCountersConsistent();
    const scope = await storage.resolveInstall(caller, installId, 'read');
    expect(await storage.usage(caller, scope)).toMatchObject({ namespaces: 1, keys: 1 });
  });

  it('down all the way removes every table, and up again works on the empty database', async () => {
    const t = await openTestDatabase();
    opened.push(t);
    const db = t.handle.db;
    for (let i = 0; i < ALL_UP.length; i++) await migrateDown(db);
    for (const table of ['ext_storage_changes', 'ext_storage_records', 'ext_storage_installs', 'ext_storage_namespaces', 'ext_storage_install_locks', 'ext_storage_expiries']) {
      expect(await tableExists(db, table)).toBe(false);
    }
    expect(await migrateToLatest(db)).toEqual(ALL_UP);
    expect(await migrationsApplied(db)).toBe(true);
  });
});

describe.skipIf(backend !== 'postgres')('two instances starting at once', () => {
  it('both migrate the same empty database without error, and the schema is applied once', async () => {
    const created = await createPostgresDatabase();
    const cfg = { databaseUrl: created.url, pgliteDir: '', db: { poolMax: 4, statementTimeoutMs: 10_000, connectionTimeoutMs: 5_000 } };
    const handles = await Promise.all([openDatabase(cfg), openDatabase(cfg), openDatabase(cfg)]);
    try {
      const results = await Promise.all(handles.map((h) => migrateToLatest(h.db)));
      expect(results.flat().sort()).toEqual(ALL_UP);
      for (const h of handles) expect(await migrationsApplied(h.db)).toBe(true);
    } finally {
      for (const h of handles) await h.close();
      await created.drop();
    }
  });
});
