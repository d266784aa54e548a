/**
 * The storage core's surface: every door (GraphQL, the Runner's REST protocol, the CLI) calls
 * these methods. Each method checks access, then hands over to the module that owns the rule:
 * install-directory.ts (installs), records.ts and usage.ts (reads), prepare.ts → write.ts
 * (every write, one way), schemas.ts (JSON Schemas), audit.ts (the audit log).
 */
import type { Limits, QuotaSettings } from '../config.js';
import type { Db } from '../db/database.js';
import { selectAuditPage, type AuditEvent } from './audit.js';
import { feedHead, scanChanges, type StoredChange } from './changes.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { BadInputError, CursorExpiredError, ForbiddenError, QuotaExceededError, StorageError, ValidationFailedError, mapDatabaseError } from './errors.js';
import { exportLines } from './export.js';
import { decodeGlobalId, type GlobalRef } from './global-id.js';
import { ImportRefusedError, importInstall, type ImportMode, type ImportOutcome } from './import.js';
import { installsWithExpiredRecords, type InstallRef } from './sweep.js';
import { InstallDirectory, page, type InstallCacheControl, type Page } from './install-directory.js';
import { authorize, type Install, type InstallScope, type Need, type UpsertInstallInput } from './installs.js';
import { checkKey, checkKeysPerRead, checkNamespace, checkPageSize } from './limits.js';
import { normalizeId, type Caller } from './principal.js';
import {
  prepareBulkPut,
  prepareCommit,
  prepareDelete,
  prepareIncrement,
  preparePut,
  type BulkPutInput,
  type CommitInput,
  type DeleteInput,
  type IncrementInput,
  type PutInput,
  type WriteCommand,
} from './prepare.js';
import { countLiveRecords, selectRecordPage, selectRecords, type RecordColumns, type StoredRecord } from './records.js';
import { activeSchema, compileSchema, storeSchemaVersion, ValidatorCache, type NamespaceSchema } from './schemas.js';
import { namespaceUsage, totalUsage, type NamespaceUsage, type Usage } from './usage.js';
import { RecordWriter, type StorageHooks, type WriteResult } from './write.js';

export type { BulkPutInput, BulkPutItem, CommitCheckInput, CommitInput, CommitOperationInput, DeleteInput, IncrementInput, PutInput } from './prepare.js';

/** What a commit answers (contract, "Transactions: commit"): one record per operation, null for a delete. */
export interface CommitOutcome {
  records: Array<StoredRecord | null>;
  /** False for a dry run: nothing was written. */
  committed: boolean;
  /** The change-feed position just after the commit; null for a dry run. */
  cursor: string | null;
}
export type { Page } from './install-directory.js';
export { ImportRefusedError, type ImportMode, type ImportOutcome };
export type { StorageHooks } from './write.js';

/** A change and its position as a cursor. */
export type FeedChange = StoredChange & { cursor: string };

export interface ChangePage {
  changes: FeedChange[];
  hasNextPage: boolean;
  /** Where to resume, even when a filtered page holds no change (never null). */
  endCursor: string;
}

/** A change-feed page's size bounds (contract: `first`/`limit` 1..1000, default 100); the doors price pages by them. */
export const CHANGES_PAGE = { default: 100, max: 1000 } as const;
const CHANGES_DEFAULT_PAGE = CHANGES_PAGE.default;
const CHANGES_MAX_PAGE = CHANGES_PAGE.max;

/** A change-feed position of an install (the same for the GraphQL and Runner doors). */
function changeCursor(scope: { installId: string }, seq: number): string {
  return encodeCursor('c', scope.installId, seq);
}

export interface StorageSettings {
  limits: Limits;
  quotaDefaults: QuotaSettings;
  /** How long this process may reuse an install lookup (ms); 0 = always ask the database. */
  installCacheMs?: number;
}

export class Storage {
  readonly validators = new ValidatorCache();
  /** Open change-feed followers per install (`tenant/install`) on this instance (src/storage/follow.ts). */
  readonly followers = new Map<string, number>();
  private readonly installs: InstallDirectory;
  private readonly writer: RecordWriter;

  constructor(
    readonly db: Db,
    readonly settings: StorageSettings,
    readonly hooks: StorageHooks = {},
  ) {
    this.installs = new InstallDirectory(db, settings);
    this.writer = new RecordWriter(db, this.validators, settings.limits, hooks);
  }

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

  /** This process's install cache, as install-change notifications steer it. */
  get installCache(): InstallCacheControl {
    return this.installs;
  }

  loadInstall(caller: Caller | null, id: string): Promise<Install | undefined> {
    return this.installs.load(caller, id);
  }

  /** The install a call acts on, checked for `need` (and the namespace, when given). */
  async resolveInstall(caller: Caller, installId: string | null | undefined, need: Need, namespace?: string): Promise<InstallScope> {
    const p = caller.principal;
    const id = p.kind === 'admin' ? normalizeId(installId) : p.installId;
    const install = id ? await this.installs.load(caller, id) : undefined;
    authorize(p, installId, install, need, namespace);
    return this.installs.scopeOf(install!);
  }

  scopeOf(install: Install): InstallScope {
    return this.installs.scopeOf(install);
  }

  /** Re-checks a scope already resolved (nested GraphQL fields) for a namespace-level need. */
  checkAccess(caller: Caller, scope: InstallScope, need: Need, namespace?: string): void {
    authorize(caller.principal, scope.installId, scope.install, need, namespace);
  }

  upsertInstall(caller: Caller, input: UpsertInstallInput): Promise<Install> {
    return this.observe('upsertInstall', () => this.installs.upsert(caller, input));
  }

  listInstalls(caller: Caller, first: number | null | undefined, after: string | null | undefined): Promise<Page<Install>> {
    return this.observe('listInstalls', () => this.installs.list(caller, first, after, this.settings.limits));
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

  /** A page of live records by key; `columns: 'keysOnly'` reads no value or metadata (the page's storedBytes are 0). */
  listRecords(
    scope: InstallScope,
    namespace: string,
    opts: { prefix?: string | null; first?: number | null; after?: string | null; columns?: RecordColumns },
  ): Promise<Page<StoredRecord>> {
    return this.observe('listRecords', async () => {
      this.checkListing(namespace, opts.prefix);
      const first = checkPageSize(opts.first, this.settings.limits);
      const tag = `${scope.installId}/${namespace}`;
      const afterKey = opts.after ? decodeCursor<string>(opts.after, 'r', tag, 'string') : null;
      const { records, hasNextPage } = await selectRecordPage(this.db, scope, namespace, { prefix: opts.prefix, afterKey, first, columns: opts.columns });
      return page(records, hasNextPage, (r) => encodeCursor('r', tag, r.key));
    });
  }

  /** Live records of a namespace whose key starts with `prefix` (all of them without one). */
  countRecords(scope: InstallScope, namespace: string, prefix: string | null | undefined): Promise<number> {
    return this.observe('countRecords', async () => {
      this.checkListing(namespace, prefix);
      return countLiveRecords(this.db, scope, namespace, prefix);
    });
  }

  private checkListing(namespace: string, prefix: string | null | undefined): void {
    checkNamespace(namespace);
    if (prefix !== null && prefix !== undefined && prefix !== '') checkKey(prefix, this.settings.limits, 'prefix');
  }

  /** What a global id names (contract, "Reads": global ids); a malformed id is BAD_USER_INPUT. */
  decodeGlobalId(id: string): GlobalRef {
    return decodeGlobalId(id, this.settings.limits);
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
    return all.filter((n) => allowed === null || allowed.includes(n.namespace));
  }

  /** Live usage of what the caller may read: the whole install for an admin, its allowed namespaces otherwise. */
  async usage(caller: Caller, scope: InstallScope): Promise<Usage> {
    return totalUsage(await this.listNamespaces(caller, scope));
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

  // ---------------------------------------------------------------- writes: door → prepare → write

  private async write(caller: Caller, installId: string | null | undefined, namespace: string, prepare: (scope: InstallScope) => WriteCommand): Promise<WriteResult> {
    const scope = await this.resolveInstall(caller, installId, 'write', namespace);
    return (await this.writer.write(caller, scope, prepare(scope))).results;
  }

  putRecord(caller: Caller, input: PutInput): Promise<StoredRecord> {
    return this.observe('putRecord', async () => {
      const [record] = await this.write(caller, input.installId, input.namespace, (scope) =>
        preparePut(input, { limits: this.settings.limits, quota: scope.quota }),
      );
      return record as StoredRecord;
    });
  }

  bulkPutRecords(caller: Caller, input: BulkPutInput): Promise<StoredRecord[]> {
    return this.observe('bulkPutRecords', async () => {
      const records = await this.write(caller, input.installId, input.namespace, (scope) =>
        prepareBulkPut(input, { limits: this.settings.limits, quota: scope.quota }),
      );
      return records as StoredRecord[];
    });
  }

  deleteRecord(caller: Caller, input: DeleteInput): Promise<{ namespace: string; key: string; deleted: boolean }> {
    return this.observe('deleteRecord', async () => {
      const [result] = await this.write(caller, input.installId, input.namespace, () => prepareDelete(input, this.settings.limits));
      return { namespace: input.namespace, key: input.key, deleted: (result as { deleted: boolean }).deleted };
    });
  }

  incrementRecord(caller: Caller, input: IncrementInput): Promise<StoredRecord> {
    return this.observe('incrementRecord', async () => {
      const [record] = await this.write(caller, input.installId, input.namespace, (scope) =>
        prepareIncrement(input, { limits: this.settings.limits, quota: scope.quota }),
      );
      return record as StoredRecord;
    });
  }

  /**
   * Checks and operations across namespaces of one install, all or nothing. Capability first:
   * write on every operation's namespace, read on every check's (a check reads).
   */
  commit(caller: Caller, input: CommitInput): Promise<CommitOutcome> {
    return this.observe('commit', async () => {
      const scope = await this.resolveInstall(caller, input.installId, 'write');
      const operations = Array.isArray(input.operations) ? input.operations : [];
      for (const op of operations) {
        const target = op?.put ?? op?.delete ?? op?.increment;
        if (target && typeof target.namespace === 'string') this.checkAccess(caller, scope, 'write', target.namespace);
      }
      for (const check of Array.isArray(input.checks) ? input.checks : []) {
        this.checkAccess(caller, scope, 'read', typeof check?.namespace === 'string' ? check.namespace : undefined);
      }
      const cmd = prepareCommit(input, { limits: this.settings.limits, quota: scope.quota });
      const { results, seq } = await this.writer.write(caller, scope, cmd);
      return {
        records: results.map((r) => ('deleted' in r ? null : r)),
        committed: !cmd.dryRun,
        cursor: seq === null ? null : changeCursor(scope, seq),
      };
    });
  }

  // ---------------------------------------------------------------- the change feed

  /** The feed's head now: `changes(after: it)` returns only later changes (snapshot, then follow). */
  async changesCursor(caller: Caller, scope: InstallScope): Promise<string> {
    this.checkAccess(caller, scope, 'read');
    return changeCursor(scope, (await feedHead(this.db, scope)).head);
  }

  /**
   * A page of the install's changes after `after` (omitted: the oldest retained), oldest first.
   * An extension sees only the namespaces it may access; a cursor before the retained changes is
   * CURSOR_EXPIRED, checked against the same snapshot as the page.
   */
  changes(caller: Caller, scope: InstallScope, opts: { namespace?: string | null; prefix?: string | null; after?: string | null; first?: number | null }): Promise<ChangePage> {
    return this.observe('changes', async () => {
      const namespace = opts.namespace ?? null;
      const prefix = opts.prefix ?? null;
      if (prefix !== null && namespace === null) throw new BadInputError('prefix needs namespace');
      this.checkAccess(caller, scope, 'read', namespace ?? undefined);
      if (namespace !== null) this.checkListing(namespace, prefix);
      const first = checkPageSize(opts.first ?? CHANGES_DEFAULT_PAGE, { maxPageSize: CHANGES_MAX_PAGE, defaultPageSize: CHANGES_DEFAULT_PAGE });
      const after = opts.after ? decodeCursor<number>(opts.after, 'c', scope.installId, 'number') : null;
      // Positions start at 0 (the head of an empty feed): a negative one was never given out.
      if (after !== null && after < 0) throw new BadInputError('malformed or foreign cursor');
      const allowed = caller.principal.kind === 'admin' ? null : scope.install.namespaces;
      // Omitted `after`: from the oldest retained change.
      const result = await scanChanges(this.db, scope, after, first, this.settings.limits.changesScanWindow, { namespace, prefix: prefix || null, namespaces: allowed });
      if (after !== null && after > result.head) throw new BadInputError('malformed or foreign cursor');
      if (after !== null && after < result.pruned) throw new CursorExpiredError();
      return {
        changes: result.changes.map((c) => ({ ...c, cursor: changeCursor(scope, c.seq) })),
        hasNextPage: result.hasNextPage,
        endCursor: changeCursor(scope, result.end),
      };
    });
  }

  // ---------------------------------------------------------------- export, import, sweep

  /**
   * The install's export (contract, "Export and import"), line by line from one snapshot. Access
   * is checked before the first line: an admin of the install's tenant only.
   */
  async exportInstall(caller: Caller, installId: string): Promise<AsyncGenerator<string, void, undefined>> {
    if (caller.principal.kind !== 'admin') throw new ForbiddenError('only admins may export an install');
    const scope = await this.resolveInstall(caller, installId, 'read');
    return exportLines(this.db, scope);
  }

  /**
   * Restores an export into the install, all or nothing (an admin of its tenant): refusals are
   * ImportRefusedError, naming the 1-based line.
   */
  importInstall(caller: Caller, installId: string, body: AsyncIterable<Uint8Array | string>, mode: ImportMode): Promise<ImportOutcome> {
    return this.observe('import', async () => {
      if (caller.principal.kind !== 'admin') throw new ForbiddenError('only admins may import into an install');
      const scope = await this.resolveInstall(caller, installId, 'write');
      const { restoredSchemas, ...outcome } = await importInstall({ writer: this.writer, limits: this.settings.limits }, caller, scope, body, mode);
      for (const s of restoredSchemas) {
        const schemaScope = { ...scope, namespace: s.namespace };
        this.validators.remember(schemaScope, s.version, s.validate);
        this.writer.activeSchemas.remember(schemaScope, s.version);
      }
      return outcome;
    });
  }

  /** Up to `limit` installs holding expired records (every tenant's: an operator's job, never a request's). */
  installsWithExpiredRecords(limit: number): Promise<InstallRef[]> {
    return installsWithExpiredRecords(this.db, limit);
  }

  /** Removes up to `batch` expired records of an install (counters, ttlExpire audit and EXPIRE changes move with them). */
  sweepInstall(install: InstallRef, batch: number): Promise<number> {
    return this.observe('sweep', () => this.writer.sweep(install, batch));
  }

  /**
   * Sweeps every install's expired records, `batch` at a time per install, until none is left
   * (or a pass removes nothing). Answers how many were removed.
   */
  async sweepExpired(batch: number, onProgress?: (removed: number, installs: number) => void): Promise<number> {
    let removed = 0;
    let installs = 0;
    for (;;) {
      const found = await this.installsWithExpiredRecords(100);
      if (found.length === 0) return removed;
      let pass = 0;
      for (const install of found) {
        installs++;
        for (;;) {
          const n = await this.sweepInstall(install, batch);
          pass += n;
          removed += n;
          onProgress?.(removed, installs);
          if (n < batch) break;
        }
      }
      if (pass === 0) return removed;
    }
  }

  setNamespaceSchema(caller: Caller, input: { installId: string; namespace: string; schema?: unknown }): Promise<NamespaceSchema> {
    return this.observe('setNamespaceSchema', async () => {
      if (caller.principal.kind !== 'admin') throw new ForbiddenError('only admins may set schemas');
      const scope = await this.resolveInstall(caller, input.installId, 'write');
      checkNamespace(input.namespace);
      const validate = compileSchema(input.schema);
      const schemaScope = { ...scope, namespace: input.namespace };
      const stored = await storeSchemaVersion(this.db, schemaScope, input.schema, { actor: caller.principal.actor, requestId: caller.requestId });
      this.validators.remember(schemaScope, stored.version, validate);
      this.writer.activeSchemas.remember(schemaScope, stored.version);
      return stored;
    });
  }
}
