import { sql, type Kysely } from 'kysely';

/**
 * A write sequence on each install's lock row: every write transaction bumps it, so a write that
 * read its state without the lock can prove, in its one writing statement, that nothing changed.
 *
 * History: every write now decides under the lock (005's ext_storage_write_v1), which drops this column.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE ext_storage_install_locks ADD COLUMN seq bigint NOT NULL DEFAULT 0`.execute(db);
}

/** Drops only the sequence column; every row and record is kept. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE ext_storage_install_locks DROP COLUMN IF EXISTS seq`.execute(db);
}
