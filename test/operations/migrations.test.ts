import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { openDatabase } from '../../src/db/database.js';
import { migrateDown, migrateToLatest, migrationsApplied } from '../../src/db/migrate.js';
import { Storage } from '../../src/storage/storage.js';
import { backend, createPostgresDatabase, openTestDatabase } from '../support/db.js';

const tenantId = '3d1f9a2e-5b6c-4d7e-8f90-1a2b3c4d5e6f';
const installId = '7e8f9a0b-1c2d-4e3f-8a5b-6c7d8e9f0a1b';
const caller = { principal: { kind: 'admin' as const, tenantId, actor: 'migration-test' }, requestId: null };

async function tableExists(db: Parameters<typeof migrationsApplied>[0], name: string): Promise<boolean> {
  const { rows } = await sql<{ present: boolean }>`SELECT to_regclass(${name}) IS NOT NULL AS present`.execute(db);
  return rows[0]!.present;
}

describe('migrations: up, down, up again keep the data the down migration promises to keep', () => {
  it('dropping the write-sequence column keeps every row, and writes work again after re-applying it', async () => {
    const t = await openTestDatabase();
    opened.push(t);
    const db = t.handle.db;
    const storage = new Storage(db, loadConfig({ NODE_ENV: 'test' }));
    await storage.upsertInstall(caller, { id: installId, extensionId: 'x', enabled: true, canRead: true, canWrite: true });
    await storage.putRecord(caller, { installId, namespace: 'ns', key: 'a', value: 1 });
    expect(await migrateDown(db)).toEqual(['Down 004_install_bytes']);
    expect(await migrateDown(db)).toEqual(['Down 003_install_write_sequence']);
    const { rows } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM ext_storage_install_locks WHERE tenant_id = ${tenantId}::uuid`.execute(db);
    expect(rows[0]!.n).toBe(1);
    expect(await migrateToLatest(db)).toEqual(['Up 003_install_write_sequence', 'Up 004_install_bytes']);
    expect((await storage.putRecord(caller, { installId, namespace: 'ns', key: 'a', value: 2, ifRevision: 1 })).revision).toBe(2);
  });

  it('the install-bytes column is backfilled from the namespace counters, and writes keep it equal to them', async () => {
    const t = await openTestDatabase();
    opened.push(t);
    const db = t.handle.db;
    const storage = new Storage(db, loadConfig({ NODE_ENV: 'test' }));
    await storage.upsertInstall(caller, { id: installId, extensionId: 'x', enabled: true, canRead: true, canWrite: true });
    await storage.putRecord(caller, { installId, namespace: 'one', key: 'a', value: 'x'.repeat(100) });
    await storage.putRecord(caller, { installId, namespace: 'two', key: 'b', value: 'y'.repeat(50), metadata: { m: 1 } });
    const installBytes = async () => {
      const { rows } = await sql<{ install: number; namespaces: number }>`
        SELECT l.bytes::int AS install, (SELECT sum(n.bytes)::int FROM ext_storage_namespaces n
                                          WHERE n.tenant_id = ${tenantId}::uuid AND n.install_id = l.install_id) AS namespaces
          FROM ext_storage_install_locks l WHERE l.tenant_id = ${tenantId}::uuid AND l.install_id = ${installId}::uuid`.execute(db);
      return rows[0]!;
    };
    const expected = 102 + 2 + 52 + JSON.stringify({ m: 1 }).length;
    expect(await installBytes()).toEqual({ install: expected, namespaces: expected });
    expect(await migrateDown(db)).toEqual(['Down 004_install_bytes']);
    // Written while the column is gone: the backfill must count it.
    await sql`UPDATE ext_storage_namespaces SET bytes = bytes + 5 WHERE tenant_id = ${tenantId}::uuid AND namespace = 'one'`.execute(db);
    expect(await migrateToLatest(db)).toEqual(['Up 004_install_bytes']);
    expect(await installBytes()).toEqual({ install: expected + 5, namespaces: expected + 5 });
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

    expect(await migrateDown(db)).toEqual(['Down 004_install_bytes']);
    expect(await migrateDown(db)).toEqual(['Down 003_install_write_sequence']);
    expect(await migrateDown(db)).toEqual(['Down 002_schemas_and_audit']);
    expect(await tableExists(db, 'ext_storage_audit')).toBe(false);
    expect(await tableExists(db, 'ext_storage_schemas')).toBe(false);
    expect(await migrationsApplied(db)).toBe(false);
    const { rows } = await sql<{ key: string; revision: number }>`
      SELECT key, revision FROM ext_storage_records WHERE tenant_id = ${tenantId}::uuid`.execute(db);
    expect(rows).toEqual([{ key: 'kept', revision: 1 }]);

    expect(await migrateToLatest(db)).toEqual(['Up 002_schemas_and_audit', 'Up 003_install_write_sequence', 'Up 004_install_bytes']);
    const again = new Storage(db, loadConfig({ NODE_ENV: 'test' }));
    const scope = await again.resolveInstall(caller, installId, 'read');
    expect((await again.readRecords(scope, 'ns', ['kept'])).get('kept')?.value).toEqual({ n: 1 });
    const updated = await again.putRecord(caller, { installId, namespace: 'ns', key: 'kept', value: { n: 2 }, ifRevision: 1 });
    expect(updated.revision).toBe(2);
    expect(await again.usage(scope)).toEqual({ namespaces: 1, keys: 1, bytes: JSON.stringify({ n: 2 }).length + 2 });
  });

  it('down all the way removes every table, and up again works on the empty database', async () => {
    const t = await openTestDatabase();
    opened.push(t);
    const db = t.handle.db;
    await migrateDown(db);
    await migrateDown(db);
    await migrateDown(db);
    await migrateDown(db);
    for (const table of ['ext_storage_records', 'ext_storage_installs', 'ext_storage_namespaces', 'ext_storage_install_locks']) {
      expect(await tableExists(db, table)).toBe(false);
    }
    expect(await migrateToLatest(db)).toEqual(['Up 001_storage_tables', 'Up 002_schemas_and_audit', 'Up 003_install_write_sequence', 'Up 004_install_bytes']);
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
      expect(results.flat().sort()).toEqual(['Up 001_storage_tables', 'Up 002_schemas_and_audit', 'Up 003_install_write_sequence', 'Up 004_install_bytes']);
      for (const h of handles) expect(await migrationsApplied(h.db)).toBe(true);
    } finally {
      for (const h of handles) await h.close();
      await created.drop();
    }
  });
});
