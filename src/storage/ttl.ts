/** Opportunistic TTL sweep: bounded work inside a write's own transaction. */
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { SYSTEM_ACTOR } from './principal.js';
import { textArray, type Scope } from './records.js';

export interface SweepOptions {
  /** At most this many expired records of the install, oldest expiry first. */
  limit: number;
  /** Expired records of these keys in this namespace are always removed (the write's targets). */
  namespace?: string;
  keys?: readonly string[];
  requestId: string | null;
}

/**
 * Deletes expired records of one install, gives their keys and bytes back to the namespace
 * and install counters and appends a `ttlExpire` audit event (actor "system") per record, in one statement.
 * Returns how many records were removed.
 */
export async function sweepExpired(db: Db, scope: Scope, opts: SweepOptions): Promise<number> {
  const t = scope.tenantId;
  const i = scope.installId;
  const targets =
    opts.namespace !== undefined && opts.keys && opts.keys.length > 0
      ? sql`UNION
          SELECT namespace, key FROM ext_storage_records
           WHERE tenant_id = ${t}::uuid AND install_id = ${i}::uuid AND namespace = ${opts.namespace}
             AND key = ANY(${textArray(opts.keys)}) AND ttl_expires_at <= now()`
      : sql``;
  const { rows } = await sql<{ removed: number }>`
    WITH doomed AS (
      (SELECT namespace, key FROM ext_storage_records
        WHERE tenant_id = ${t}::uuid AND install_id = ${i}::uuid AND ttl_expires_at <= now()
        ORDER BY ttl_expires_at LIMIT ${opts.limit}::int)
      ${targets}
    ), deleted AS (
      DELETE FROM ext_storage_records r USING doomed
       WHERE r.tenant_id = ${t}::uuid AND r.install_id = ${i}::uuid
         AND r.namespace = doomed.namespace AND r.key = doomed.key AND r.ttl_expires_at <= now()
      RETURNING r.namespace, r.key, r.value_bytes + r.metadata_bytes AS bytes
    ), per_namespace AS (
      SELECT namespace, count(*)::int AS keys, sum(bytes)::bigint AS bytes FROM deleted GROUP BY namespace
    ), counted AS (
      UPDATE ext_storage_namespaces n SET key_count = n.key_count - p.keys, bytes = n.bytes - p.bytes
        FROM per_namespace p
       WHERE n.tenant_id = ${t}::uuid AND n.install_id = ${i}::uuid AND n.namespace = p.namespace
    ), install_counted AS (
      UPDATE ext_storage_install_locks SET bytes = bytes - (SELECT coalesce(sum(bytes), 0)::bigint FROM deleted)
       WHERE tenant_id = ${t}::uuid AND install_id = ${i}::uuid AND EXISTS (SELECT 1 FROM deleted)
    ), audited AS (
      INSERT INTO ext_storage_audit
        (tenant_id, install_id, namespace, key, operation, revision, bytes_delta, actor, request_id, at)
      SELECT ${t}::uuid, ${i}::uuid, namespace, key, 'ttlExpire', NULL, -bytes, ${SYSTEM_ACTOR}, ${opts.requestId}, now()
        FROM deleted
    )
    SELECT count(*)::int AS removed FROM deleted`.execute(db);
  return rows[0]?.removed ?? 0;
}
