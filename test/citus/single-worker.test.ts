/**
 * On a real Citus cluster (TEST_CITUS_WORKERS set; README, "Running the suite on Citus"): a put, a
 * bulk put, a delete, a TTL sweep and a batch of combined writes each run on the one worker that
 * holds the tenant, as one delegated call. Citus reports every command it sends to a node (citus.log_remote_commands); the
 * writes go through the storage core on a connection that collects those reports.
 */
import { randomUUID } from 'node:crypto';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import type { Database } from '../../src/db/tables.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { Storage } from '../../src/storage/storage.js';
import { createPostgresDatabase, onCitus } from '../support/db.js';

describe.skipIf(!onCitus)('on Citus, every write runs on the tenant’s worker only', () => {
  let database: Awaited<ReturnType<typeof createPostgresDatabase>>;
  let db: Kysely<Database>;
  let pool: pg.Pool;
  const remote: string[] = [];
  const tenantId = randomUUID();
  const installId = randomUUID();
  const caller = { principal: { kind: 'admin' as const, tenantId, actor: 'citus-test' }, requestId: null };
  let storage: Storage;

  beforeAll(async () => {
    database = await createPostgresDatabase();
    pool = new pg.Pool({ connectionString: database.url, max: 1 });
    pool.on('connect', (client) => {
      client.on('notice', (n) => {
        if (n.message?.startsWith('issuing')) remote.push(`${n.message} | ${n.detail ?? ''}`);
      });
      void client.query("SET citus.log_remote_commands = on; SET client_min_messages = 'notice'");
    });
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    await migrateToLatest(db);
    storage = new Storage(db, loadConfig({ NODE_ENV: 'test', STORAGE_MIN_TTL_SECONDS: '1' }));
    await storage.upsertInstall(caller, { id: installId, extensionId: 'x', enabled: true, canRead: true, canWrite: true });
  });

  afterAll(async () => {
    await db?.destroy();
    await database?.drop();
  });

  /** The nodes (host:port) the coordinator sent commands to while `run` ran, and those commands. */
  async function nodesUsedBy(run: () => Promise<unknown>): Promise<{ nodes: string[]; commands: string[] }> {
    remote.length = 0;
    await run();
    const nodes = [...new Set(remote.map((r) => /on server \S+@(\S+)/.exec(r)?.[1] ?? '?'))];
    return { nodes, commands: [...remote] };
  }

  async function tenantWorker(): Promise<string> {
    const { rows } = await pool.query(
      `SELECT nodename || ':' || nodeport AS node FROM pg_dist_shard_placement
        WHERE shardid = get_shard_id_for_distribution_column('ext_storage_records', $1::uuid)`,
      [tenantId],
    );
    return rows[0].node;
  }

  it('a put, a bulk put, a delete and a TTL sweep: one command each, to the tenant’s worker', async () => {
    const worker = await tenantWorker();
    const steps: Array<[string, () => Promise<unknown>]> = [
      ['put', () => storage.putRecord(caller, { installId, namespace: 'ns', key: 'a', value: 1, ttlSeconds: 1 })],
      ['bulk put', () => storage.bulkPutRecords(caller, { installId, namespace: 'ns', items: [{ key: 'b', value: 2 }, { key: 'c', value: 3 }] })],
      ['delete', () => storage.deleteRecord(caller, { installId, namespace: 'ns', key: 'b' })],
    ];
    for (const [name, step] of steps) {
      const { nodes, commands } = await nodesUsedBy(step);
      expect(nodes, `${name}: ${commands.join('\n')}`).toEqual([worker]);
      expect(commands.filter((c) => c.includes('ext_storage_write_v1')), name).toHaveLength(1);
      // Besides the call, at most a read of the active schema version (cached per process afterwards).
      expect(commands.filter((c) => !c.includes('ext_storage_write_v1') && !/^issuing SELECT max\(version\)/.test(c)), name).toEqual([]);
    }
    await new Promise((resolve) => setTimeout(resolve, 1300));
    // The next write removes the expired record "a" in the same delegated call.
    const sweep = await nodesUsedBy(() => storage.putRecord(caller, { installId, namespace: 'ns', key: 'd', value: 4 }));
    expect(sweep.nodes).toEqual([worker]);
    expect(sweep.commands.filter((c) => c.includes('ext_storage_write_v1'))).toHaveLength(1);
    const { rows } = await pool.query('SELECT key FROM ext_storage_records WHERE tenant_id = $1 ORDER BY key', [tenantId]);
    expect(rows.map((r) => r.key)).toEqual(['c', 'd']);
  });

  it('combined writes of one install: one batch call, one command, to the tenant’s worker', async () => {
    const worker = await tenantWorker();
    // The pool has one connection: the first put holds the install's lane, the other five wait and go as one batch.
    const { nodes, commands } = await nodesUsedBy(() =>
      Promise.all(Array.from({ length: 6 }, (_, i) => storage.putRecord(caller, { installId, namespace: 'batch', key: `k${i}`, value: i }))),
    );
    expect(nodes, commands.join('\n')).toEqual([worker]);
    expect(commands.filter((c) => c.includes('ext_storage_write_v1(')), commands.join('\n')).toHaveLength(1);
    expect(commands.filter((c) => c.includes('ext_storage_write_batch_v1(')), commands.join('\n')).toHaveLength(1);
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM ext_storage_records WHERE tenant_id = $1 AND namespace = 'batch'`, [tenantId]);
    expect(rows[0].n).toBe(6);
  });

  it('a usage read is one command to the tenant’s worker', async () => {
    const worker = await tenantWorker();
    const scope = await storage.resolveInstall(caller, installId, 'read');
    const { nodes, commands } = await nodesUsedBy(() => storage.usage(caller, scope));
    expect(nodes).toEqual([worker]);
    expect(commands.filter((c) => c.includes('ext_storage_usage_v1'))).toHaveLength(1);
  });
});
