/** The audit log: appended by every write's own statement; read here, newest first. */
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import type { Scope } from './records.js';

export interface AuditEvent {
  id: number;
  at: Date;
  actor: string;
  operation: string;
  namespace: string | null;
  key: string | null;
  revision: number | null;
  bytesDelta: number;
  requestId: string | null;
}

export async function selectAuditPage(
  db: Db,
  scope: Scope,
  opts: { first: number; beforeId: number | null },
): Promise<{ events: AuditEvent[]; hasNextPage: boolean }> {
  // Newest first by (at, id): on Citus, events written on a worker and on the coordinator draw
  // ids from different sequence ranges, so the id alone does not say which came first.
  let q = db
    .selectFrom('ext_storage_audit')
    .select(['id', 'at', 'actor', 'operation', 'namespace', 'key', 'revision', 'bytes_delta', 'request_id'])
    .where('tenant_id', '=', scope.tenantId)
    .where('install_id', '=', scope.installId);
  if (opts.beforeId !== null) {
    q = q.where(
      sql<boolean>`(at, id) < (SELECT c.at, c.id FROM ext_storage_audit c
                                WHERE c.tenant_id = ${scope.tenantId} AND c.install_id = ${scope.installId} AND c.id = ${opts.beforeId})`,
    );
  }
  const rows = await q.orderBy('at', 'desc').orderBy('id', 'desc').limit(opts.first + 1).execute();
  return {
    hasNextPage: rows.length > opts.first,
    events: rows.slice(0, opts.first).map((r) => ({
      id: Number(r.id),
      at: r.at,
      actor: r.actor,
      operation: r.operation,
      namespace: r.namespace,
      key: r.key,
      revision: r.revision,
      bytesDelta: Number(r.bytes_delta),
      requestId: r.request_id,
    })),
  };
}

/**
 * Appends a non-record event (schema change, install change) inside the caller's transaction,
 * stamped with the clock after the caller's locks (as the write function stamps its events).
 */
export async function appendAuditEvent(
  db: Db,
  scope: Scope,
  event: { operation: string; namespace: string | null; actor: string; requestId: string | null },
): Promise<void> {
  await db
    .insertInto('ext_storage_audit')
    .values({
      tenant_id: scope.tenantId,
      install_id: scope.installId,
      namespace: event.namespace,
      key: null,
      operation: event.operation,
      revision: null,
      bytes_delta: 0,
      actor: event.actor,
      request_id: event.requestId,
      at: sql`clock_timestamp()`,
    })
    .execute();
}
