/** SQL over the records table. Every statement filters on tenant_id first (design/citus.md). */
import { CompiledQuery, sql, type RawBuilder } from 'kysely';
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

const SELECT_BY_KEYS = `SELECT namespace, key, value, metadata, revision, schema_version, ttl_expires_at, created_at, updated_at
  FROM ext_storage_records
 WHERE tenant_id = $1::uuid AND install_id = $2::uuid AND namespace = $3
   AND key = ANY(ARRAY(SELECT jsonb_array_elements_text($4::jsonb)))
   AND (ttl_expires_at IS NULL OR ttl_expires_at > now())`;

/** Live records of one namespace by key, in one statement (the hottest read: its text is built once). */
export async function selectRecords(db: Db, scope: Scope, namespace: string, keys: readonly string[]): Promise<Map<string, StoredRecord>> {
  if (keys.length === 0) return new Map();
  const unique = keys.length === 1 ? keys : [...new Set(keys)];
  const { rows } = await db.executeQuery<RecordRow>(CompiledQuery.raw(SELECT_BY_KEYS, [scope.tenantId, scope.installId, namespace, JSON.stringify(unique)]));
  const found = new Map<string, StoredRecord>();
  for (const r of rows) found.set(r.key, toRecord(r));
  return found;
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

/** Where a write lands and who makes it: what both write statements record. */
export interface WriteTarget extends Scope {
  namespace: string;
  operation: 'putRecord' | 'bulkPutRecords';
  actor: string;
  requestId: string | null;
  /** The schema version the values were validated against (stored on the records), or null. */
  schemaVersion: number | null;
}

export interface WriteContext extends WriteTarget {
  /** New live keys and stored bytes the whole write adds to the namespace. */
  keysDelta: number;
  bytesDelta: number;
}

function rowsJson(rows: readonly RowToWrite[]): string {
  return JSON.stringify(
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
}

const INPUT_COLUMNS = sql`x(key text, value jsonb, metadata jsonb, value_bytes int, metadata_bytes int, revision int,
        ttl_seconds int, bytes_delta bigint)`;

const TTL_OF_INPUT = sql`CASE WHEN input.ttl_seconds IS NULL THEN NULL ELSE now() + make_interval(secs => input.ttl_seconds) END`;

function inOrder(rows: ReadonlyArray<{ key: string }>, written: readonly RecordRow[]): StoredRecord[] {
  const byKey = new Map(written.map((r) => [r.key, toRecord(r)]));
  return rows.map((r) => {
    const record = byKey.get(r.key);
    // Never answer success for a row the statement did not write.
    if (!record) throw new Error('a write statement returned fewer records than it was given');
    return record;
  });
}

/**
 * Upserts the rows, moves the namespace and install counters and appends one audit event per
 * row, in one statement, under the install lock (lockInstall) taken earlier in the transaction.
 * Timestamps come from now() in the inserted rows and reach DO UPDATE via EXCLUDED (Citus
 * refuses volatile functions in DO UPDATE SET and RETURNING). Returns the records in input order.
 */
export async function upsertRecords(db: Db, ctx: WriteContext, rows: readonly RowToWrite[]): Promise<StoredRecord[]> {
  const t = ctx.tenantId;
  const i = ctx.installId;
  const { rows: written } = await sql<RecordRow>`
    WITH input AS (
      SELECT x.* FROM jsonb_to_recordset(${rowsJson(rows)}::jsonb) AS ${INPUT_COLUMNS}
    ), written AS (
      INSERT INTO ext_storage_records AS r
        (tenant_id, install_id, namespace, key, value, metadata, value_bytes, metadata_bytes, revision,
         schema_version, ttl_expires_at, created_at, updated_at)
      SELECT ${t}::uuid, ${i}::uuid, ${ctx.namespace}, input.key, input.value, input.metadata, input.value_bytes,
             input.metadata_bytes, input.revision, ${ctx.schemaVersion}::int, ${TTL_OF_INPUT}, now(), now()
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
      VALUES (${t}::uuid, ${i}::uuid, ${ctx.namespace}, ${ctx.keysDelta}::int, ${ctx.bytesDelta}::bigint)
      ON CONFLICT (tenant_id, install_id, namespace) DO UPDATE SET
        key_count = n.key_count + EXCLUDED.key_count, bytes = n.bytes + EXCLUDED.bytes
    ), install_counted AS (
      UPDATE ext_storage_install_locks SET bytes = bytes + ${ctx.bytesDelta}::bigint
       WHERE tenant_id = ${t}::uuid AND install_id = ${i}::uuid
    ), audited AS (
      INSERT INTO ext_storage_audit
        (tenant_id, install_id, namespace, key, operation, revision, bytes_delta, actor, request_id, at)
      SELECT ${t}::uuid, ${i}::uuid, ${ctx.namespace}, input.key, ${ctx.operation}, input.revision, input.bytes_delta,
             ${ctx.actor}, ${ctx.requestId}, now()
        FROM input
    )
    SELECT * FROM written`.execute(db);
  return inOrder(rows, written);
}

/** One item of a one-statement write: what the caller sent, sized and checked. */
export interface FastItem {
  key: string;
  value?: unknown;
  metadata: Record<string, unknown>;
  valueBytes: number;
  metadataBytes: number;
  ttlSeconds: number | null;
  ifRevision: number | null;
}

export interface FastWriteContext extends WriteTarget {
  /** The namespace's active schema version must still be this (undefined: a pinned version, no check). */
  activeSchemaVersion?: number | null;
  maxBytes: number;
  maxKeysPerNamespace: number;
}

export interface FastWriteResult {
  records: StoredRecord[];
  /** Stored bytes of the install and live keys of the namespace after the write, and what it added. */
  installBytes: number;
  namespaceKeys: number;
  bytesDelta: number;
  keysDelta: number;
}

/** The text PostgreSQL reports when a one-statement write lost a race after moving counters (SQLSTATE 22P02). */
export const LOST_RACE = 'optimistic write lost its race';

export function isLostRace(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown } | null;
  return e?.code === '22P02' && typeof e.message === 'string' && e.message.includes(LOST_RACE);
}

type FastRow = RecordRow & { ok: number; install_bytes: number | null; namespace_keys: number | null; bytes_delta: number | null; keys_delta: number | null };

/**
 * The one-statement write's text, built once (no per-request query building; a fixed string is
 * also what the pg client names as a prepared statement). Parameters: $1 tenant, $2 install,
 * $3 namespace, $4 items (jsonb), $5 keys (jsonb), $6 stored schema version, $7 bytes quota,
 * $8 keys-per-namespace quota, $9 operation, $10 actor, $11 request id, $12 item count and, with
 * the schema check, $13 the active schema version the values were validated against.
 * `checked.ok` is selected and `checked` is the preserved side of the LEFT JOIN, so PostgreSQL
 * evaluates the check even when nothing was written (an unused output would be optimised away).
 */
function writeStatement(schemaCheck: string): string {
  return `
    WITH input AS (
      SELECT x.* FROM jsonb_to_recordset($4::jsonb)
        AS x(key text, value jsonb, metadata jsonb, value_bytes int, metadata_bytes int, ttl_seconds int, if_revision int)
    ), prev AS (
      SELECT key, revision, (value_bytes + metadata_bytes)::bigint AS bytes, (ttl_expires_at IS NOT NULL AND ttl_expires_at <= now()) AS expired
        FROM ext_storage_records
       WHERE tenant_id = $1::uuid AND install_id = $2::uuid AND namespace = $3
         AND key = ANY(ARRAY(SELECT jsonb_array_elements_text($5::jsonb)))
    ), plan AS (
      SELECT input.*, prev.revision AS prev_revision, prev.bytes AS prev_bytes, coalesce(prev.revision, 0) + 1 AS revision,
             (input.value_bytes + input.metadata_bytes - coalesce(prev.bytes, 0))::bigint AS bytes_delta,
             (input.if_revision IS NULL OR input.if_revision = coalesce(prev.revision, 0)) AND NOT coalesce(prev.expired, false) AS ok
        FROM input LEFT JOIN prev ON prev.key = input.key
    ), totals AS (
      SELECT coalesce(sum(bytes_delta), 0)::bigint AS bytes_delta, (count(*) FILTER (WHERE prev_revision IS NULL))::int AS keys_delta,
             coalesce(bool_and(ok), false) AS ok
        FROM plan
    ), install_row AS (
      UPDATE ext_storage_install_locks l SET bytes = l.bytes + totals.bytes_delta
        FROM totals
       WHERE l.tenant_id = $1::uuid AND l.install_id = $2::uuid AND totals.ok
         AND l.seq = (SELECT seq FROM ext_storage_install_locks WHERE tenant_id = $1::uuid AND install_id = $2::uuid)
         AND (totals.bytes_delta <= 0 OR l.bytes + totals.bytes_delta <= $7::bigint)
         AND NOT EXISTS (SELECT 1 FROM ext_storage_records
                          WHERE tenant_id = $1::uuid AND install_id = $2::uuid AND ttl_expires_at <= now())
         AND EXISTS (SELECT 1 FROM ext_storage_namespaces
                      WHERE tenant_id = $1::uuid AND install_id = $2::uuid AND namespace = $3 AND key_count > 0)
         ${schemaCheck}
      RETURNING l.bytes, totals.bytes_delta, totals.keys_delta
    ), namespace_row AS (
      UPDATE ext_storage_namespaces n SET key_count = n.key_count + d.keys_delta, bytes = n.bytes + d.bytes_delta
        FROM install_row d
       WHERE n.tenant_id = $1::uuid AND n.install_id = $2::uuid AND n.namespace = $3 AND n.key_count > 0
         AND (d.keys_delta = 0 OR n.key_count + d.keys_delta <= $8::int)
      RETURNING n.key_count
    ), go AS (
      SELECT plan.* FROM plan WHERE EXISTS (SELECT 1 FROM namespace_row)
    ), inserted AS (
      INSERT INTO ext_storage_records AS r
        (tenant_id, install_id, namespace, key, value, metadata, value_bytes, metadata_bytes, revision,
         schema_version, ttl_expires_at, created_at, updated_at)
      SELECT $1::uuid, $2::uuid, $3, go.key, go.value, go.metadata, go.value_bytes, go.metadata_bytes, go.revision,
             $6::int, CASE WHEN go.ttl_seconds IS NULL THEN NULL ELSE now() + make_interval(secs => go.ttl_seconds) END,
             now(), now()
        FROM go WHERE go.prev_revision IS NULL
      ON CONFLICT (tenant_id, install_id, namespace, key) DO NOTHING
      RETURNING r.namespace, r.key, r.value, r.metadata, r.revision, r.schema_version, r.ttl_expires_at, r.created_at, r.updated_at
    ), updated AS (
      UPDATE ext_storage_records r SET
        value = go.value, metadata = go.metadata, value_bytes = go.value_bytes, metadata_bytes = go.metadata_bytes,
        revision = go.revision, schema_version = $6::int,
        ttl_expires_at = CASE WHEN go.ttl_seconds IS NULL THEN NULL ELSE now() + make_interval(secs => go.ttl_seconds) END,
        updated_at = now()
        FROM go
       WHERE r.tenant_id = $1::uuid AND r.install_id = $2::uuid AND r.namespace = $3 AND r.key = go.key
         AND go.prev_revision IS NOT NULL AND r.revision = go.prev_revision
         AND r.value_bytes + r.metadata_bytes = go.prev_bytes AND (r.ttl_expires_at IS NULL OR r.ttl_expires_at > now())
      RETURNING r.namespace, r.key, r.value, r.metadata, r.revision, r.schema_version, r.ttl_expires_at, r.created_at, r.updated_at
    ), written AS (
      SELECT * FROM inserted UNION ALL SELECT * FROM updated
    ), audited AS (
      INSERT INTO ext_storage_audit
        (tenant_id, install_id, namespace, key, operation, revision, bytes_delta, actor, request_id, at)
      SELECT $1::uuid, $2::uuid, $3, go.key, $9, go.revision, go.bytes_delta, $10, $11, now()
        FROM go JOIN written ON written.key = go.key
    ), checked AS (
      SELECT CAST(CASE WHEN NOT EXISTS (SELECT 1 FROM install_row) THEN '0'
                       WHEN count(*) = $12::int THEN '1'
                       ELSE count(*)::text || ' rows of ' || $12::int || ': ${LOST_RACE}' END AS int) AS ok
        FROM written
    )
    SELECT written.*, checked.ok,
           (SELECT bytes FROM install_row) AS install_bytes, (SELECT bytes_delta FROM install_row) AS bytes_delta,
           (SELECT keys_delta FROM install_row) AS keys_delta, (SELECT key_count FROM namespace_row) AS namespace_keys
      FROM checked LEFT JOIN written ON true`;
}

const WRITE_CHECKING_SCHEMA = writeStatement(`AND (SELECT max(version) FROM ext_storage_schemas
                  WHERE tenant_id = $1::uuid AND install_id = $2::uuid AND namespace = $3) IS NOT DISTINCT FROM $13::int`);
const WRITE_PINNED_SCHEMA = writeStatement('');

/**
 * The common write in one statement, no transaction, no lock held across a round trip. It reads
 * the targets from its own snapshot and decides revisions there; it writes only when the easy
 * case holds: every ifRevision matches, no target is expired, the install has no expired record
 * to sweep, the namespace already holds live keys, no locked transaction ran since the snapshot
 * (the install's seq: sweeps, deletes, schema changes bump it) and the active schema version is
 * the one the values were validated against. Otherwise it writes nothing and returns null, and
 * the caller decides under the install lock (exact errors, sweeps, new namespaces).
 *
 * Then each decision is re-checked on the latest rows, in lock order install row → namespace row
 * → records (UPDATE re-evaluates its WHERE after waiting for a row lock; design/citus.md rule 7):
 * the install's seq and bytes quota, the namespace's keys quota, and each record still absent
 * (INSERT … ON CONFLICT DO NOTHING) or still live at the revision and size read. Counters move by
 * deltas the record checks prove. (The size check is a second guard: a delete and re-create at the
 * same revision between snapshot and lock would also have bumped seq, as deletes are locked.) If a record check fails after the counters moved, the final
 * SELECT casts a message to int, aborting the whole statement (nothing written, no counter moved,
 * no audit event) with SQLSTATE 22P02 and LOST_RACE in the text; the caller takes the lock.
 */
export async function writeInOneStatement(db: Db, ctx: FastWriteContext, items: readonly FastItem[]): Promise<FastWriteResult | null> {
  const input = JSON.stringify(
    items.map((r) => ({
      key: r.key,
      value: r.value,
      metadata: r.metadata,
      value_bytes: r.valueBytes,
      metadata_bytes: r.metadataBytes,
      ttl_seconds: r.ttlSeconds,
      if_revision: r.ifRevision,
    })),
  );
  const params: unknown[] = [
    ctx.tenantId,
    ctx.installId,
    ctx.namespace,
    input,
    JSON.stringify(items.map((r) => r.key)),
    ctx.schemaVersion,
    ctx.maxBytes,
    ctx.maxKeysPerNamespace,
    ctx.operation,
    ctx.actor,
    ctx.requestId,
    items.length,
  ];
  const checked = ctx.activeSchemaVersion !== undefined;
  if (checked) params.push(ctx.activeSchemaVersion);
  const { rows } = await db.executeQuery<FastRow>(CompiledQuery.raw(checked ? WRITE_CHECKING_SCHEMA : WRITE_PINNED_SCHEMA, params));
  const first = rows[0];
  if (!first || Number(first.ok) !== 1) return null;
  return {
    records: inOrder(items, rows),
    installBytes: Number(first.install_bytes),
    namespaceKeys: Number(first.namespace_keys),
    bytesDelta: Number(first.bytes_delta),
    keysDelta: Number(first.keys_delta),
  };
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
    ), install_counted AS (
      UPDATE ext_storage_install_locks SET bytes = bytes - ${ctx.bytes}::bigint
       WHERE tenant_id = ${t}::uuid AND install_id = ${i}::uuid AND EXISTS (SELECT 1 FROM deleted)
    )
    INSERT INTO ext_storage_audit
      (tenant_id, install_id, namespace, key, operation, revision, bytes_delta, actor, request_id, at)
    SELECT ${t}::uuid, ${i}::uuid, ${ctx.namespace}, deleted.key, 'deleteRecord', NULL, ${-ctx.bytes}::bigint,
           ${ctx.actor}, ${ctx.requestId}, now()
      FROM deleted`.execute(db);
}
