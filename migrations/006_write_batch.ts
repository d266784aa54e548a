import { sql, type Kysely } from 'kysely';
import { hasCitus } from '../src/db/citus.js';

/**
 * ext_storage_write_batch_v1(tenant, install, requests): several independent writes of one install
 * in one call and one commit (issue 12: a busy install's writes no longer queue one commit each on
 * its lock row). Each request is exactly one ext_storage_write_v1 call, in order, in the same
 * transaction: each sees the writes before it (revisions, quotas and the sweep stay exact), and a
 * refused request changed nothing (I3), so the others are unaffected. The answer is the array of
 * their answers, in order. The gateway's write combiner (src/storage/write-combiner.ts) builds the
 * batches; on Citus the call is distributed by tenant like ext_storage_write_v1 and runs whole on the
 * tenant's worker.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql.raw(BATCH_FUNCTION).execute(db);
  if (await hasCitus(db)) {
    await sql`SELECT create_distributed_function(${ENTRY_POINT}, 'p_tenant_id', colocate_with => 'ext_storage_records')`.execute(db);
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql.raw(`DROP FUNCTION IF EXISTS ${ENTRY_POINT}`).execute(db);
}

const ENTRY_POINT = 'ext_storage_write_batch_v1(uuid, uuid, jsonb)';

/** As this migration defines it (migration 007 replaces it; its down restores this one). */
export const BATCH_FUNCTION = `CREATE FUNCTION ext_storage_write_batch_v1(p_tenant_id uuid, p_install_id uuid, p_requests jsonb) RETURNS jsonb
  LANGUAGE plpgsql AS $fn$
DECLARE
  v_answers jsonb := '[]';
  v_request jsonb;
BEGIN
  FOR v_request IN SELECT r.value FROM jsonb_array_elements(p_requests) WITH ORDINALITY AS r(value, n) ORDER BY r.n LOOP
    v_answers := v_answers || jsonb_build_array(ext_storage_write_v1(p_tenant_id, p_install_id, v_request));
  END LOOP;
  RETURN v_answers;
END
$fn$`;
