/**
 * Row types of every table. Per-tenant (distributed) tables all start with tenant_id: every
 * statement on them must filter on it (design/citus.md); the install registry is global.
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

/** One row per install: every write of the install locks it first, so quota checks are exact. */
export interface InstallLocksTable {
  tenant_id: string;
  install_id: string;
  /**
   * Bumped by every locked write transaction of the install (lockInstall): an optimistic write
   * proves with it that no locked transaction (sweep, delete, schema change) ran since its read.
   */
  seq: ColumnType<number, number | undefined, number>;
  /** Stored bytes of the install (value + metadata, expired-unswept included), kept by every write. */
  bytes: ColumnType<number, number | undefined, number>;
}

/**
 * One row per namespace that has ever held a record: its counters, kept incrementally by every
 * write in the write's transaction (expired but unswept records are still counted here and are
 * subtracted when usage is read).
 */
export interface NamespacesTable {
  tenant_id: string;
  install_id: string;
  namespace: string;
  key_count: number;
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

export interface Database {
  ext_storage_installs: InstallsTable;
  ext_storage_records: RecordsTable;
  ext_storage_install_locks: InstallLocksTable;
  ext_storage_namespaces: NamespacesTable;
  ext_storage_schemas: SchemasTable;
  ext_storage_audit: AuditTable;
}

/** Tables distributed by tenant_id on Citus (all co-located with the records table). */
export const DISTRIBUTED_TABLES = [
  'ext_storage_records',
  'ext_storage_install_locks',
  'ext_storage_namespaces',
  'ext_storage_schemas',
  'ext_storage_audit',
] as const;

export const REFERENCE_TABLES = ['ext_storage_installs'] as const;
