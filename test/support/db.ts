/** A fresh, migrated database per test file, on the backend this vitest project runs (PGlite or PostgreSQL). */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openDatabase, type DatabaseHandle, type QueryObserver } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { createCitusGuard, loadParser } from './citus-guard.js';

export const backend = (process.env.TEST_BACKEND ?? 'pglite') as 'pglite' | 'postgres';
export const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/postgres';

export interface TestDatabase {
  handle: DatabaseHandle;
  /** Set when the backend is PostgreSQL: the URL of this file's own database. */
  url: string | undefined;
  dispose(): Promise<void>;
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
    async dispose() {
      await handle.close().catch(() => undefined);
      guard.assertClean();
    },
  };
}
