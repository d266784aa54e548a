/** Live usage: the namespace counters minus expired records not swept yet. */
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import type { Scope } from './records.js';

export interface NamespaceUsage {
  namespace: string;
  keyCount: number;
  bytes: number;
  /** Expired records still stored (counted in the raw counters, never in usage). */
  expiredKeys: number;
}

export interface Usage {
  namespaces: number;
  keys: number;
  bytes: number;
}

/** Every namespace of an install with its live key count and bytes, ordered by name, in one statement. */
export async function namespaceUsage(db: Db, scope: Scope, onlyNamespace?: string): Promise<NamespaceUsage[]> {
  const t = scope.tenantId;
  const i = scope.installId;
  const nsFilter = onlyNamespace === undefined ? sql`` : sql`AND n.namespace = ${onlyNamespace}`;
  const expiredFilter = onlyNamespace === undefined ? sql`` : sql`AND namespace = ${onlyNamespace}`;
  const { rows } = await sql<{ namespace: string; key_count: number; bytes: number; expired_keys: number }>`
    SELECT n.namespace,
           n.key_count - coalesce(e.keys, 0) AS key_count,
           (n.bytes - coalesce(e.bytes, 0))::bigint AS bytes,
           coalesce(e.keys, 0) AS expired_keys
      FROM ext_storage_namespaces n
      LEFT JOIN (
        SELECT tenant_id, namespace, count(*)::int AS keys, sum(value_bytes + metadata_bytes)::bigint AS bytes
          FROM ext_storage_records
         WHERE tenant_id = ${t}::uuid AND install_id = ${i}::uuid AND ttl_expires_at <= now() ${expiredFilter}
         GROUP BY tenant_id, namespace
      ) e ON e.tenant_id = n.tenant_id AND e.namespace = n.namespace
     WHERE n.tenant_id = ${t}::uuid AND n.install_id = ${i}::uuid ${nsFilter}
     ORDER BY n.namespace`.execute(db);
  return rows.map((r) => ({
    namespace: r.namespace,
    keyCount: Number(r.key_count),
    bytes: Number(r.bytes),
    expiredKeys: Number(r.expired_keys),
  }));
}

export function totalUsage(namespaces: readonly NamespaceUsage[]): Usage {
  let keys = 0;
  let bytes = 0;
  let live = 0;
  for (const n of namespaces) {
    keys += n.keyCount;
    bytes += n.bytes;
    if (n.keyCount > 0) live++;
  }
  return { namespaces: live, keys, bytes };
}
