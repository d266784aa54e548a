/** Record reads. Every statement filters on tenant_id first (docs/citus.md); writes are in write.ts. */
import { CompiledQuery } from 'kysely';
import type { Db } from '../db/database.js';
import { JsonText } from './json-text.js';

export interface StoredRecord {
  /** The install's UUID (lower-case). */
  installId: string;
  namespace: string;
  key: string;
  /** A read gives the stored text (JsonText: written to answers unparsed), a write the value written; undefined when a keys-only read left it out. */
  value: unknown;
  /** A JSON object, as value: JsonText from a read, the object from a write. */
  metadata: JsonText | Record<string, unknown>;
  revision: number;
  schemaVersion: number | null;
  ttlExpiresAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  /** Stored bytes (value + metadata, as the contract counts them): what the response budget charges; 0 when neither was read. */
  storedBytes: number;
}

/**
 * What a read loads of each record: everything, or everything but `value` and `metadata` (a page
 * that shows neither must not read them: users list the keys of namespaces of large values).
 */
export type RecordColumns = 'all' | 'keysOnly';

/** Tenant and install of a per-install statement. */
export interface Scope {
  tenantId: string;
  installId: string;
}

type RecordRow = {
  namespace: string;
  key: string;
  /** jsonb's text (`value::text`), absent from a keys-only read. */
  value?: string;
  metadata?: string;
  revision: number;
  schema_version: number | null;
  ttl_expires_at: Date | null;
  created_at: Date;
  updated_at: Date;
  stored_bytes?: number;
};

/**
 * A row as a record, its value and metadata kept as jsonb's text: at most 1.5 times their stored
 * (compact) bytes, a space after each `:` and `,`. A number written in exponent form comes back
 * with all its digits (1e300: 301 characters), so a record whose text outgrows that bound is parsed
 * instead: the values in an answer take at most 1.5 times the bytes its budget counts (2.2 with
 * non-ASCII text), where a value of 1e300s would have made it 50.
 */
function toRecord(row: RecordRow, installId: string): StoredRecord {
  const storedBytes = Number(row.stored_bytes ?? 0);
  let value: unknown;
  let metadata: JsonText | Record<string, unknown>;
  if (row.value === undefined || row.metadata === undefined) {
    // A keys-only read has neither (and its resolvers are never asked for them).
    metadata = {};
  } else if (row.value.length + row.metadata.length <= storedBytes * 1.5) {
    value = new JsonText(row.value);
    metadata = new JsonText(row.metadata);
  } else {
    value = JSON.parse(row.value);
    metadata = JSON.parse(row.metadata) as Record<string, unknown>;
  }
  return {
    installId,
    namespace: row.namespace,
    key: row.key,
    value,
    metadata,
    revision: row.revision,
    schemaVersion: row.schema_version,
    ttlExpiresAt: row.ttl_expires_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    storedBytes,
  };
}

const HEAD_COLUMNS = 'namespace, key, revision, schema_version, ttl_expires_at, created_at, updated_at';
/** value and metadata as text: handed to the answer as they are (src/storage/json-text.ts), not parsed by the driver. */
const DATA_COLUMNS = 'value::text AS value, metadata::text AS metadata, value_bytes + metadata_bytes AS stored_bytes';

/**
 * The live records of one namespace (whose key starts with a prefix, `$4`, when `prefix`): what a
 * read finds, a page lists and totalCount counts. $1 tenant, $2 install, $3 namespace. Liveness is
 * the rule defined once in SQL (ext_storage_is_live, migrations/005_write_function.ts), at the
 * statement's instant.
 */
const LIVE_WHERE = 'tenant_id = $1::uuid AND install_id = $2::uuid AND namespace = $3 AND ext_storage_is_live(ttl_expires_at, now())';
const liveWhere = (prefix: boolean) => (prefix ? `${LIVE_WHERE} AND key LIKE $4` : LIVE_WHERE);

const SELECT_BY_KEYS = `SELECT ${HEAD_COLUMNS}, ${DATA_COLUMNS} FROM ext_storage_records
 WHERE ${LIVE_WHERE} AND key = ANY(ARRAY(SELECT jsonb_array_elements_text($4::jsonb)))`;

/** Live records of one namespace by key, in one statement (the hottest read: its text is built once). */
export async function selectRecords(db: Db, scope: Scope, namespace: string, keys: readonly string[]): Promise<Map<string, StoredRecord>> {
  if (keys.length === 0) return new Map();
  const unique = keys.length === 1 ? keys : [...new Set(keys)];
  const { rows } = await db.executeQuery<RecordRow>(CompiledQuery.raw(SELECT_BY_KEYS, [scope.tenantId, scope.installId, namespace, JSON.stringify(unique)]));
  const found = new Map<string, StoredRecord>();
  for (const r of rows) found.set(r.key, toRecord(r, scope.installId));
  return found;
}

function likePrefix(prefix: string): string {
  return prefix.replace(/[\\%_]/g, (c) => `\\${c}`) + '%';
}

const liveParams = (scope: Scope, namespace: string, prefix: string | null | undefined): unknown[] =>
  prefix ? [scope.tenantId, scope.installId, namespace, likePrefix(prefix)] : [scope.tenantId, scope.installId, namespace];

/** A page statement's text per shape (prefix, after a key, columns), built once: building it per request was 5% of a 100-record page's CPU. */
const pageTexts = new Map<string, string>();

function pageText(prefix: boolean, after: boolean, columns: RecordColumns): string {
  const shape = `${prefix}/${after}/${columns}`;
  let text = pageTexts.get(shape);
  if (text === undefined) {
    const data = columns === 'keysOnly' ? '' : `, ${DATA_COLUMNS}`;
    const afterAt = prefix ? 5 : 4;
    text =
      `SELECT ${HEAD_COLUMNS}${data} FROM ext_storage_records WHERE ${liveWhere(prefix)}` +
      `${after ? ` AND key > $${afterAt}` : ''} ORDER BY key LIMIT $${after ? afterAt + 1 : afterAt}`;
    pageTexts.set(shape, text);
  }
  return text;
}

/**
 * One page of live records ordered by key (byte order), after `afterKey`; fetches first+1 to know
 * if more follow. `keysOnly` leaves value and metadata (and their sizes) in the table.
 */
export async function selectRecordPage(
  db: Db,
  scope: Scope,
  namespace: string,
  opts: { prefix?: string | null; afterKey?: string | null; first: number; columns?: RecordColumns },
): Promise<{ records: StoredRecord[]; hasNextPage: boolean }> {
  const after = opts.afterKey !== null && opts.afterKey !== undefined;
  const params = liveParams(scope, namespace, opts.prefix);
  if (after) params.push(opts.afterKey);
  params.push(opts.first + 1);
  const text = pageText(Boolean(opts.prefix), after, opts.columns ?? 'all');
  const { rows } = await db.executeQuery<RecordRow>(CompiledQuery.raw(text, params));
  return { records: rows.slice(0, opts.first).map((r) => toRecord(r, scope.installId)), hasNextPage: rows.length > opts.first };
}

const COUNT_ALL = `SELECT count(*)::int AS n FROM ext_storage_records WHERE ${liveWhere(false)}`;
const COUNT_PREFIXED = `SELECT count(*)::int AS n FROM ext_storage_records WHERE ${liveWhere(true)}`;

/**
 * How many live records match (RecordConnection.totalCount), reading neither value nor metadata.
 * Bounded: one namespace holds at most maxKeysPerNamespace live keys (5,120 by default), and the
 * count walks that namespace's rows in primary-key order (plus expired rows not yet swept, which
 * writes remove in bounded batches).
 */
export async function countLiveRecords(db: Db, scope: Scope, namespace: string, prefix: string | null | undefined): Promise<number> {
  const text = prefix ? COUNT_PREFIXED : COUNT_ALL;
  const { rows } = await db.executeQuery<{ n: number }>(CompiledQuery.raw(text, liveParams(scope, namespace, prefix)));
  return Number(rows[0]?.n ?? 0);
}
