/** SQL over the records table. Every statement filters on tenant_id first (design/citus.md). */
import { sql, type RawBuilder } from 'kysely';
import type { Db } from '../db/database.js';

export interface StoredRecord {
  namespace: string;
  key: string;
  value: unknown;
  metadata: Record<string, unknown>;
  revision: number;
  schemaVersion: number | null;
  ttlExpiresAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** Tenant and install of a per-install statement. */
export interface Scope {
  tenantId: string;
  installId: string;
}

/** A text[] parameter sent as JSON: identical on pg and PGlite. */
export function textArray(values: readonly string[]): RawBuilder<string[]> {
  return sql<string[]>`ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(values)}::jsonb))`;
}

const LIVE = sql<boolean>`(ttl_expires_at IS NULL OR ttl_expires_at > now())`;

type RecordRow = {
  namespace: string;
  key: string;
  value: unknown;
  metadata: unknown;
  revision: number;
  schema_version: number | null;
  ttl_expires_at: Date | null;
  created_at: Date;
  updated_at: Date;
};

export function toRecord(row: RecordRow): StoredRecord {
  return {
    namespace: row.namespace,
    key: row.key,
    value: row.value,
    metadata: (row.metadata ?? {}) as Record<string, unknown>,
    revision: row.revision,
    schemaVersion: row.schema_version,
    ttlExpiresAt: row.ttl_expires_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

const RECORD_COLUMNS = [
  'namespace',
  'key',
  'value',
  'metadata',
  'revision',
  'schema_version',
  'ttl_expires_at',
  'created_at',
  'updated_at',
] as const;

/** Live records of one namespace by key, in one statement. */
export async function selectRecords(db: Db, scope: Scope, namespace: string, keys: readonly string[]): Promise<Map<string, StoredRecord>> {
  if (keys.length === 0) return new Map();
  const rows = await db
    .selectFrom('ext_storage_records')
    .select(RECORD_COLUMNS)
    .where('tenant_id', '=', scope.tenantId)
    .where('install_id', '=', scope.installId)
    .where('namespace', '=', namespace)
    .where('key', '=', sql<string>`ANY(${textArray([...new Set(keys)])})`)
    .where(LIVE)
    .execute();
  return new Map(rows.map((r) => [r.key, toRecord(r as RecordRow)]));
}

function likePrefix(prefix: string): string {
  return prefix.replace(/[\\%_]/g, (c) => `\\${c}`) + '%';
}

/** One page of live records ordered by key (byte order), after `afterKey`; fetches first+1 to know if more follow. */
export async function selectRecordPage(
  db: Db,
  scope: Scope,
  namespace: string,
  opts: { prefix?: string | null; afterKey?: string | null; first: number },
): Promise<{ records: StoredRecord[]; hasNextPage: boolean }> {
  let q = db
    .selectFrom('ext_storage_records')
    .select(RECORD_COLUMNS)
    .where('tenant_id', '=', scope.tenantId)
    .where('install_id', '=', scope.installId)
    .where('namespace', '=', namespace)
    .where(LIVE);
  if (opts.prefix) q = q.where('key', 'like', likePrefix(opts.prefix));
  if (opts.afterKey !== null && opts.afterKey !== undefined) q = q.where('key', '>', opts.afterKey);
  const rows = await q.orderBy('key').limit(opts.first + 1).execute();
  return { records: rows.slice(0, opts.first).map((r) => toRecord(r as RecordRow)), hasNextPage: rows.length > opts.first };
}

/** What a write needs to know of its target keys, read under the install lock (live or expired). */
export interface TargetState {
  revision: number;
  bytes: number;
  expired: boolean;
  /** The record has a TTL (it may expire between an optimistic read and write). */
  hasTtl?: boolean;
}

export async function selectTargets(db: Db, scope: Scope, namespace: string, keys: readonly string[]): Promise<Map<string, TargetState>> {
  const rows = await db
    .selectFrom('ext_storage_records')
    .select([
      'key',
      'revision',
      sql<number>`value_bytes + metadata_bytes`.as('bytes'),
      sql<boolean>`(ttl_expires_at IS NOT NULL AND ttl_expires_at <= now())`.as('expired'),
    ])
    .where('tenant_id', '=', scope.tenantId)
    .where('install_id', '=', scope.installId)
    .where('namespace', '=', namespace)
    .where('key', '=', sql<string>`ANY(${textArray(keys)})`)
    .execute();
  return new Map(rows.map((r) => [r.key, { revision: r.revision, bytes: Number(r.bytes), expired: r.expired }]));
}

/**
 * Serialises every write transaction of one install: the lock row is taken (and its write
 * sequence bumped) first, so revision and quota decisions made afterwards see every earlier
 * commit (a fresh snapshot per statement under READ COMMITTED) and nobody else can change them
 * before we commit. The bump also tells optimistic writers (upsertRecords with expectSeq) that
 * the install changed.
 */
export async function lockInstall(db: Db, scope: Scope): Promise<void> {
  const bump = () =>
    db
      .updateTable('ext_storage_install_locks')
      .set((eb) => ({ seq: eb('seq', '+', 1) }))
      .where('tenant_id', '=', scope.tenantId)
      .where('install_id', '=', scope.installId)
      .executeTakeFirst();
  if (Number((await bump()).numUpdatedRows) > 0) return;
  await db
    .insertInto('ext_storage_install_locks')
    .values({ tenant_id: scope.tenantId, install_id: scope.installId })
    .onConflict((oc) => oc.columns(['tenant_id', 'install_id']).doNothing())
    .execute();
  if (Number((await bump()).numUpdatedRows) === 0) throw new Error('install lock row missing');
}

export interface RowToWrite {
  key: string;
  value: unknown;
  metadata: Record<string, unknown>;
  valueBytes: number;
  metadataBytes: number;
  revision: number;
  ttlSeconds: number | null;
  /** Stored bytes this row adds (negative when it shrinks). */
  bytesDelta: number;
}

export interface WriteContext extends Scope {
  namespace: string;
  operation: 'putRecord' | 'bulkPutRecords';
  actor: string;
  requestId: string | null;
  schemaVersion: number | null;
  /** New live keys and stored bytes the whole write adds to the namespace. */
  keysDelta: number;
  bytesDelta: number;
  /**
   * Optimistic write (no transaction, no lock taken before): the statement writes only if the
   * install's write sequence is still this value, bumping it; otherwise it writes nothing.
   */
  expectSeq?: number;
}

/**
 * Upserts the rows, moves the namespace counters and appends one audit event per row, in one
 * statement. Timestamps come from now() in the inserted rows and reach DO UPDATE via EXCLUDED
 * (Citus refuses volatile functions in DO UPDATE SET and RETURNING).
 */
/** Returns the written records in input order, or null when an optimistic write lost its race. */
export async function upsertRecords(db: Db, ctx: WriteContext, rows: readonly RowToWrite[]): Promise<StoredRecord[] | null> {
  const input = JSON.stringify(
    rows.map((r) => ({
      key: r.key,
      value: r.value,
      metadata: r.metadata,
      value_bytes: r.valueBytes,
      metadata_bytes: r.metadataBytes,
      revision: r.revision,
      ttl_seconds: r.ttlSeconds,
      bytes_delta: r.bytesDelta,
    })),
  );
  const t = ctx.tenantId;
  const i = ctx.installId;
  // Optimistic: the guard row must still carry the sequence the state was read at; every CTE
  // below draws from it, so a lost race writes nothing (and the caller retries under the lock).
  const guard =
    ctx.expectSeq === undefined
      ? sql`guard AS (SELECT 1 AS ok)`
      : sql`guard AS (
          UPDATE ext_storage_install_locks SET seq = seq + 1
           WHERE tenant_id = ${t}::uuid AND install_id = ${i}::uuid AND seq = ${ctx.expectSeq}::bigint
          RETURNING 1 AS ok)`;
  const { rows: written } = await sql<RecordRow>`
    WITH ${guard}, input AS (
      SELECT x.* FROM jsonb_to_recordset(${input}::jsonb)
        AS x(key text, value jsonb, metadata jsonb, value_bytes int, metadata_bytes int, revision int, ttl_seconds int, bytes_delta bigint)
       WHERE EXISTS (SELECT 1 FROM guard)
    ), written AS (
      INSERT INTO ext_storage_records AS r
        (tenant_id, install_id, namespace, key, value, metadata, value_bytes, metadata_bytes, revision,
         schema_version, ttl_expires_at, created_at, updated_at)
      SELECT ${t}::uuid, ${i}::uuid, ${ctx.namespace}, input.key, input.value, input.metadata, input.value_bytes,
             input.metadata_bytes, input.revision, ${ctx.schemaVersion}::int,
             CASE WHEN input.ttl_seconds IS NULL THEN NULL ELSE now() + make_interval(secs => input.ttl_seconds) END,
             now(), now()
        FROM input
      ON CONFLICT (tenant_id, install_id, namespace, key) DO UPDATE SET
        value = EXCLUDED.value, metadata = EXCLUDED.metadata, value_bytes = EXCLUDED.value_bytes,
        metadata_bytes = EXCLUDED.metadata_bytes, revision = EXCLUDED.revision,
        schema_version = EXCLUDED.schema_version, ttl_expires_at = EXCLUDED.ttl_expires_at,
        updated_at = EXCLUDED.updated_at
      RETURNING r.namespace, r.key, r.value, r.metadata, r.revision, r.schema_version, r.ttl_expires_at,
                r.created_at, r.updated_at
    ), counted AS (
      INSERT INTO ext_storage_namespaces AS n (tenant_id, install_id, namespace, key_count, bytes)
      SELECT ${t}::uuid, ${i}::uuid, ${ctx.namespace}, ${ctx.keysDelta}::int, ${ctx.bytesDelta}::bigint
       WHERE EXISTS (SELECT 1 FROM guard)
      ON CONFLICT (tenant_id, install_id, namespace) DO UPDATE SET
        key_count = n.key_count + EXCLUDED.key_count, bytes = n.bytes + EXCLUDED.bytes
    ), audited AS (
      INSERT INTO ext_storage_audit
        (tenant_id, install_id, namespace, key, operation, revision, bytes_delta, actor, request_id, at)
      SELECT ${t}::uuid, ${i}::uuid, ${ctx.namespace}, input.key, ${ctx.operation}, input.revision, input.bytes_delta,
             ${ctx.actor}, ${ctx.requestId}, now()
        FROM input
    )
    SELECT * FROM written`.execute(db);
  if (written.length === 0) return null;
  const byKey = new Map(written.map((r) => [r.key, toRecord(r)]));
  return rows.map((r) => byKey.get(r.key)!);
}

export interface DeleteContext extends Scope {
  namespace: string;
  key: string;
  bytes: number;
  actor: string;
  requestId: string | null;
}

/** Deletes a record known (under the install lock) to exist, with its counters and audit event. */
export async function deleteRecordRow(db: Db, ctx: DeleteContext): Promise<void> {
  const t = ctx.tenantId;
  const i = ctx.installId;
  await sql`
    WITH deleted AS (
      DELETE FROM ext_storage_records
       WHERE tenant_id = ${t}::uuid AND install_id = ${i}::uuid AND namespace = ${ctx.namespace} AND key = ${ctx.key}
      RETURNING key
    ), counted AS (
      UPDATE ext_storage_namespaces SET key_count = key_count - 1, bytes = bytes - ${ctx.bytes}::bigint
       WHERE tenant_id = ${t}::uuid AND install_id = ${i}::uuid AND namespace = ${ctx.namespace}
         AND EXISTS (SELECT 1 FROM deleted)
    )
    INSERT INTO ext_storage_audit
      (tenant_id, install_id, namespace, key, operation, revision, bytes_delta, actor, request_id, at)
    SELECT ${t}::uuid, ${i}::uuid, ${ctx.namespace}, deleted.key, 'deleteRecord', NULL, ${-ctx.bytes}::bigint,
           ${ctx.actor}, ${ctx.requestId}, now()
      FROM deleted`.execute(db);
}
