/**
 * Live usage (expired records never count), read with ext_storage_usage_v1: the same rule the
 * write function checks quotas with (ext_storage_live_usage), at a cost independent of how many
 * expired records wait for a sweep. On Citus the call runs on the tenant's worker.
 */
import { CompiledQuery } from 'kysely';
import type { Db } from '../db/database.js';
import type { Scope } from './records.js';

export interface NamespaceUsage {
  namespace: string;
  keyCount: number;
  bytes: number;
}

export interface Usage {
  namespaces: number;
  keys: number;
  bytes: number;
}

const USAGE = 'SELECT ext_storage_usage_v1($1::uuid, $2::uuid) AS usage';

/** Every namespace of an install holding a live record, with its live keys and bytes, ordered by name. */
export async function namespaceUsage(db: Db, scope: Scope, onlyNamespace?: string): Promise<NamespaceUsage[]> {
  const { rows } = await db.executeQuery<{ usage: Array<{ namespace: string; keys: number; bytes: number }> }>(
    CompiledQuery.raw(USAGE, [scope.tenantId, scope.installId]),
  );
  const all = (rows[0]?.usage ?? []).map((u) => ({ namespace: u.namespace, keyCount: Number(u.keys), bytes: Number(u.bytes) }));
  return onlyNamespace === undefined ? all : all.filter((u) => u.namespace === onlyNamespace);
}

export function totalUsage(namespaces: readonly NamespaceUsage[]): Usage {
  let keys = 0;
  let bytes = 0;
  for (const n of namespaces) {
    keys += n.keyCount;
    bytes += n.bytes;
  }
  return { namespaces: namespaces.length, keys, bytes };
}
