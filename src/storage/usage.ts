/** Live usage: the namespace counters minus expired records not swept yet. */
import { sql, type RawBuilder } from 'kysely';
import type { Db } from '../db/database.js';
import { textArray, type Scope, type TargetState } from './records.js';

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

type UsageRow = { namespace: string; key_count: number; bytes: number; expired_keys: number };

/** The live-usage query: every namespace of an install (or one), counters minus expired-unswept records. */
function namespaceUsageQuery(scope: Scope, onlyNamespace?: string): RawBuilder<UsageRow> {
  const t = scope.tenantId;
  const i = scope.installId;
  const nsFilter = onlyNamespace === undefined ? sql`` : sql`AND n.namespace = ${onlyNamespace}`;
  const expiredFilter = onlyNamespace === undefined ? sql`` : sql`AND namespace = ${onlyNamespace}`;
  return sql<UsageRow>`
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
     WHERE n.tenant_id = ${t}::uuid AND n.install_id = ${i}::uuid ${nsFilter}`;
}

function toNamespaceUsage(r: UsageRow): NamespaceUsage {
  return {
    namespace: r.namespace,
    keyCount: Number(r.key_count),
    bytes: Number(r.bytes),
    expiredKeys: Number(r.expired_keys),
  };
}

/** Every namespace of an install with its live key count and bytes, ordered by name, in one statement. */
export async function namespaceUsage(db: Db, scope: Scope, onlyNamespace?: string): Promise<NamespaceUsage[]> {
  const { rows } = await sql<UsageRow>`${namespaceUsageQuery(scope, onlyNamespace)} ORDER BY n.namespace`.execute(db);
  return rows.map(toNamespaceUsage);
}

/** What a locked write decides on, read under the install lock. */
export interface WriteState {
  targets: Map<string, TargetState>;
  namespaces: NamespaceUsage[];
  activeSchemaVersion: number | null;
}

/**
 * The locked write path's reads in one round trip: the target records (live or expired), the
 * install's live usage per namespace and the namespace's active schema version.
 */
export async function selectWriteState(db: Db, scope: Scope, namespace: string, keys: readonly string[]): Promise<WriteState> {
  const t = scope.tenantId;
  const i = scope.installId;
  const { rows } = await sql<{ kind: string; name: string | null; a: number | null; b: number | null; c: number | null; expired: boolean }>`
    SELECT 'target' AS kind, key AS name, revision::bigint AS a, (value_bytes + metadata_bytes)::bigint AS b,
           NULL::bigint AS c, (ttl_expires_at IS NOT NULL AND ttl_expires_at <= now()) AS expired
      FROM ext_storage_records
     WHERE tenant_id = ${t}::uuid AND install_id = ${i}::uuid AND namespace = ${namespace} AND key = ANY(${textArray(keys)})
    UNION ALL
    SELECT 'namespace', u.namespace, u.key_count::bigint, u.bytes, u.expired_keys::bigint, false
      FROM (${namespaceUsageQuery(scope)}) u
    UNION ALL
    SELECT 'schema', NULL, max(version)::bigint, NULL, NULL, false
      FROM ext_storage_schemas
     WHERE tenant_id = ${t}::uuid AND install_id = ${i}::uuid AND namespace = ${namespace}`.execute(db);
  const state: WriteState = { targets: new Map(), namespaces: [], activeSchemaVersion: null };
  for (const r of rows) {
    if (r.kind === 'target') {
      state.targets.set(r.name!, { revision: Number(r.a), bytes: Number(r.b), expired: r.expired });
    } else if (r.kind === 'namespace') {
      state.namespaces.push(toNamespaceUsage({ namespace: r.name!, key_count: r.a!, bytes: r.b!, expired_keys: r.c! }));
    } else if (r.a !== null) state.activeSchemaVersion = Number(r.a);
  }
  state.namespaces.sort((x, y) => (x.namespace < y.namespace ? -1 : x.namespace > y.namespace ? 1 : 0));
  return state;
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
