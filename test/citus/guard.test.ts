import { beforeAll, describe, expect, it } from 'vitest';
import { checkSql, FAN_OUT_MARK, loadParser } from '../support/citus-guard.js';

beforeAll(async () => {
  await loadParser();
});

const rules = (sql: string) => checkSql(sql).map((v) => v.rule);

describe('the Citus guard refuses statements that would not stay on one shard', () => {
  it('a distributed table read without a tenant filter', () => {
    expect(rules('SELECT key FROM ext_storage_records WHERE install_id = $1')).toEqual(['tenant-filter']);
  });

  it('a tenant filter under OR, through a function, or over several tenants', () => {
    expect(rules('SELECT 1 FROM ext_storage_records WHERE tenant_id = $1 OR install_id = $2')).toEqual(['tenant-filter']);
    expect(rules('SELECT 1 FROM ext_storage_records WHERE lower(tenant_id::text) = $1')).toEqual(['tenant-filter']);
    expect(rules('SELECT 1 FROM ext_storage_records WHERE tenant_id = ANY($1)')).toEqual(['tenant-filter']);
    expect(rules("SELECT 1 FROM ext_storage_records WHERE tenant_id = 'x'")).toEqual(['tenant-filter']);
  });

  it('a join of distributed tables without tenant equality', () => {
    const sql = `SELECT 1 FROM ext_storage_records r JOIN ext_storage_namespaces n ON n.namespace = r.namespace
                 WHERE r.tenant_id = $1`;
    expect(rules(sql)).toEqual(['tenant-filter']);
    const joined = `SELECT 1 FROM ext_storage_records r JOIN ext_storage_namespaces n
                    ON n.tenant_id = r.tenant_id AND n.namespace = r.namespace WHERE r.tenant_id = $1`;
    expect(rules(joined)).toEqual([]);
  });

  it('an unfiltered subquery or CTE inside an otherwise filtered statement', () => {
    expect(rules('SELECT 1 FROM ext_storage_records WHERE tenant_id = $1 AND key IN (SELECT key FROM ext_storage_audit)')).toEqual([
      'tenant-filter',
    ]);
    expect(rules('WITH d AS (DELETE FROM ext_storage_records WHERE key = $2 RETURNING key) SELECT * FROM d')).toEqual(['tenant-filter']);
  });

  it('an UPDATE or DELETE without a tenant filter, or one that changes tenant_id', () => {
    expect(rules('UPDATE ext_storage_namespaces SET key_count = 0 WHERE install_id = $1')).toEqual(['tenant-filter']);
    expect(rules('DELETE FROM ext_storage_records WHERE install_id = $1')).toEqual(['tenant-filter']);
    expect(rules('UPDATE ext_storage_records SET tenant_id = $2 WHERE tenant_id = $1')).toEqual(['tenant-update']);
  });

  it('volatile functions in ON CONFLICT DO UPDATE SET or RETURNING', () => {
    const upsert = `INSERT INTO ext_storage_records (tenant_id, install_id, namespace, key, updated_at) VALUES ($1, $2, $3, $4, now())
                    ON CONFLICT (tenant_id, install_id, namespace, key) DO UPDATE SET updated_at = now()`;
    expect(rules(upsert)).toEqual(['volatile']);
    expect(rules(upsert.replace('updated_at = now()', 'updated_at = CURRENT_TIMESTAMP'))).toEqual(['volatile']);
    expect(rules(upsert.replace('updated_at = now()', 'updated_at = EXCLUDED.updated_at'))).toEqual([]);
    expect(rules('DELETE FROM ext_storage_records WHERE tenant_id = $1 RETURNING clock_timestamp()')).toEqual(['volatile']);
  });

  it('inserts whose rows do not all carry the same tenant parameter', () => {
    expect(rules('INSERT INTO ext_storage_audit (tenant_id, install_id) VALUES ($1, $2), ($3, $2)')).toEqual(['tenant-filter']);
    expect(rules('INSERT INTO ext_storage_audit (install_id) VALUES ($1)')).toEqual(['tenant-filter']);
    expect(rules('INSERT INTO ext_storage_audit (tenant_id, install_id) VALUES ($1, $2), ($1, $3)')).toEqual([]);
  });

  it('unique keys and conflict targets without tenant_id', () => {
    expect(rules('CREATE TABLE ext_storage_schemas (tenant_id uuid, id int PRIMARY KEY)')).toEqual(['unique-key']);
    expect(rules('CREATE UNIQUE INDEX x ON ext_storage_records (install_id, key)')).toEqual(['unique-key']);
    expect(rules(`INSERT INTO ext_storage_namespaces (tenant_id, install_id) VALUES ($1, $2)
                  ON CONFLICT (install_id, namespace) DO NOTHING`)).toEqual(['unique-key']);
  });

  it('waives only the tenant filter for a statement marked as a deliberate fan-out (a migration backfill)', () => {
    const backfill = `UPDATE ext_storage_install_locks l SET bytes = s.bytes
      FROM (SELECT tenant_id, install_id, sum(bytes) AS bytes FROM ext_storage_namespaces GROUP BY 1, 2) s
     WHERE s.tenant_id = l.tenant_id AND s.install_id = l.install_id`;
    expect(rules(backfill)).toContain('tenant-filter');
    expect(rules(`${FAN_OUT_MARK} ${backfill}`)).toEqual([]);
    expect(rules(`${FAN_OUT_MARK} UPDATE ext_storage_records SET tenant_id = $1 WHERE key = $2`)).toEqual(['tenant-update']);
  });

  it('leaves global (reference) tables alone', () => {
    expect(rules('SELECT * FROM ext_storage_installs WHERE id = $1')).toEqual([]);
  });
});

describe('the guard watches every statement the test suite sends', () => {
  it('a test database that saw a violating statement fails on dispose', async () => {
    const { openTestDatabase } = await import('../support/db.js');
    const { sql } = await import('kysely');
    const t = await openTestDatabase();
    await sql`SELECT count(*) FROM ext_storage_records WHERE install_id = ${'00000000-0000-0000-0000-000000000000'}::uuid`.execute(t.handle.db);
    await expect(t.dispose()).rejects.toThrow(/Citus guard: 1 statement/);
  });

  it('the storage core itself sends only clean statements (checked for every test file on dispose)', async () => {
    const { openTestDatabase } = await import('../support/db.js');
    const { Storage } = await import('../../src/storage/storage.js');
    const { loadConfig } = await import('../../src/config.js');
    const t = await openTestDatabase();
    const storage = new Storage(t.handle.db, loadConfig({ NODE_ENV: 'test' }));
    const tenantId = '6f1c2a52-0d5e-4a53-9d8e-3b1b2b7c0a11';
    const caller = { principal: { kind: 'admin' as const, tenantId, actor: 'guard' }, requestId: null };
    const install = await storage.upsertInstall(caller, { id: 'a3f1d7c0-6b9e-4a3c-8d41-2f3e5a6b7c8d', extensionId: 'x', enabled: true, canRead: true, canWrite: true });
    await storage.setNamespaceSchema(caller, { installId: install.id, namespace: 'ns', schema: { type: 'object' } });
    await storage.putRecord(caller, { installId: install.id, namespace: 'ns', key: 'a', value: {}, ttlSeconds: 60 });
    await storage.bulkPutRecords(caller, { installId: install.id, namespace: 'ns', items: [{ key: 'b', value: {} }, { key: 'c', value: {} }] });
    await storage.deleteRecord(caller, { installId: install.id, namespace: 'ns', key: 'b' });
    const scope = await storage.resolveInstall(caller, install.id, 'read');
    await storage.listRecords(scope, 'ns', { first: 10, prefix: 'a' });
    await storage.usage(scope);
    await storage.auditLog(caller, scope, 10, null);
    await storage.listInstalls(caller, 10, null);
    await expect(t.dispose()).resolves.toBeUndefined();
  });
});
