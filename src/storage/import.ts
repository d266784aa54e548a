/**
 * Import (contract, "Export and import"): a body in the export format restored into an install,
 * all or nothing. The body is read line by line as it arrives (never held whole) and applied in
 * ONE transaction that holds the install's lock from its first statement: records go to the write
 * function in batches of restored puts (operation `import`: its audit events and changes), and
 * any refusal (a malformed line, a limit, a schema, a quota, a missing or wrong end line) throws,
 * which rolls the transaction back: nothing changed.
 *
 * Rules, each once, here:
 * - line 1 is the header; schema lines come before record lines; the end line is last and its
 *   counts match; a key appears once (duplicates would make one write of two records);
 * - records pass the prepare stage's checks (limits.ts: names, formats, sizes), and an expiry at
 *   most the longest TTL from now (checkExpiryBound: no import past STORAGE_MAX_TTL_SECONDS);
 * - schemas: a target namespace with no schema gets the file's versions as they were; otherwise
 *   the file's versions (none, when the file holds only records of it) must equal the target's;
 * - each record is validated against its own schemaVersion (one of the file's versions);
 * - quotas: `merge` asks the write function, whose check sees the earlier batches of the same
 *   transaction (exact against the net effect); `replace` ends with exactly the file's records, so
 *   its quotas are checked against the file's running totals (the first record line that does
 *   not fit), and the function is not asked;
 * - `replace` then deletes every live record the file does not hold.
 *
 * Memory: the file's keys are kept in a Set (duplicates, and replace's deletes), about 100 bytes
 * per record plus the key: the records of an import are bounded by the install's quotas (a file
 * with more is refused at the first line that does not fit), 10 MB for 100,000 records. The schema
 * documents of the file are kept (each at most 64 KiB, compiled once); everything else streams.
 */
import { isDeepStrictEqual } from 'node:util';
import type { ValidateFunction } from 'ajv';
import { sql } from 'kysely';
import type { Limits, QuotaSettings } from '../config.js';
import type { Db } from '../db/database.js';
import {
  BadInputError,
  LimitExceededError,
  QuotaExceededError,
  StorageError,
  ValidationFailedError,
  type QuotaName,
  type StorageErrorCode,
} from './errors.js';
import { EXPORT_FORMAT, EXPORT_VERSION } from './export.js';
import type { InstallScope } from './installs.js';
import { checkExpiryBound, checkKey, checkNamespace, checkValueFormat, checkValueSizes, fitsInt4, isJsonObject } from './limits.js';
import type { Caller } from './principal.js';
import { compileSchema, validationIssues } from './schemas.js';
import type { RawOutcome, RecordWriter, RestoreOp } from './write.js';

export type ImportMode = 'merge' | 'replace';

export interface ImportOutcome {
  mode: ImportMode;
  records: number;
  bytes: number;
}

/** Records per call of the write function. */
export const IMPORT_BATCH = 100;
/** Records read per statement when replace looks for the records the file does not hold. */
const REPLACE_PAGE = 500;

/** An import refused at a line (1-based): the refusal's own code, and the line in its details. */
export class ImportRefusedError extends StorageError {
  readonly code: StorageErrorCode;
  constructor(
    readonly reason: StorageError,
    readonly line: number,
  ) {
    super(`line ${line}: ${reason.message}`);
    this.code = reason instanceof BadInputError ? 'VALIDATION_FAILED' : reason.code;
  }
}

const malformed = (message: string) => new ValidationFailedError(message, []);

const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})$/;

/** An instant of the file, normalised (a malformed one refuses the line). */
function instant(v: unknown, what: string, nullable = false): string | null {
  if (nullable && v === null) return null;
  if (typeof v !== 'string' || !ISO_RE.test(v) || Number.isNaN(Date.parse(v))) throw malformed(`${what} must be an ISO 8601 instant`);
  return new Date(v).toISOString();
}

/** A longer line is refused before it is parsed (a record line is its value and metadata plus a little). */
function maxLineBytes(quota: QuotaSettings): number {
  return 2 * (quota.maxValueBytes + quota.maxMetadataBytes) + 2 * 65_536 + 65_536;
}

/**
 * The body's lines as they arrive (UTF-8, without their "\n"; a final "\n" ends the last line),
 * numbered from 1. A line longer than `max` bytes is refused at its number.
 */
export async function* ndjsonLines(body: AsyncIterable<Uint8Array | string>, max: number): AsyncGenerator<{ text: string; line: number }> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let parts: Buffer[] = [];
  let length = 0;
  let line = 0;
  const decode = (buf: Buffer) => {
    try {
      return decoder.decode(buf);
    } catch {
      throw new ImportRefusedError(malformed('the line is not UTF-8'), line);
    }
  };
  for await (const raw of body) {
    let chunk = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10)) {
      line++;
      if (length + nl > max) throw new ImportRefusedError(new LimitExceededError('valueBytes', `the line is longer than ${max} bytes`, max), line);
      parts.push(chunk.subarray(0, nl));
      const text = decode(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
      parts = [];
      length = 0;
      chunk = chunk.subarray(nl + 1);
      yield { text, line };
    }
    if (chunk.length > 0) {
      if (length + chunk.length > max) throw new ImportRefusedError(new LimitExceededError('valueBytes', `the line is longer than ${max} bytes`, max), line + 1);
      parts.push(chunk);
      length += chunk.length;
    }
  }
  if (length > 0) {
    line++;
    yield { text: decode(Buffer.concat(parts)), line };
  }
}

interface FileSchema {
  version: number;
  schema: unknown;
  createdAt: string;
  line: number;
  validate: ValidateFunction;
}

export interface ImportDeps {
  writer: RecordWriter;
  limits: Limits;
}

/**
 * Runs an import of `body` into `scope` (access already checked). Resolves when committed;
 * rejects with ImportRefusedError (nothing changed) or an unexpected error (rolled back too).
 * `onSchemas` learns, after the commit, the namespaces whose schemas were restored.
 */
export async function importInstall(
  deps: ImportDeps,
  caller: Caller,
  scope: InstallScope,
  body: AsyncIterable<Uint8Array | string>,
  mode: ImportMode,
): Promise<ImportOutcome & { restoredSchemas: Array<{ namespace: string; version: number; validate: ValidateFunction }> }> {
  const { writer, limits } = deps;
  const quota = scope.quota;
  return writer.transaction(scope, async (call, trx) => {
    await lockInstall(trx, scope);
    const schemas = new Map<string, FileSchema[]>();
    const settled = new Set<string>();
    const restoredSchemas: Array<{ namespace: string; version: number; validate: ValidateFunction }> = [];
    const keys = new Set<string>();
    let state: 'header' | 'schemas' | 'records' | 'ended' = 'header';
    let records = 0;
    let bytes = 0;
    let lastLine = 0;
    // Replace: the file's running totals against the quotas.
    const perNamespace = new Map<string, number>();
    let batch: RestoreOp[] = [];
    let batchLines: number[] = [];

    const flush = async () => {
      if (batch.length === 0) return;
      const outcome = await call(writer.restoreRequest(caller, scope, batch, { quota: mode === 'merge' }));
      const lines = batchLines;
      batch = [];
      batchLines = [];
      if (outcome.ok) return;
      if ('error' in outcome && outcome.error === 'quota') {
        const index = outcome.index === null || outcome.index === undefined ? 0 : Number(outcome.index);
        throw new ImportRefusedError(new QuotaExceededError(outcome.quota, Number(outcome.allowed), Number(outcome.used)), lines[index] ?? lines[0]!);
      }
      throw new Error(`the write function refused an import batch: ${'error' in outcome ? outcome.error : 'probe'}`);
    };

    /** Restores or compares a namespace's schemas (the file's, or none), once, before its first record. */
    const settle = async (namespace: string, line: number) => {
      if (settled.has(namespace)) return;
      settled.add(namespace);
      const file = schemas.get(namespace) ?? [];
      const { rows } = await sql<{ version: number; schema: unknown }>`
        SELECT s.version, s.schema FROM ext_storage_schemas s
         WHERE s.tenant_id = ${scope.tenantId} AND s.install_id = ${scope.installId} AND s.namespace = ${namespace}
         ORDER BY s.version`.execute(trx);
      if (rows.length === 0) {
        for (const s of file) {
          await sql`INSERT INTO ext_storage_schemas (tenant_id, install_id, namespace, version, schema, created_at)
                    VALUES (${scope.tenantId}, ${scope.installId}, ${namespace}, ${s.version}, ${JSON.stringify(s.schema)}::jsonb, ${s.createdAt}::timestamptz)`.execute(trx);
          restoredSchemas.push({ namespace, version: s.version, validate: s.validate });
        }
        return;
      }
      const same = rows.length === file.length && rows.every((r, i) => r.version === file[i]!.version && isDeepStrictEqual(r.schema, file[i]!.schema));
      if (!same) {
        throw new ImportRefusedError(
          malformed(`the schema versions of namespace "${namespace}" differ from the target's (${rows.length} stored there); import into a namespace without schemas, or with the same ones`),
          file[0]?.line ?? line,
        );
      }
    };

    const settleAll = async (line: number) => {
      for (const namespace of schemas.keys()) await settle(namespace, line);
    };

    const countQuota = (namespace: string, recordBytes: number, line: number) => {
      const used = perNamespace.get(namespace) ?? 0;
      if (used === 0 && perNamespace.size >= quota.maxNamespaces) fail('namespaces', quota.maxNamespaces, perNamespace.size, line);
      if (used + 1 > quota.maxKeysPerNamespace) fail('keysPerNamespace', quota.maxKeysPerNamespace, used, line);
      if (bytes + recordBytes > quota.maxBytes) fail('bytes', quota.maxBytes, bytes, line);
      perNamespace.set(namespace, used + 1);
    };

    for await (const { text, line } of ndjsonLines(body, maxLineBytes(quota))) {
      lastLine = line;
      try {
        if (state === 'ended') throw malformed('a line after the end line');
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          throw malformed('the line is not JSON');
        }
        if (!isJsonObject(parsed) || typeof parsed.type !== 'string') throw malformed('the line is not an object with a type');
        const o = parsed;
        if (state === 'header') {
          if (o.type !== 'header' || o.format !== EXPORT_FORMAT || o.version !== EXPORT_VERSION) {
            throw malformed(`line 1 must be the header {"type":"header","format":"${EXPORT_FORMAT}","version":${EXPORT_VERSION},...}`);
          }
          state = 'schemas';
          continue;
        }
        switch (o.type) {
          case 'schema': {
            if (state !== 'schemas') throw malformed('schema lines come before record lines');
            checkNamespace(o.namespace as string);
            const version = o.version;
            if (typeof version !== 'number' || !fitsInt4(version) || version < 1) throw malformed('version must be a positive integer');
            const list = schemas.get(o.namespace as string) ?? [];
            if (list.length > 0 && list[list.length - 1]!.version >= version) throw malformed('schema versions of a namespace come once each, in increasing order');
            const createdAt = instant(o.createdAt, 'createdAt')!;
            const validate = compileSchema(o.schema);
            list.push({ version, schema: o.schema, createdAt, line, validate });
            schemas.set(o.namespace as string, list);
            break;
          }
          case 'record': {
            if (state === 'schemas') {
              await settleAll(line);
              state = 'records';
            }
            const namespace = o.namespace as string;
            checkNamespace(namespace);
            checkKey(o.key as string, limits);
            const id = `${namespace}\u0000${o.key as string}`;
            if (keys.has(id)) throw malformed(`key "${String(o.key).slice(0, 300)}" of namespace "${namespace}" appears more than once`);
            checkValueFormat(o.value, o.metadata);
            const sized = checkValueSizes(o.value, o.metadata, null, limits, quota);
            const revision = o.revision;
            if (typeof revision !== 'number' || !fitsInt4(revision) || revision < 1) throw malformed('revision must be a positive integer');
            const schemaVersion = o.schemaVersion ?? null;
            if (schemaVersion !== null && (typeof schemaVersion !== 'number' || !Number.isInteger(schemaVersion))) throw malformed('schemaVersion must be an integer or null');
            const restore = {
              revision,
              createdAt: instant(o.createdAt, 'createdAt')!,
              updatedAt: instant(o.updatedAt, 'updatedAt')!,
              expiresAt: instant(o.ttlExpiresAt ?? null, 'ttlExpiresAt', true),
            };
            checkExpiryBound(restore.expiresAt, limits);
            await settle(namespace, line);
            if (schemaVersion !== null) {
              const schema = schemas.get(namespace)?.find((s) => s.version === schemaVersion);
              if (!schema) throw new ValidationFailedError(`unknown schema version ${schemaVersion}`, [], schemaVersion);
              const issues = validationIssues(schema.validate, o.value);
              if (issues.length > 0) throw new ValidationFailedError(`value does not match schema version ${schemaVersion}`, issues.slice(0, 100), schemaVersion);
            }
            const recordBytes = sized.valueBytes + sized.metadataBytes;
            if (mode === 'replace') countQuota(namespace, recordBytes, line);
            keys.add(id);
            records++;
            bytes += recordBytes;
            batch.push({
              kind: 'put',
              namespace,
              key: o.key as string,
              ifRevision: null,
              value: sized.value,
              metadata: sized.metadata,
              valueBytes: sized.valueBytes,
              metadataBytes: sized.metadataBytes,
              ttlSeconds: null,
              schemaVersion,
              restore,
            });
            batchLines.push(line);
            if (batch.length >= IMPORT_BATCH) await flush();
            break;
          }
          case 'end': {
            if (o.records !== records || o.bytes !== bytes) {
              throw malformed(`the end line says ${String(o.records)} records of ${String(o.bytes)} bytes; the file holds ${records} of ${bytes}`);
            }
            await settleAll(line);
            state = 'ended';
            break;
          }
          default:
            throw malformed(`unknown line type "${String(o.type).slice(0, 40)}"`);
        }
      } catch (error) {
        if (error instanceof ImportRefusedError) throw error;
        if (error instanceof StorageError) throw new ImportRefusedError(error, line);
        throw error;
      }
    }
    if (state === 'header') throw new ImportRefusedError(malformed('the header line is missing'), lastLine + 1);
    if (state !== 'ended') throw new ImportRefusedError(malformed('the end line is missing (a truncated file?)'), lastLine + 1);
    await flush();
    if (mode === 'replace') await deleteOthers(trx, scope, keys, async (ops) => {
      const outcome: RawOutcome = await call(writer.restoreRequest(caller, scope, ops, { quota: false }));
      if (!outcome.ok) throw new Error('the write function refused an import delete batch');
    });
    return { mode, records, bytes, restoredSchemas };
  });
}

function fail(name: QuotaName, allowed: number, used: number, line: number): never {
  throw new ImportRefusedError(new QuotaExceededError(name, allowed, used), line);
}

/** The install's lock row, created on first use and held until the import commits (I1). */
async function lockInstall(trx: Db, scope: InstallScope): Promise<void> {
  await sql`INSERT INTO ext_storage_install_locks (tenant_id, install_id) VALUES (${scope.tenantId}, ${scope.installId})
            ON CONFLICT (tenant_id, install_id) DO NOTHING`.execute(trx);
  await sql`SELECT l.install_id FROM ext_storage_install_locks l
             WHERE l.tenant_id = ${scope.tenantId} AND l.install_id = ${scope.installId} FOR UPDATE`.execute(trx);
}

/** Replace: every live record not in `keys` deleted, found by keyset pages, deleted in batches. */
async function deleteOthers(trx: Db, scope: InstallScope, keys: Set<string>, apply: (ops: RestoreOp[]) => Promise<void>): Promise<void> {
  let after: [string, string] = ['', ''];
  let doomed: RestoreOp[] = [];
  for (;;) {
    const { rows } = await sql<{ namespace: string; key: string }>`
      SELECT r.namespace, r.key FROM ext_storage_records r
       WHERE r.tenant_id = ${scope.tenantId} AND r.install_id = ${scope.installId} AND (r.namespace, r.key) > (${after[0]}, ${after[1]})
         AND ext_storage_is_live(r.ttl_expires_at, clock_timestamp())
       ORDER BY r.namespace, r.key LIMIT ${REPLACE_PAGE}`.execute(trx);
    for (const r of rows) {
      if (keys.has(`${r.namespace}\u0000${r.key}`)) continue;
      doomed.push({ kind: 'delete', namespace: r.namespace, key: r.key, ifRevision: null });
      if (doomed.length >= IMPORT_BATCH) {
        await apply(doomed);
        doomed = [];
      }
    }
    if (rows.length < REPLACE_PAGE) break;
    const last = rows[rows.length - 1]!;
    after = [last.namespace, last.key];
  }
  if (doomed.length > 0) await apply(doomed);
}
