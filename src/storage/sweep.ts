/**
 * The idle-install sweep (npm run sweep): writes sweep an install's expired records as they go
 * (a bounded batch each), so an install nobody writes to keeps its expired records (invisible,
 * but counted in the tables' size). This finds the installs holding expired records and has the
 * write function remove them in bounded batches (RecordWriter.sweep), off the request path.
 */
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { allowFanOut } from '../db/citus.js';

export interface InstallRef {
  tenantId: string;
  installId: string;
}

/**
 * Up to `limit` installs holding at least one expired record. Every install of every tenant: on
 * Citus this statement fans out to every worker by nature (docs/citus.md rule 12), as an
 * operator's batch job may; the request path never runs it.
 */
export async function installsWithExpiredRecords(db: Db, limit: number): Promise<InstallRef[]> {
  // Databases where request paths refuse fan-outs (citus.multi_task_query_log_level = error) let
  // this one through, for its own transaction only.
  const rows = await db.transaction().execute(async (trx) => {
    await allowFanOut(trx);
    const { rows } = await sql<{ tenant_id: string; install_id: string }>`/* citus: fans out by design */
      SELECT DISTINCT r.tenant_id, r.install_id FROM ext_storage_records r
       WHERE r.ttl_expires_at <= now()
       LIMIT ${limit}`.execute(trx);
    return rows;
  });
  return rows.map((r) => ({ tenantId: r.tenant_id, installId: r.install_id }));
}
