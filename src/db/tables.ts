/**
 * Row types of every table. Per-tenant (distributed) tables all start with tenant_id: every
 * statement on them must filter on it (docs/citus.md); the install registry is global.
 */
import type { ColumnType, Generated } from 'kysely';

type Timestamp = ColumnType<Date, Date | string, Date | string>;
type Json = ColumnType<unknown, string, string>;

/** Global (Citus reference table): looked up by install id alone. */
export interface InstallsTable {
  id: string;
  tenant_id: string;
  extension_id: string;
  enabled: boolean;
  can_read: boolean;
  can_write: boolean;
  /** JSON array of namespace names, or null for any namespace. */
  namespaces: ColumnType<string[] | null, string | null, string | null>;
  /** Per-install quota overrides (only the fields that were set). */
  quota: ColumnType<Record<string, number>, string, string>;
  created_at: ColumnType<Date, Date | string | undefined, Date | string>;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export interface RecordsTable {
  tenant_id: string;
  install_id: string;
  namespace: string;
  key: string;
  value: Json;
  metadata: Json;
  value_bytes: number;
  metadata_bytes: number;
  revision: number;
  schema_version: number | null;
  ttl_expires_at: Timestamp | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

/** One row per install, only a lock: every write of the install (ext_storage_write_v1) takes it first, so its decisions are exact. */
export interface InstallLocksTable {
  tenant_id: string;
  install_id: string;
  /** The number of the install's last change (migration 009). */
  change_seq: Generated<number>;
  /** Changes up to this number have been removed by retention: a cursor before it is expired. */
  changes_pruned_seq: Generated<number>;
}

/**
 * One row per namespace holding at least one stored record: its counters, moved by every write in
 * the same call (expired but unswept records are still counted here; live usage subtracts them
 * through ext_storage_expiries). Install bytes are the sum of these rows: there is no other copy.
 */
export interface NamespacesTable {
  tenant_id: string;
  install_id: string;
  namespace: string;
  key_count: number;
  bytes: number;
}

/** Stored keys and bytes per namespace and expiry bucket of `width` seconds (60 and 1; records with a TTL), moved with the counters. */
export interface ExpiriesTable {
  tenant_id: string;
  install_id: string;
  namespace: string;
  width: number;
  bucket: Timestamp;
  keys: number;
  bytes: number;
}

export interface SchemasTable {
  tenant_id: string;
  install_id: string;
  namespace: string;
  version: number;
  schema: Json;
  created_at: Timestamp;
}

export interface AuditTable {
  tenant_id: string;
  id: Generated<number>;
  install_id: string;
  namespace: string | null;
  key: string | null;
  operation: string;
  revision: number | null;
  bytes_delta: number;
  actor: string;
  request_id: string | null;
  at: Timestamp;
}

/** The change feed (migration 009): one row per committed change, numbered per install in commit order. */
export interface ChangesTable {
  tenant_id: string;
  install_id: string;
  seq: number;
  namespace: string;
  key: string;
  operation: 'put' | 'delete' | 'expire';
  revision: number;
  actor: string;
  at: Timestamp;
}

export interface Database {
  ext_storage_installs: InstallsTable;
  ext_storage_records: RecordsTable;
  ext_storage_install_locks: InstallLocksTable;
  ext_storage_namespaces: NamespacesTable;
  ext_storage_expiries: ExpiriesTable;
  ext_storage_schemas: SchemasTable;
  ext_storage_audit: AuditTable;
  ext_storage_changes: ChangesTable;
}

/** Tables distributed by tenant_id on Citus (all co-located with the records table). */
export const DISTRIBUTED_TABLES = [
  'ext_storage_records',
  'ext_storage_install_locks',
  'ext_storage_namespaces',
  'ext_storage_expiries',
  'ext_storage_schemas',
  'ext_storage_audit',
  'ext_storage_changes',
] as const;
