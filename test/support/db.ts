/** A fresh, migrated database per test file, on the backend this vitest project runs (PGlite or PostgreSQL). */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openDatabase, type DatabaseHandle, type QueryObserver } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { sql } from 'kysely';
import { createCitusGuard, FAN_OUT_MARK, loadParser } from './citus-guard.js';

export const backend = (process.env.TEST_BACKEND ?? 'pglite') as 'pglite' | 'postgres';
export const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/postgres';

export interface TestDatabase {
  handle: DatabaseHandle;
  /** Set when the backend is PostgreSQL: the URL of this file's own database. */
  url: string | undefined;
  /**
   * The counters every write keeps must equal what is stored: each namespace's key count and bytes
   * (expired-unswept records included) against a recount of the records, and each install's bytes
   * against the sum of its namespaces. Throws naming the first rows that differ.
   */
  assertCountersConsistent(): Promise<void>;
  dispose(): Promise<void>;
}

async function assertCountersConsistent(handle: DatabaseHandle): Promise<void> {
  const { rows } = await sql<Record<string, unknown>>`${sql.raw(FAN_OUT_MARK)}
    SELECT 'namespace' AS counter, n.tenant_id, n.install_id, n.namespace, n.key_count, n.bytes,
           coalesce(r.keys, 0) AS stored_keys, coalesce(r.bytes, 0) AS stored_bytes
      FROM ext_storage_namespaces n
      LEFT JOIN (SELECT tenant_id, install_id, namespace, count(*)::int AS keys, sum(value_bytes + metadata_bytes)::bigint AS bytes
                   FROM ext_storage_records GROUP BY 1, 2, 3) r
        ON r.tenant_id = n.tenant_id AND r.install_id = n.install_id AND r.namespace = n.namespace
     WHERE n.key_count <> coalesce(r.keys, 0) OR n.bytes <> coalesce(r.bytes, 0)
    UNION ALL
    SELECT 'install', l.tenant_id, l.install_id, NULL, NULL, l.bytes, NULL, coalesce(s.bytes, 0)
      FROM ext_storage_install_locks l
      LEFT JOIN (SELECT tenant_id, install_id, sum(bytes)::bigint AS bytes FROM ext_storage_namespaces GROUP BY 1, 2) s
        ON s.tenant_id = l.tenant_id AND s.install_id = l.install_id
     WHERE l.bytes <> coalesce(s.bytes, 0)
    UNION ALL
    SELECT 'orphan records', r.tenant_id, r.install_id, r.namespace, count(*)::int, NULL, NULL, NULL
      FROM ext_storage_records r
     WHERE NOT EXISTS (SELECT 1 FROM ext_storage_namespaces n
                        WHERE n.tenant_id = r.tenant_id AND n.install_id = r.install_id AND n.namespace = r.namespace)
     GROUP BY 1, 2, 3, 4
     LIMIT 5`.execute(handle.db);
  if (rows.length > 0) throw new Error(`usage counters differ from what is stored:\n${rows.map((r) => JSON.stringify(r)).join('\n')}`);
}

function databaseUrl(name: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Creates an empty PostgreSQL database (name returned) for a test that manages its own server. */
export async function createPostgresDatabase(): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `ext_storage_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return {
    name,
    url: databaseUrl(name),
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/**
 * Every statement sent through a test database is checked by the Citus guard (design/citus.md);
 * dispose() fails the test file when one broke a rule.
 */
export async function openTestDatabase(observers: QueryObserver[] = [], poolMax = 20): Promise<TestDatabase> {
  const dbConfig = { poolMax, statementTimeoutMs: 10_000, connectionTimeoutMs: 5_000 };
  await loadParser();
  const guard = createCitusGuard();
  observers = [(e) => guard.observe(e), ...observers];
  if (backend === 'postgres') {
    const created = await createPostgresDatabase();
    const handle = await openDatabase({ databaseUrl: created.url, pgliteDir: '', db: dbConfig }, observers);
    await migrateToLatest(handle.db);
    return {
      handle,
      url: created.url,
      assertCountersConsistent: () => assertCountersConsistent(handle),
      async dispose() {
        await handle.close().catch(() => undefined);
        await created.drop();
        guard.assertClean();
      },
    };
  }
  const handle = await openDatabase({ databaseUrl: undefined, pgliteDir: 'memory://', db: dbConfig }, observers);
  await migrateToLatest(handle.db);
  return {
    handle,
    url: undefined,
    assertCountersConsistent: () => assertCountersConsistent(handle),
    async dispose() {
      await handle.close().catch(() => undefined);
      guard.assertClean();
    },
  };
}
