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
   * (expired-unswept records included) and each expiry bucket's keys and bytes against a recount of
   * the records; no row for a namespace or bucket that holds nothing. Throws naming the first rows that differ.
   */
  assertCountersConsistent(): Promise<void>;
  dispose(): Promise<void>;
}

/** Runs a test's deliberately cross-tenant statements (docs/citus.md rule 12), allowed to fan out on Citus. */
export function withFanOut<T>(db: DatabaseHandle['db'], run: (trx: DatabaseHandle['db']) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (trx) => {
    if (onCitus) await sql`SET LOCAL citus.multi_task_query_log_level = 'notice'`.execute(trx);
    return run(trx);
  });
}

export async function assertCountersConsistent(handle: DatabaseHandle): Promise<void> {
  const rows = (await withFanOut(handle.db, recount)).rows;
  if (rows.length > 0) throw new Error(`usage counters differ from what is stored:\n${rows.map((r) => JSON.stringify(r)).join('\n')}`);
}

function recount(db: DatabaseHandle['db']) {
  return sql<Record<string, unknown>>`${sql.raw(FAN_OUT_MARK)}
    WITH stored AS (
      SELECT tenant_id, install_id, namespace, count(*)::int AS keys, sum(value_bytes + metadata_bytes)::bigint AS bytes
        FROM ext_storage_records GROUP BY 1, 2, 3
    ), stored_buckets AS (
      SELECT r.tenant_id, r.install_id, r.namespace, w.width, ext_storage_expiry_bucket(r.ttl_expires_at, w.width) AS bucket,
             count(*)::int AS keys, sum(r.value_bytes + r.metadata_bytes)::bigint AS bytes
        FROM ext_storage_records r CROSS JOIN (VALUES (60::smallint), (1::smallint)) AS w(width)
       WHERE r.ttl_expires_at IS NOT NULL GROUP BY 1, 2, 3, 4, 5
    )
    SELECT 'namespace' AS counter, coalesce(n.tenant_id, s.tenant_id) AS tenant_id, coalesce(n.install_id, s.install_id) AS install_id,
           coalesce(n.namespace, s.namespace) AS namespace, NULL::timestamptz AS bucket, n.key_count AS keys, n.bytes,
           s.keys AS stored_keys, s.bytes AS stored_bytes
      FROM ext_storage_namespaces n
      FULL JOIN stored s ON s.tenant_id = n.tenant_id AND s.install_id = n.install_id AND s.namespace = n.namespace
     WHERE n.key_count IS DISTINCT FROM s.keys OR n.bytes IS DISTINCT FROM s.bytes
    UNION ALL
    SELECT 'expiry bucket of ' || coalesce(e.width, s.width) || ' s', coalesce(e.tenant_id, s.tenant_id), coalesce(e.install_id, s.install_id),
           coalesce(e.namespace, s.namespace), coalesce(e.bucket, s.bucket), e.keys, e.bytes, s.keys, s.bytes
      FROM ext_storage_expiries e
      FULL JOIN stored_buckets s ON s.tenant_id = e.tenant_id AND s.install_id = e.install_id AND s.namespace = e.namespace
                                AND s.width = e.width AND s.bucket = e.bucket
     WHERE e.keys IS DISTINCT FROM s.keys OR e.bytes IS DISTINCT FROM s.bytes
     LIMIT 5`.execute(db);
}

function databaseUrl(name: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

/**
 * A Citus cluster to run the suite on (README, "Running the suite on Citus"): TEST_DATABASE_URL
 * names the coordinator and TEST_CITUS_WORKERS its workers (host:port, comma-separated). Each
 * test database then gets the extension on every node and the workers as its nodes, and request
 * paths run with citus.multi_task_query_log_level = error, so a statement that fans out fails.
 */
export const citusWorkers = (process.env.TEST_CITUS_WORKERS ?? '')
  .split(',')
  .map((w) => w.trim())
  .filter(Boolean)
  .map((w) => {
    const [host, port] = w.split(':');
    return { host: host!, port: Number(port ?? 5432) };
  });
export const onCitus = citusWorkers.length > 0;

async function onNode<T>(url: string, run: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

function nodeUrl(base: string, host: string, port: number, database: string): string {
  const u = new URL(base);
  u.hostname = host;
  u.port = String(port);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Makes a new database on the coordinator a Citus database: extension everywhere, workers added. */
async function distribute(name: string): Promise<void> {
  for (const w of citusWorkers) await onNode(nodeUrl(adminUrl, w.host, w.port, name), (c) => c.query('CREATE EXTENSION IF NOT EXISTS citus'));
  const coordinator = new URL(adminUrl);
  await onNode(databaseUrl(name), async (c) => {
    await c.query('CREATE EXTENSION IF NOT EXISTS citus');
    await c.query('SELECT citus_set_coordinator_host($1, $2)', [coordinator.hostname, Number(coordinator.port || 5432)]);
    for (const w of citusWorkers) await c.query('SELECT citus_add_node($1, $2)', [w.host, w.port]);
  });
  await onNode(adminUrl, async (c) => {
    // Few shards keep a test database quick to create; every statement must still stay on one of them.
    await c.query(`ALTER DATABASE ${name} SET citus.shard_count = 4`);
    await c.query(`ALTER DATABASE ${name} SET citus.multi_task_query_log_level = 'error'`);
  });
}

/** Creates an empty PostgreSQL (or Citus) database (name returned) for a test that manages its own server. */
export async function createPostgresDatabase(): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `ext_storage_test_${randomBytes(6).toString('hex')}`;
  const inCluster = async (c: pg.Client, statement: string) => {
    if (onCitus) await c.query('SET citus.enable_create_database_propagation = on');
    await c.query(statement);
  };
  await onNode(adminUrl, (c) => inCluster(c, `CREATE DATABASE ${name}`));
  if (onCitus) await distribute(name);
  return {
    name,
    url: databaseUrl(name),
    async drop() {
      // On Citus, FORCE ends the coordinator's sessions, but a worker can still hold, for a moment,
      // a connection a distributed statement opened there ("being accessed by other users", 55006).
      for (let attempt = 1; ; attempt++) {
        try {
          await onNode(adminUrl, (c) => inCluster(c, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
          return;
        } catch (error) {
          if (!onCitus || (error as { code?: string }).code !== '55006' || attempt >= 20) throw error;
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
    },
  };
}

/**
 * Every statement sent through a test database is checked by the Citus guard (docs/citus.md);
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

/** Resolves once some session of the database at `url` waits for a lock (any node on Citus); throws after 10 s. */
export async function waitForLockWait(url: string): Promise<void> {
  const watcher = new pg.Client({ connectionString: url });
  await watcher.connect();
  try {
    const view = onCitus ? 'citus_stat_activity' : 'pg_stat_activity';
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
      const { rows } = await watcher.query(`SELECT count(*)::int AS n FROM ${view} WHERE datname = current_database() AND wait_event_type = 'Lock'`);
      if (rows[0].n > 0) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error('no session waited for a lock within 10 s');
  } finally {
    await watcher.end();
  }
}
