import { sql, type Kysely } from 'kysely';

export async function hasCitus<DB>(db: Kysely<DB>): Promise<boolean> {
  const { rows } = await sql<{ present: boolean }>`
    SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') AS present`.execute(db);
  return rows[0]?.present === true;
}

/**
 * For a statement that fans out across tenants on purpose (a migration's backfill, an operator
 * job): lets it run where request paths set citus.multi_task_query_log_level = 'error' (until the
 * end of the current transaction). No-op without Citus.
 */
export async function allowFanOut<DB>(db: Kysely<DB>): Promise<void> {
  if (await hasCitus(db)) await sql`SET LOCAL citus.multi_task_query_log_level = 'notice'`.execute(db);
}

/**
 * Citus refuses to distribute a function in a transaction that already ran a parallel operation on
 * a distributed table, and migrations share one transaction: every migration that distributes
 * something runs its shard commands one at a time (until the transaction ends). No-op without Citus.
 */
export async function sequentialShardCommands(db: Kysely<unknown>): Promise<void> {
  if (await hasCitus(db)) await sql`SET LOCAL citus.multi_shard_modify_mode = 'sequential'`.execute(db);
}
