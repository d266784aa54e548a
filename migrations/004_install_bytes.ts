import { sql, type Kysely } from 'kysely';
import { allowFanOut } from '../src/db/citus.js';

/**
 * The install's stored bytes on its lock row, kept by every write in its own statement, so an
 * optimistic write can check the bytes quota with one conditional UPDATE of that row
 * (`WHERE bytes + $delta <= $limit`, re-evaluated on the latest row version: docs/citus.md
 * rule 7) instead of holding the install lock across round trips. Backfilled from the namespace
 * counters (co-located join on tenant_id: one statement per shard on Citus).
 *
 * History: that optimistic write is gone; 005 drops this column (install bytes are the sum of the
 * namespace counters, one source of truth) and its down restores it with backfillInstallBytes.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE ext_storage_install_locks ADD COLUMN bytes bigint NOT NULL DEFAULT 0`.execute(db);
  await backfillInstallBytes(db);
}

/** Sets each install's byte counter to the sum of its namespace counters (also 005's down). */
export async function backfillInstallBytes(db: Kysely<unknown>): Promise<void> {
  await allowFanOut(db);
  // The marker is the Citus guard's (test/support/citus-guard.ts): a deliberate cross-tenant statement.
  await sql`/* citus: fans out by design */
    UPDATE ext_storage_install_locks l SET bytes = s.bytes
      FROM (SELECT tenant_id, install_id, sum(bytes)::bigint AS bytes
              FROM ext_storage_namespaces GROUP BY tenant_id, install_id) s
     WHERE s.tenant_id = l.tenant_id AND s.install_id = l.install_id`.execute(db);
}

/** Drops only the column; every row and record is kept. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE ext_storage_install_locks DROP COLUMN IF EXISTS bytes`.execute(db);
}
