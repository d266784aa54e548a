import { sql, type Kysely } from 'kysely';

/** Any Kysely: the app's database, a transaction of it, or a migration's untyped handle. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyKysely = Kysely<any>;

export async function hasCitus(db: AnyKysely): Promise<boolean> {
  const { rows } = await sql<{ present: boolean }>`
    SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') AS present`.execute(db);
  return rows[0]?.present === true;
}

/**
 * For a statement that fans out across tenants on purpose (a migration's backfill, an operator
 * job): lets it run where request paths set citus.multi_task_query_log_level = 'error' (until the
 * end of the current transaction). No-op without Citus.
 */
export async function allowFanOut(db: AnyKysely): Promise<void> {
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
