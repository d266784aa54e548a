/**
 * The storage core: every door (GraphQL, the Runner's REST protocol, the CLI) calls these
 * methods, so each rule (access, limits, revisions, schema, quotas, TTL, audit) lives here once.
 */
import type { Limits, QuotaSettings } from '../config.js';
import type { Db } from '../db/database.js';
import { appendAuditEvent, selectAuditPage, type AuditEvent } from './audit.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import {
  BadInputError,
  ForbiddenError,
  LimitExceededError,
  QuotaExceededError,
  RevisionMismatchError,
  StorageError,
  ValidationFailedError,
  mapDatabaseError,
  type QuotaName,
  type ValidationIssue,
} from './errors.js';
import {
  authorize,
  checkUpsertInput,
  effectiveQuota,
  findInstalls,
  mergeQuota,
  toInstall,
  type Install,
  type InstallScope,
  type Need,
  type UpsertInstallInput,
} from './installs.js';
import {
  checkKey,
  checkKeysPerRead,
  checkNamespace,
  checkPageSize,
  checkValueFormat,
  checkValueSizes,
} from './limits.js';
import { normalizeId, type Caller } from './principal.js';
import {
  deleteRecordRow,
  isLostRace,
  lockInstall,
  selectRecordPage,
  selectRecords,
  selectTargets,
  upsertRecords,
  writeInOneStatement,
  type FastItem,
  type RowToWrite,
  type StoredRecord,
  type TargetState,
  type WriteContext,
  type WriteTarget,
} from './records.js';
import { activeSchema, activeSchemaVersion, compileSchema, ValidatorCache, validationIssues, type NamespaceSchema } from './schemas.js';
import { sweepExpired } from './ttl.js';
import { namespaceUsage, selectWriteState, totalUsage, type NamespaceUsage, type Usage, type WriteState } from './usage.js';
import { sql } from 'kysely';

export interface StorageSettings {
  limits: Limits;
  quotaDefaults: QuotaSettings;
  /** How long this process may reuse an install lookup (ms); 0 = always ask the database. */
  installCacheMs?: number;
}

export type Outcome = 'ok' | 'error' | string;

/** Observers for metrics; the core stays ignorant of Prometheus. */
export interface StorageHooks {
  onOperation?(operation: string, outcome: string, seconds: number): void;
  onBytesWritten?(bytes: number): void;
  onQuotaRejected?(quota: QuotaName): void;
  onValidationFailed?(): void;
  onTtlDeleted?(count: number): void;
  /** A write pushed an install past `threshold` (0.8 or 0.95) of a quota. */
  onQuotaPressure?(quota: QuotaName, threshold: number): void;
}

export interface PutInput {
  installId?: string | null;
  namespace: string;
  key: string;
  value?: unknown;
  metadata?: unknown;
  ttlSeconds?: number | null;
  ifRevision?: number | null;
  schemaVersion?: number | null;
}

export interface BulkPutItem {
  key: string;
  value?: unknown;
  metadata?: unknown;
  ttlSeconds?: number | null;
  ifRevision?: number | null;
}

export interface BulkPutInput {
  installId?: string | null;
  namespace: string;
  items: readonly BulkPutItem[];
}

export interface DeleteInput {
  installId?: string | null;
  namespace: string;
  key: string;
  ifRevision?: number | null;
}

export interface Page<T> {
  items: T[];
  hasNextPage: boolean;
  endCursor: string | null;
  cursorOf(item: T): string;
}

/** A write item after names, formats and sizes were checked; `index` is its place in a bulk write. */
interface PreparedItem extends FastItem {
  index: number;
}

const PRESSURE_THRESHOLDS = [0.8, 0.95];

/** A cached install used after this share of installCacheMs is re-read in the background. */
const REFRESH_AFTER = 0.75;

function checkIfRevision(ifRevision: unknown): number | null {
  if (ifRevision === null || ifRevision === undefined) return null;
  if (typeof ifRevision !== 'number' || !Number.isSafeInteger(ifRevision) || ifRevision < 0) {
    throw new BadInputError('ifRevision must be a non-negative integer');
  }
  return ifRevision;
}

function checkTtlType(ttlSeconds: unknown): number | null {
  if (ttlSeconds === null || ttlSeconds === undefined) return null;
  if (typeof ttlSeconds !== 'number') throw new BadInputError('ttlSeconds must be an integer');
  return ttlSeconds;
}

export class Storage {
  readonly validators = new ValidatorCache();
  /** Active schema version per install/namespace as last seen here; the one-statement write proves it. */
  private readonly activeSchemas = new Map<string, number | null>();
  private readonly installCache = new Map<string, { install: Install | undefined; fetchedAt: number; refreshing: boolean }>();

  constructor(
    readonly db: Db,
    readonly settings: StorageSettings,
    readonly hooks: StorageHooks = {},
  ) {}

  private async observe<T>(operation: string, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await run();
      this.hooks.onOperation?.(operation, 'ok', (performance.now() - started) / 1000);
      return result;
    } catch (error) {
      const mapped = mapDatabaseError(error);
      // A bounded label: the storage error code, or "error" (never a raw SQLSTATE or Node error code).
      const outcome = mapped instanceof StorageError ? mapped.code.toLowerCase() : 'error';
      this.hooks.onOperation?.(operation, outcome, (performance.now() - started) / 1000);
      if (mapped instanceof QuotaExceededError) this.hooks.onQuotaRejected?.(mapped.quota);
      if (mapped instanceof ValidationFailedError) this.hooks.onValidationFailed?.();
      throw mapped;
    }
  }

  // ---------------------------------------------------------------- installs and access

  /**
   * Install lookups: memoised per request (caller.installs) and cached in this process for
   * `installCacheMs` (0 turns it off). An upsert through this instance refreshes its entry at
   * once; other instances see a change within installCacheMs.
   */
  async loadInstall(caller: Caller | null, id: string): Promise<Install | undefined> {
    const memo = caller?.installs;
    const hit = memo?.get(id);
    if (hit) return hit;
    const pending = this.fetchInstall(id);
    memo?.set(id, pending);
    return pending;
  }

  private async fetchInstall(id: string): Promise<Install | undefined> {
    const ttl = this.settings.installCacheMs ?? 0;
    if (ttl <= 0) return (await findInstalls(this.db, [id])).get(id);
    const now = performance.now();
    const cached = this.installCache.get(id);
    if (cached && now - cached.fetchedAt < ttl) {
      // A hot entry is re-read in the background before it expires, so its requests never wait
      // for the lookup; an entry is never served older than installCacheMs.
      if (!cached.refreshing && now - cached.fetchedAt > ttl * REFRESH_AFTER) {
        cached.refreshing = true;
        this.readInstallIntoCache(id).catch(() => {
          // The entry expires as usual; the next request reads synchronously and sees the error.
        });
      }
      return cached.install;
    }
    return this.readInstallIntoCache(id);
  }

  private async readInstallIntoCache(id: string): Promise<Install | undefined> {
    const fetchedAt = performance.now();
    const install = (await findInstalls(this.db, [id])).get(id);
    const current = this.installCache.get(id);
    // An upsert through this instance (which drops the entry) or a newer read wins over this one.
    if (current && current.fetchedAt > fetchedAt) return install;
    if (this.installCache.size >= 10_000) this.installCache.clear();
    this.installCache.set(id, { install, fetchedAt, refreshing: false });
    return install;
  }

  /** The install a call acts on, checked for `need` (and the namespace, when given). */
  async resolveInstall(caller: Caller, installId: string | null | undefined, need: Need, namespace?: string): Promise<InstallScope> {
    const p = caller.principal;
    const id = p.kind === 'admin' ? normalizeId(installId) : p.installId;
    const install = id ? await this.loadInstall(caller, id) : undefined;
    authorize(p, installId, install, need, namespace);
    return this.scopeOf(install!);
  }

  scopeOf(install: Install): InstallScope {
    return {
      tenantId: install.tenantId,
      installId: install.id,
      install,
      quota: effectiveQuota(install, this.settings.quotaDefaults),
    };
  }

  /** Re-checks a scope already resolved (nested GraphQL fields) for a namespace-level need. */
  checkAccess(caller: Caller, scope: InstallScope, need: Need, namespace?: string): void {
    authorize(caller.principal, scope.installId, scope.install, need, namespace);
  }

  upsertInstall(caller: Caller, input: UpsertInstallInput): Promise<Install> {
    return this.observe('upsertInstall', async () => {
      const p = caller.principal;
      if (p.kind !== 'admin') throw new ForbiddenError('only admins may register installs');
      const id = normalizeId(input.id);
      if (!id) throw new BadInputError('install id must be a UUID');
      if (input.tenantId !== null && input.tenantId !== undefined && normalizeId(input.tenantId) !== p.tenantId) {
        throw new ForbiddenError('admins may only register installs of their own tenant');
      }
      checkUpsertInput(input);
      const tenantId = p.tenantId;
      const install = await this.db.transaction().execute(async (trx) => {
        const existing = await trx.selectFrom('ext_storage_installs').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
        if (existing && existing.tenant_id !== tenantId) throw new ForbiddenError('this install belongs to another tenant');
        const namespaces = input.namespaces === undefined ? (existing?.namespaces ?? null) : input.namespaces;
        const quota = mergeQuota(existing?.quota ?? {}, input.quota);
        const values = {
          extension_id: input.extensionId,
          enabled: input.enabled,
          can_read: input.canRead,
          can_write: input.canWrite,
          namespaces: namespaces === null ? null : JSON.stringify([...new Set(namespaces)]),
          quota: JSON.stringify(quota),
        };
        const row = existing
          ? await trx
              .updateTable('ext_storage_installs')
              .set({ ...values, updated_at: sql`now()` })
              .where('id', '=', id)
              .returningAll()
              .executeTakeFirstOrThrow()
          : await trx
              .insertInto('ext_storage_installs')
              .values({ id, tenant_id: tenantId, ...values })
              .returningAll()
              .executeTakeFirstOrThrow();
        await trx
          .insertInto('ext_storage_install_locks')
          .values({ tenant_id: tenantId, install_id: id })
          .onConflict((oc) => oc.columns(['tenant_id', 'install_id']).doNothing())
          .execute();
        await appendAuditEvent(trx, { tenantId, installId: id }, { operation: 'upsertInstall', namespace: null, actor: p.actor, requestId: caller.requestId });
        return toInstall(row as Parameters<typeof toInstall>[0]);
      });
      caller.installs?.set(id, Promise.resolve(install));
      // Stamped now, so a lookup that started before this commit cannot put the old row back.
      if ((this.settings.installCacheMs ?? 0) > 0) this.installCache.set(id, { install, fetchedAt: performance.now(), refreshing: false });
      return install;
    });
  }

  listInstalls(caller: Caller, first: number | null | undefined, after: string | null | undefined): Promise<Page<Install>> {
    return this.observe('listInstalls', async () => {
      const p = caller.principal;
      if (p.kind !== 'admin') throw new ForbiddenError('only admins may list installs');
      const n = checkPageSize(first, this.settings.limits);
      const afterId = after ? decodeCursor<string>(after, 'i', p.tenantId, 'string') : null;
      let q = this.db.selectFrom('ext_storage_installs').selectAll().where('tenant_id', '=', p.tenantId);
      if (afterId) q = q.where('id', '>', afterId);
      const rows = await q.orderBy('id').limit(n + 1).execute();
      const items = rows.slice(0, n).map((r) => toInstall(r as Parameters<typeof toInstall>[0]));
      for (const i of items) caller.installs?.set(i.id, Promise.resolve(i));
      return page(items, rows.length > n, (i) => encodeCursor('i', p.tenantId, i.id));
    });
  }

  // ---------------------------------------------------------------- reads

  /** Validates a read of keys in a namespace (after access was granted). */
  checkReadKeys(namespace: string, keys: readonly string[]): void {
    checkNamespace(namespace);
    checkKeysPerRead(keys, this.settings.limits);
  }

  /** Live records by key, in one statement: the DataLoader batch function. */
  readRecords(scope: InstallScope, namespace: string, keys: readonly string[]): Promise<Map<string, StoredRecord>> {
    return this.observe('getRecords', () => selectRecords(this.db, scope, namespace, keys));
  }

  async getRecord(caller: Caller, input: { installId?: string | null; namespace: string; key: string }): Promise<StoredRecord | null> {
    const scope = await this.resolveInstall(caller, input.installId, 'read', input.namespace);
    this.checkReadKeys(input.namespace, [input.key]);
    return (await this.readRecords(scope, input.namespace, [input.key])).get(input.key) ?? null;
  }

  listRecords(
    scope: InstallScope,
    namespace: string,
    opts: { prefix?: string | null; first?: number | null; after?: string | null },
  ): Promise<Page<StoredRecord>> {
    return this.observe('listRecords', async () => {
      checkNamespace(namespace);
      const first = checkPageSize(opts.first, this.settings.limits);
      if (opts.prefix !== null && opts.prefix !== undefined && opts.prefix !== '') checkKey(opts.prefix, this.settings.limits);
      const tag = `${scope.installId}/${namespace}`;
      const afterKey = opts.after ? decodeCursor<string>(opts.after, 'r', tag, 'string') : null;
      const { records, hasNextPage } = await selectRecordPage(this.db, scope, namespace, { prefix: opts.prefix, afterKey, first });
      return page(records, hasNextPage, (r) => encodeCursor('r', tag, r.key));
    });
  }

  namespaceUsage(scope: InstallScope, namespace?: string): Promise<NamespaceUsage[]> {
    return namespaceUsage(this.db, scope, namespace);
  }

  /**
   * The namespaces holding at least one live record that the caller may see: all of them for an
   * admin, those in the install's allow-list for extensions and the Runner (who need read).
   */
  async listNamespaces(caller: Caller, scope: InstallScope): Promise<NamespaceUsage[]> {
    this.checkAccess(caller, scope, 'read');
    const allowed = caller.principal.kind === 'admin' ? null : scope.install.namespaces;
    const all = await namespaceUsage(this.db, scope);
    return all.filter((n) => n.keyCount > 0 && (allowed === null || allowed.includes(n.namespace)));
  }

  async usage(scope: InstallScope): Promise<Usage> {
    return totalUsage(await namespaceUsage(this.db, scope));
  }

  activeSchema(scope: InstallScope, namespace: string): Promise<NamespaceSchema | null> {
    return activeSchema(this.db, { ...scope, namespace });
  }

  auditLog(caller: Caller, scope: InstallScope, first: number | null | undefined, after: string | null | undefined): Promise<Page<AuditEvent>> {
    return this.observe('auditLog', async () => {
      if (caller.principal.kind !== 'admin') throw new ForbiddenError('only admins may read the audit log');
      const n = checkPageSize(first, this.settings.limits);
      const beforeId = after ? decodeCursor<number>(after, 'a', scope.installId, 'number') : null;
      const { events, hasNextPage } = await selectAuditPage(this.db, scope, { first: n, beforeId });
      return page(events, hasNextPage, (e) => encodeCursor('a', scope.installId, e.id));
    });
  }

  // ---------------------------------------------------------------- writes

  putRecord(caller: Caller, input: PutInput): Promise<StoredRecord> {
    return this.observe('putRecord', async () => {
      const scope = await this.resolveInstall(caller, input.installId, 'write', input.namespace);
      checkNamespace(input.namespace);
      const ifRevision = checkIfRevision(input.ifRevision);
      const ttl = checkTtlType(input.ttlSeconds);
      if (input.schemaVersion !== null && input.schemaVersion !== undefined && (!Number.isSafeInteger(input.schemaVersion) || input.schemaVersion < 1)) {
        throw new ValidationFailedError(`unknown schema version ${String(input.schemaVersion)}`, [], null);
      }
      checkKey(input.key, this.settings.limits);
      checkValueFormat(input.value, input.metadata);
      const sized = checkValueSizes(input.value, input.metadata, ttl, this.settings.limits, scope.quota);
      const item: PreparedItem = { index: 0, key: input.key, ...sized, ttlSeconds: ttl, ifRevision };
      const [record] = await this.writeItems(caller, scope, input.namespace, [item], {
        operation: 'putRecord',
        bulk: false,
        pinnedSchemaVersion: input.schemaVersion ?? null,
      });
      return record!;
    });
  }

  bulkPutRecords(caller: Caller, input: BulkPutInput): Promise<StoredRecord[]> {
    return this.observe('bulkPutRecords', async () => {
      const scope = await this.resolveInstall(caller, input.installId, 'write', input.namespace);
      const limits = this.settings.limits;
      const items = input.items;
      if (!Array.isArray(items) || items.length === 0 || items.length > limits.maxBulkItems) {
        throw new LimitExceededError('bulkItems', `a bulk write takes 1 to ${limits.maxBulkItems} items`, limits.maxBulkItems, Array.isArray(items) ? items.length : null);
      }
      const seen = new Set<string>();
      items.forEach((item, index) => {
        if (seen.has(item.key)) {
          throw new LimitExceededError('bulkDuplicateKey', `key "${String(item.key).slice(0, 300)}" appears more than once`, null, null, index);
        }
        seen.add(item.key);
      });
      checkNamespace(input.namespace);
      const atItem = <T>(index: number, check: () => T): T => {
        try {
          return check();
        } catch (error) {
          throw error instanceof LimitExceededError ? error.atItem(index) : error instanceof BadInputError ? new BadInputError(`item ${index}: ${error.message}`) : error;
        }
      };
      const revisions = items.map((item, index) =>
        atItem(index, () => {
          const ifRevision = checkIfRevision(item.ifRevision);
          checkKey(item.key, limits);
          checkValueFormat(item.value, item.metadata);
          return ifRevision;
        }),
      );
      const prepared: PreparedItem[] = items.map((item, index) =>
        atItem(index, () => {
          const ttl = checkTtlType(item.ttlSeconds);
          const sized = checkValueSizes(item.value, item.metadata, ttl, limits, scope.quota);
          return { index, key: item.key, ...sized, ttlSeconds: ttl, ifRevision: revisions[index]! };
        }),
      );
      const total = prepared.reduce((sum, i) => sum + i.valueBytes + i.metadataBytes, 0);
      if (total > limits.maxBulkBytes) {
        throw new LimitExceededError('bulkBytes', `the batch is ${total} bytes; the limit is ${limits.maxBulkBytes}`, limits.maxBulkBytes, total);
      }
      return this.writeItems(caller, scope, input.namespace, prepared, { operation: 'bulkPutRecords', bulk: true, pinnedSchemaVersion: null });
    });
  }

  /**
   * The write path. The common case is one statement with no transaction (writeInOneStatement),
   * which re-checks every decision on the latest rows, so concurrent writers of one install never
   * hold its lock across a round trip. Anything else (a revision or quota refusal, a schema
   * failure, a new namespace, expired records to sweep, a lost race) is decided in the locked
   * transaction, which is exact by construction and reports the first error in contract order.
   */
  private async writeItems(
    caller: Caller,
    scope: InstallScope,
    namespace: string,
    items: PreparedItem[],
    opts: WriteOptions,
  ): Promise<StoredRecord[]> {
    const fast = await this.writeFast(caller, scope, namespace, items, opts);
    if (fast) return fast;
    const keys = items.map((i) => i.key);
    // Metrics hooks fire after the commit: a refused write rolls its sweep back.
    let swept = 0;
    const written = await this.db.transaction().execute(async (trx) => {
      await lockInstall(trx, scope);
      let state = await selectWriteState(trx, scope, namespace, keys);
      if (state.namespaces.some((n) => n.expiredKeys > 0)) {
        const removed = await sweepExpired(trx, scope, { limit: this.settings.limits.sweepBatch, namespace, keys, requestId: caller.requestId });
        if (removed > 0) {
          swept = removed;
          state = await selectWriteState(trx, scope, namespace, keys);
        }
      }
      this.rememberActiveSchema(scope.installId, namespace, state.activeSchemaVersion);
      const plan = await this.planWrite(trx, caller, scope, namespace, items, opts, state);
      return { plan, records: await upsertRecords(trx, plan.context, plan.rows) };
    });
    if (swept > 0) this.hooks.onTtlDeleted?.(swept);
    const { plan } = written;
    const before = totalUsage(plan.stats);
    const nsKeys = plan.stats.find((n) => n.namespace === namespace)?.keyCount ?? 0;
    this.notePressure(scope.quota, {
      namespaces: [before.namespaces, before.namespaces + (nsKeys === 0 && plan.context.keysDelta > 0 ? 1 : 0)],
      keysPerNamespace: [nsKeys, nsKeys + plan.context.keysDelta],
      bytes: [before.bytes, before.bytes + plan.context.bytesDelta],
    });
    this.hooks.onBytesWritten?.(plan.rows.reduce((sum, r) => sum + r.valueBytes + r.metadataBytes, 0));
    return written.records;
  }

  /**
   * The one-statement write, or null when it does not apply or lost a race (nothing was written).
   * Values are validated against this process's idea of the active schema version; the statement
   * proves that version is still active. A value that fails validation goes to the locked path,
   * which reports it against the version it reads itself.
   */
  private async writeFast(caller: Caller, scope: InstallScope, namespace: string, items: PreparedItem[], opts: WriteOptions): Promise<StoredRecord[] | null> {
    const schemaScope = { ...scope, namespace };
    const pinned = opts.pinnedSchemaVersion;
    const active = pinned === null ? await this.cachedActiveSchema(schemaScope) : undefined;
    const version = pinned ?? active ?? null;
    if (version !== null) {
      const validate = await this.validators.get(this.db, schemaScope, version);
      if (!validate || !items.every((item) => validate(item.value))) return null;
    }
    let result;
    try {
      result = await writeInOneStatement(
        this.db,
        {
          ...writeTarget(caller, scope, namespace, opts, version),
          activeSchemaVersion: active,
          maxBytes: scope.quota.maxBytes,
          maxKeysPerNamespace: scope.quota.maxKeysPerNamespace,
        },
        items,
      );
    } catch (error) {
      if (isLostRace(error)) return null;
      throw error;
    }
    if (!result) return null;
    const { installBytes, namespaceKeys, bytesDelta, keysDelta } = result;
    this.notePressure(scope.quota, {
      keysPerNamespace: [namespaceKeys - keysDelta, namespaceKeys],
      bytes: [installBytes - bytesDelta, installBytes],
    });
    this.hooks.onBytesWritten?.(items.reduce((sum, i) => sum + i.valueBytes + i.metadataBytes, 0));
    return result.records;
  }

  /** The namespace's active schema version as this process last saw it (read once when unknown). */
  private async cachedActiveSchema(scope: InstallScope & { namespace: string }): Promise<number | null> {
    const key = `${scope.installId}/${scope.namespace}`;
    const hit = this.activeSchemas.get(key);
    if (hit !== undefined) return hit;
    const version = await activeSchemaVersion(this.db, scope);
    this.rememberActiveSchema(scope.installId, scope.namespace, version);
    return version;
  }

  private rememberActiveSchema(installId: string, namespace: string, version: number | null): void {
    if (this.activeSchemas.size >= 10_000) this.activeSchemas.clear();
    this.activeSchemas.set(`${installId}/${namespace}`, version);
  }

  /** Revisions, schema and quotas decided on one consistent state; throws the first refusal. */
  private async planWrite(
    db: Db,
    caller: Caller,
    scope: InstallScope,
    namespace: string,
    items: PreparedItem[],
    opts: WriteOptions,
    state: WriteState,
  ): Promise<WritePlan> {
    const { targets, namespaces: stats } = state;
    const live = (key: string): TargetState | undefined => {
      const t = targets.get(key);
      return t && !t.expired ? t : undefined;
    };

    // Revisions.
    const rows: RowToWrite[] = items.map((item) => {
      const current = live(item.key);
      if (item.ifRevision !== null) {
        const ok = item.ifRevision === 0 ? current === undefined : current?.revision === item.ifRevision;
        if (!ok) throw new RevisionMismatchError(namespace, item.key, item.ifRevision, current?.revision ?? null);
      }
      const storedBytes = item.valueBytes + item.metadataBytes;
      return {
        key: item.key,
        value: item.value,
        metadata: item.metadata,
        valueBytes: item.valueBytes,
        metadataBytes: item.metadataBytes,
        revision: (current?.revision ?? 0) + 1,
        ttlSeconds: item.ttlSeconds,
        bytesDelta: storedBytes - (current?.bytes ?? 0),
      };
    });

    // Schema.
    const schemaScope = { ...scope, namespace };
    const version = opts.pinnedSchemaVersion ?? state.activeSchemaVersion;
    if (version !== null) {
      const validate = await this.validators.get(db, schemaScope, version);
      if (!validate) throw new ValidationFailedError(`unknown schema version ${version}`, [], version);
      const issues: ValidationIssue[] = [];
      for (const item of items) issues.push(...validationIssues(validate, item.value, opts.bulk ? `/${item.index}` : ''));
      if (issues.length > 0) {
        throw new ValidationFailedError(`value does not match schema version ${version}`, issues.slice(0, 100), version);
      }
    }

    // Quotas, against live usage (expired records never count, swept or not).
    const newKeys = items.map((item) => live(item.key) === undefined);
    const quotaError = checkQuotas(scope.quota, stats, namespace, newKeys, rows.map((r) => r.bytesDelta), opts.bulk);
    if (quotaError) throw quotaError;

    const keysDelta = newKeys.filter(Boolean).length;
    const bytesDelta = rows.reduce((sum, r) => sum + r.bytesDelta, 0);
    return {
      rows,
      stats,
      context: { ...writeTarget(caller, scope, namespace, opts, version), keysDelta, bytesDelta },
    };
  }

  /** Fires the quota-pressure hook for each quota a write pushed past 80 % or 95 % ([before, after] per quota). */
  private notePressure(quota: QuotaSettings, moves: Partial<Record<QuotaName, [number, number]>>): void {
    const hook = this.hooks.onQuotaPressure;
    if (!hook) return;
    const allowed: Record<QuotaName, number> = { namespaces: quota.maxNamespaces, keysPerNamespace: quota.maxKeysPerNamespace, bytes: quota.maxBytes };
    for (const [name, [was, now]] of Object.entries(moves) as Array<[QuotaName, [number, number]]>) {
      const max = allowed[name];
      for (const threshold of PRESSURE_THRESHOLDS) {
        if (max > 0 && was < threshold * max && now >= threshold * max) hook(name, threshold);
      }
    }
  }

  deleteRecord(caller: Caller, input: DeleteInput): Promise<{ namespace: string; key: string; deleted: boolean }> {
    return this.observe('deleteRecord', async () => {
      const scope = await this.resolveInstall(caller, input.installId, 'write', input.namespace);
      checkNamespace(input.namespace);
      const ifRevision = checkIfRevision(input.ifRevision);
      checkKey(input.key, this.settings.limits);
      const { namespace, key } = input;
      let swept = 0;
      const deleted = await this.db.transaction().execute(async (trx) => {
        await lockInstall(trx, scope);
        let target = (await selectTargets(trx, scope, namespace, [key])).get(key);
        if (target?.expired) {
          swept = await sweepExpired(trx, scope, { limit: this.settings.limits.sweepBatch, namespace, keys: [key], requestId: caller.requestId });
          target = undefined;
        }
        if (ifRevision !== null) {
          const ok = ifRevision === 0 ? target === undefined : target?.revision === ifRevision;
          if (!ok) throw new RevisionMismatchError(namespace, key, ifRevision, target?.revision ?? null);
        }
        if (!target) return false;
        await deleteRecordRow(trx, { ...scope, namespace, key, bytes: target.bytes, actor: caller.principal.actor, requestId: caller.requestId });
        return true;
      });
      if (swept > 0) this.hooks.onTtlDeleted?.(swept);
      return { namespace, key, deleted };
    });
  }

  setNamespaceSchema(caller: Caller, input: { installId: string; namespace: string; schema?: unknown }): Promise<NamespaceSchema> {
    return this.observe('setNamespaceSchema', async () => {
      if (caller.principal.kind !== 'admin') throw new ForbiddenError('only admins may set schemas');
      const scope = await this.resolveInstall(caller, input.installId, 'write');
      checkNamespace(input.namespace);
      const validate = compileSchema(input.schema);
      const schemaScope = { ...scope, namespace: input.namespace };
      const stored = await this.db.transaction().execute(async (trx) => {
        await lockInstall(trx, scope);
        const version = ((await activeSchemaVersion(trx, schemaScope)) ?? 0) + 1;
        const row = await trx
          .insertInto('ext_storage_schemas')
          .values({
            tenant_id: scope.tenantId,
            install_id: scope.installId,
            namespace: input.namespace,
            version,
            schema: JSON.stringify(input.schema),
            created_at: sql`now()`,
          })
          .returning(['version', 'schema', 'created_at'])
          .executeTakeFirstOrThrow();
        await appendAuditEvent(trx, scope, { operation: 'setNamespaceSchema', namespace: input.namespace, actor: caller.principal.actor, requestId: caller.requestId });
        return { version: row.version, schema: row.schema, createdAt: row.created_at };
      });
      this.validators.remember(schemaScope, stored.version, validate);
      this.rememberActiveSchema(scope.installId, input.namespace, stored.version);
      return stored;
    });
  }
}

interface WriteOptions {
  operation: 'putRecord' | 'bulkPutRecords';
  bulk: boolean;
  pinnedSchemaVersion: number | null;
}

interface WritePlan {
  rows: RowToWrite[];
  stats: NamespaceUsage[];
  context: WriteContext;
}

function writeTarget(caller: Caller, scope: InstallScope, namespace: string, opts: WriteOptions, schemaVersion: number | null): WriteTarget {
  return {
    tenantId: scope.tenantId,
    installId: scope.installId,
    namespace,
    operation: opts.operation,
    actor: caller.principal.actor,
    requestId: caller.requestId,
    schemaVersion,
  };
}

function page<T>(items: T[], hasNextPage: boolean, cursorOf: (item: T) => string): Page<T> {
  const last = items[items.length - 1];
  return { items, hasNextPage, endCursor: last === undefined ? null : cursorOf(last), cursorOf };
}

/**
 * The first quota a write would break, checked against the batch's total (only growth is
 * refused), or null. `itemIndex` (bulk only) names the first item that does not fit.
 */
export function checkQuotas(
  quota: QuotaSettings,
  stats: readonly NamespaceUsage[],
  namespace: string,
  newKeys: readonly boolean[],
  bytesDeltas: readonly number[],
  bulk: boolean,
): QuotaExceededError | null {
  const usage = totalUsage(stats);
  const nsKeys = stats.find((n) => n.namespace === namespace)?.keyCount ?? 0;
  const keysDelta = newKeys.filter(Boolean).length;
  const bytesDelta = bytesDeltas.reduce((s, d) => s + d, 0);
  const index = (i: number) => (bulk ? i : null);
  if (nsKeys === 0 && keysDelta > 0 && usage.namespaces + 1 > quota.maxNamespaces) {
    return new QuotaExceededError('namespaces', quota.maxNamespaces, usage.namespaces, index(newKeys.indexOf(true)));
  }
  if (keysDelta > 0 && nsKeys + keysDelta > quota.maxKeysPerNamespace) {
    let running = nsKeys;
    const first = newKeys.findIndex((isNew) => isNew && ++running > quota.maxKeysPerNamespace);
    return new QuotaExceededError('keysPerNamespace', quota.maxKeysPerNamespace, nsKeys, index(first));
  }
  if (bytesDelta > 0 && usage.bytes + bytesDelta > quota.maxBytes) {
    let running = usage.bytes;
    const first = bytesDeltas.findIndex((d) => (running += d) > quota.maxBytes);
    return new QuotaExceededError('bytes', quota.maxBytes, usage.bytes, index(first));
  }
  return null;
}
