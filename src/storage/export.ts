/**
 * Export (contract, "Export and import"): an install's schemas and live records as NDJSON lines,
 * read in one REPEATABLE READ, READ ONLY transaction (one snapshot: the header's changesCursor,
 * the schemas and every record page agree, whatever commits meanwhile), in keyset pages, so memory
 * stays bounded whatever the install's size. Every statement filters on the tenant first
 * (docs/citus.md): on Citus the whole transaction runs on the tenant's worker.
 *
 * The lines come out of an async generator: the door pulls the next one only when its client has
 * taken the previous ones (back-pressure), and stopping early (return()) rolls the snapshot back.
 */
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { feedHead } from './changes.js';
import { encodeCursor } from './cursor.js';
import type { Scope } from './records.js';

export const EXPORT_FORMAT = 'ext-storage-export';
export const EXPORT_VERSION = 1;

/** Records read per statement (and schema versions: a quarter of it, they are up to 64 KiB each). */
export const EXPORT_PAGE = 500;

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
  bytes: number | string;
};

const iso = (d: Date | string) => new Date(d).toISOString();

/** The export's lines, each ending with "\n": header, schemas, records by namespace then key, end. */
export async function* exportLines(db: Db, scope: Scope, pageSize = EXPORT_PAGE): AsyncGenerator<string, void, undefined> {
  const trx = await db.startTransaction().setIsolationLevel('repeatable read').setAccessMode('read only').execute();
  let committed = false;
  try {
    // The snapshot is taken by this first statement; now() is the transaction's instant throughout.
    const { rows } = await sql<{ at: Date }>`SELECT now() AS at`.execute(trx);
    const exportedAt = rows[0]!.at;
    const { head } = await feedHead(trx, scope);
    yield `${JSON.stringify({
      type: 'header',
      format: EXPORT_FORMAT,
      version: EXPORT_VERSION,
      tenantId: scope.tenantId,
      installId: scope.installId,
      exportedAt: iso(exportedAt),
      changesCursor: encodeCursor('c', scope.installId, head),
    })}\n`;

    let after: [string, number] = ['', 0];
    for (;;) {
      const page = await sql<{ namespace: string; version: number; schema: unknown; created_at: Date }>`
        SELECT s.namespace, s.version, s.schema, s.created_at FROM ext_storage_schemas s
         WHERE s.tenant_id = ${scope.tenantId} AND s.install_id = ${scope.installId} AND (s.namespace, s.version) > (${after[0]}, ${after[1]})
         ORDER BY s.namespace, s.version LIMIT ${Math.max(1, Math.floor(pageSize / 4))}`.execute(trx);
      for (const s of page.rows) {
        yield `${JSON.stringify({ type: 'schema', namespace: s.namespace, version: s.version, schema: s.schema, createdAt: iso(s.created_at) })}\n`;
      }
      if (page.rows.length < Math.max(1, Math.floor(pageSize / 4))) break;
      const last = page.rows[page.rows.length - 1]!;
      after = [last.namespace, last.version];
    }

    let records = 0;
    let bytes = 0;
    let afterKey: [string, string] = ['', ''];
    for (;;) {
      const page = await sql<RecordRow>`
        SELECT r.namespace, r.key, r.value, r.metadata, r.revision, r.schema_version, r.ttl_expires_at, r.created_at, r.updated_at,
               r.value_bytes + r.metadata_bytes AS bytes
          FROM ext_storage_records r
         WHERE r.tenant_id = ${scope.tenantId} AND r.install_id = ${scope.installId} AND (r.namespace, r.key) > (${afterKey[0]}, ${afterKey[1]})
           AND ext_storage_is_live(r.ttl_expires_at, now())
         ORDER BY r.namespace, r.key LIMIT ${pageSize}`.execute(trx);
      for (const r of page.rows) {
        records++;
        bytes += Number(r.bytes);
        yield `${JSON.stringify({
          type: 'record',
          namespace: r.namespace,
          key: r.key,
          value: r.value,
          metadata: r.metadata ?? {},
          revision: r.revision,
          schemaVersion: r.schema_version,
          ttlExpiresAt: r.ttl_expires_at === null ? null : iso(r.ttl_expires_at),
          createdAt: iso(r.created_at),
          updatedAt: iso(r.updated_at),
        })}\n`;
      }
      if (page.rows.length < pageSize) break;
      const last = page.rows[page.rows.length - 1]!;
      afterKey = [last.namespace, last.key];
    }
    await trx.commit().execute();
    committed = true;
    yield `${JSON.stringify({ type: 'end', records, bytes })}\n`;
  } finally {
    if (!committed) await trx.rollback().execute().catch(() => undefined);
  }
}
