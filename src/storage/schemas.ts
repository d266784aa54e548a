/** Per-namespace JSON Schema (draft 2020-12) registry and the compiled-validator cache. */
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { ValidationFailedError, type ValidationIssue } from './errors.js';
import { fitsInt4, jsonBytes } from './limits.js';
import { appendAuditEvent } from './audit.js';

type AddFormats = (ajv: Ajv2020) => Ajv2020;
const addFormats: AddFormats =
  (addFormatsModule as unknown as { default?: AddFormats }).default ?? (addFormatsModule as unknown as AddFormats);

export const MAX_SCHEMA_BYTES = 65536;

export interface NamespaceSchema {
  version: number;
  schema: unknown;
  createdAt: Date;
}

/** Scope of a schema: tenant, install and namespace. */
export interface SchemaScope {
  tenantId: string;
  installId: string;
  namespace: string;
}

function newAjv(): Ajv2020 {
  // strict: unknown keywords make the schema invalid; no loadSchema: a remote $ref is never fetched.
  const ajv = new Ajv2020({
    strict: true,
    strictRequired: false,
    strictTypes: false,
    strictTuples: false,
    allowUnionTypes: true,
    allErrors: true,
    validateFormats: true,
  });
  addFormats(ajv);
  return ajv;
}

function issueFromAjv(e: ErrorObject): ValidationIssue {
  let path = e.instancePath;
  const params = e.params as Record<string, unknown>;
  if (e.keyword === 'required' && typeof params.missingProperty === 'string') path += `/${escapePointer(params.missingProperty)}`;
  if (e.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
    path += `/${escapePointer(params.additionalProperty)}`;
  }
  return { path, message: e.message ?? e.keyword, keyword: e.keyword };
}

function escapePointer(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** Compiles a schema document; an invalid one is ValidationFailed with the reasons. */
export function compileSchema(schema: unknown): ValidateFunction {
  if (typeof schema !== 'boolean' && (typeof schema !== 'object' || schema === null || Array.isArray(schema))) {
    throw new ValidationFailedError('a JSON Schema must be an object or a boolean', [
      { path: '', message: 'must be object or boolean', keyword: 'type' },
    ]);
  }
  const size = jsonBytes(schema);
  if (size > MAX_SCHEMA_BYTES) {
    throw new ValidationFailedError(`schema is ${size} bytes; the limit is ${MAX_SCHEMA_BYTES}`, [
      { path: '', message: `larger than ${MAX_SCHEMA_BYTES} bytes`, keyword: 'maxBytes' },
    ]);
  }
  const ajv = newAjv();
  if (typeof schema === 'object' && schema !== null && '$schema' in schema) {
    const declared = (schema as Record<string, unknown>).$schema;
    if (declared !== 'https://json-schema.org/draft/2020-12/schema') {
      throw new ValidationFailedError('only draft 2020-12 schemas are accepted', [
        { path: '/$schema', message: 'must be https://json-schema.org/draft/2020-12/schema', keyword: '$schema' },
      ]);
    }
  }
  if (!ajv.validateSchema(schema as object)) {
    throw new ValidationFailedError('invalid JSON Schema', (ajv.errors ?? []).map(issueFromAjv));
  }
  try {
    return ajv.compile(schema as object);
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0]!.slice(0, 300) : 'invalid schema';
    throw new ValidationFailedError('invalid JSON Schema', [{ path: '', message, keyword: 'schema' }]);
  }
}

/** Bounded LRU of compiled validators, keyed by tenant, install, namespace and version. */
export class ValidatorCache {
  private readonly entries = new Map<string, ValidateFunction>();
  constructor(private readonly capacity = 1000) {}

  private key(scope: SchemaScope, version: number): string {
    return `${scope.tenantId}/${scope.installId}/${scope.namespace}/${version}`;
  }

  /** The validator for a version, compiling it from the stored document once; undefined if unknown. */
  async get(db: Db, scope: SchemaScope, version: number): Promise<ValidateFunction | undefined> {
    // A version the column cannot hold (0, negative, fractional, beyond int4) is unknown without asking.
    if (!fitsInt4(version) || version < 1) return undefined;
    const k = this.key(scope, version);
    const hit = this.entries.get(k);
    if (hit) {
      this.entries.delete(k);
      this.entries.set(k, hit);
      return hit;
    }
    const row = await db
      .selectFrom('ext_storage_schemas')
      .select('schema')
      .where('tenant_id', '=', scope.tenantId)
      .where('install_id', '=', scope.installId)
      .where('namespace', '=', scope.namespace)
      .where('version', '=', version)
      .executeTakeFirst();
    if (!row) return undefined;
    const validate = compileSchema(row.schema);
    this.put(k, validate);
    return validate;
  }

  put(key: string, validate: ValidateFunction): void {
    this.entries.set(key, validate);
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  remember(scope: SchemaScope, version: number, validate: ValidateFunction): void {
    this.put(this.key(scope, version), validate);
  }

  get size(): number {
    return this.entries.size;
  }
}

/** Issues of a value against a validator, each path prefixed by `prefix` (the bulk item index). */
export function validationIssues(validate: ValidateFunction, value: unknown, prefix = ''): ValidationIssue[] {
  if (validate(value)) return [];
  return (validate.errors ?? []).map((e) => {
    const issue = issueFromAjv(e);
    return { ...issue, path: prefix + issue.path };
  });
}

async function activeSchemaVersion(db: Db, scope: SchemaScope): Promise<number | null> {
  const row = await db
    .selectFrom('ext_storage_schemas')
    .select(sql<number | null>`max(version)`.as('version'))
    .where('tenant_id', '=', scope.tenantId)
    .where('install_id', '=', scope.installId)
    .where('namespace', '=', scope.namespace)
    .executeTakeFirst();
  return row?.version ?? null;
}

export async function activeSchema(db: Db, scope: SchemaScope): Promise<NamespaceSchema | null> {
  const row = await db
    .selectFrom('ext_storage_schemas')
    .select(['version', 'schema', 'created_at'])
    .where('tenant_id', '=', scope.tenantId)
    .where('install_id', '=', scope.installId)
    .where('namespace', '=', scope.namespace)
    .orderBy('version', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row ? { version: row.version, schema: row.schema, createdAt: row.created_at } : null;
}

/** The active schema version per install and namespace as this process last saw it; writes prove it under the install lock. */
export class ActiveSchemaCache {
  private readonly versions = new Map<string, number | null>();

  private key(scope: SchemaScope): string {
    return `${scope.installId}/${scope.namespace}`;
  }

  async get(db: Db, scope: SchemaScope): Promise<number | null> {
    const hit = this.versions.get(this.key(scope));
    if (hit !== undefined) return hit;
    const version = await activeSchemaVersion(db, scope);
    this.remember(scope, version);
    return version;
  }

  remember(scope: SchemaScope, version: number | null): void {
    if (this.versions.size >= 10_000) this.versions.clear();
    this.versions.set(this.key(scope), version);
  }
}

/**
 * Stores `schema` as the namespace's next version, under the install's lock (the write function
 * takes the same lock, so no write validates against a version that stops being active meanwhile).
 */
export async function storeSchemaVersion(
  db: Db,
  scope: SchemaScope,
  schema: unknown,
  who: { actor: string; requestId: string | null },
): Promise<NamespaceSchema> {
  return db.transaction().execute(async (trx) => {
    await trx
      .selectFrom('ext_storage_install_locks')
      .select('install_id')
      .where('tenant_id', '=', scope.tenantId)
      .where('install_id', '=', scope.installId)
      .forUpdate()
      .execute();
    const version = ((await activeSchemaVersion(trx, scope)) ?? 0) + 1;
    const row = await trx
      .insertInto('ext_storage_schemas')
      .values({
        tenant_id: scope.tenantId,
        install_id: scope.installId,
        namespace: scope.namespace,
        version,
        schema: JSON.stringify(schema),
        created_at: sql`now()`,
      })
      .returning(['version', 'schema', 'created_at'])
      .executeTakeFirstOrThrow();
    await appendAuditEvent(trx, scope, { operation: 'setNamespaceSchema', namespace: scope.namespace, actor: who.actor, requestId: who.requestId });
    return { version: row.version, schema: row.schema, createdAt: row.created_at };
  });
}
