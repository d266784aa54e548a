/**
 * The plan-and-apply stages of every write. The schema stage runs here (JSON Schema validation
 * needs ajv); revisions, quotas, TTL, the sweep, counters and audit are decided and applied by
 * one call of ext_storage_write_v1 (migrations/005_write_function.ts) under the install's lock,
 * against one instant. On Citus that call runs whole on the worker holding the tenant. Concurrent
 * writes of one install share a call and a commit (src/storage/write-combiner.ts).
 */
import type { QuotaSettings } from '../config.js';
import type { Db } from '../db/database.js';
import {
  CommitConflictError,
  LimitExceededError,
  QuotaExceededError,
  RevisionMismatchError,
  ValidationFailedError,
  type QuotaName,
  type ValidationIssue,
} from './errors.js';
import type { InstallScope } from './installs.js';
import type { Caller } from './principal.js';
import type { WriteCommand } from './prepare.js';
import type { StoredRecord } from './records.js';
import type { ValidateFunction } from 'ajv';
import { ActiveSchemaCache, ValidatorCache, validationIssues } from './schemas.js';
import { WriteCombiner, type CombinerSettings } from './write-combiner.js';

/** Observers for metrics; the core stays ignorant of Prometheus. */
export interface StorageHooks {
  onOperation?(operation: string, outcome: string, seconds: number): void;
  onBytesWritten?(bytes: number): void;
  onQuotaRejected?(quota: QuotaName): void;
  onValidationFailed?(): void;
  onTtlDeleted?(count: number): void;
  /** A write pushed an install past `threshold` (0.8 or 0.95) of a quota. */
  onQuotaPressure?(quota: QuotaName, threshold: number): void;
  /** A write committed changes of this install (every door: called once, here, after a non-dry-run write). */
  onChanged?(tenantId: string, installId: string): void;
  /** A call of the write function by the per-install combiner: requests it carried, and how many went merged (migration 010). */
  onWriteCall?(requests: number, merged: number): void;
}

export type WriteResult = Array<StoredRecord | { deleted: boolean }>;

/** A write's answers, and the change-feed position just after it (null for a dry run). */
export interface Written {
  results: WriteResult;
  seq: number | null;
}

const PRESSURE_THRESHOLDS = [0.8, 0.95];
/** How often a write re-validates after the active schema changed under it, and retries a deadlock victim. */
const MAX_ATTEMPTS = 5;
const RETRYABLE_SQLSTATES = new Set(['40P01', '40001']);

/** What ext_storage_write_v1 answers for one op (migration 008: increments come back with what they stored). */
interface OpAnswer {
  revision?: number;
  expiresAt?: string | null;
  createdAt?: string;
  updatedAt?: string;
  deleted?: boolean;
  value?: unknown;
  metadata?: Record<string, unknown>;
  valueBytes?: number;
  metadataBytes?: number;
}

type Outcome =
  | { ok: true; probe?: undefined; results: OpAnswer[]; swept: number; seq?: number; usage: PressureUsage }
  | { ok?: undefined; probe: true; increments: Record<string, unknown> }
  | { ok?: undefined; probe?: undefined; error: 'conflict'; conflicts: Array<{ index: number; namespace: string; key: string; expected: number; current: number | null }> }
  | { ok?: undefined; probe?: undefined; error: 'revision'; index: number; namespace: string; key: string; expected: number; current: number | null }
  | { ok?: undefined; probe?: undefined; error: 'valueType'; index: number; key: string; reason: 'type' | 'bound'; type?: string }
  | { ok?: undefined; probe?: undefined; error: 'schema-changed'; namespace: string; active: number | null }
  | { ok?: undefined; probe?: undefined; error: 'schema' }
  | { ok?: undefined; probe?: undefined; error: 'moved' }
  | { ok?: undefined; probe?: undefined; error: 'quota'; quota: QuotaName; allowed: number; used: number; index: number | null };

type Refusal = Extract<Outcome, { error: string }>;

/** The function's answer to a restore request (import). */
export type RawOutcome = Outcome;

/** A put restored from an export, or a delete (import: replace), as the write function takes them. */
export type RestoreOp =
  | {
      kind: 'put';
      namespace: string;
      key: string;
      ifRevision: null;
      value: unknown;
      metadata: Record<string, unknown>;
      valueBytes: number;
      metadataBytes: number;
      ttlSeconds: null;
      schemaVersion: number | null;
      restore: { revision: number; createdAt: string; updatedAt: string; expiresAt: string | null };
    }
  | { kind: 'delete'; namespace: string; key: string; ifRevision: null };

interface PressureUsage {
  namespaces: [number, number];
  bytes: [number, number];
  keys: Record<string, [number, number]>;
}

/** The schema stage's verdict on the command's values. */
interface SchemaVerdict {
  /** Per op: the version stored on the record (null for deletes and schemaless namespaces). */
  versions: Array<number | null>;
  /** Versions the function must find still active (unpinned writes). */
  mustBeActive: Array<{ namespace: string; version: number | null }>;
  failure: ValidationFailedError | null;
  /** Increments into a namespace with a schema: their results are validated before they are applied. */
  increments: Array<{ index: number; version: number; validate: ValidateFunction }>;
}

/** The bound on a counter's magnitude (contract, "Counters"). */
export const COUNTER_BOUND = 1e15;

export class RecordWriter {
  readonly activeSchemas = new ActiveSchemaCache();
  private readonly combiner: WriteCombiner;

  constructor(
    private readonly db: Db,
    private readonly validators: ValidatorCache,
    private readonly settings: { sweepBatch: number; auditRetentionSeconds: number; changesRetentionSeconds: number; combine: CombinerSettings },
    private readonly hooks: StorageHooks,
  ) {
    this.combiner = new WriteCombiner(db, settings.combine, hooks.onWriteCall ? (requests, merged) => hooks.onWriteCall!(requests, merged) : undefined);
  }

  async write(caller: Caller, scope: InstallScope, cmd: WriteCommand): Promise<Written> {
    for (let attempt = 1; ; attempt++) {
      const verdict = await this.judgeSchema(scope, cmd);
      let outcome: Outcome;
      try {
        outcome = verdict.increments.length > 0 ? await this.callValidatingIncrements(caller, scope, cmd, verdict) : await this.call(caller, scope, cmd, verdict);
      } catch (error) {
        // Rule 18 of docs/citus.md: a deadlock or serialization victim changed nothing; try again.
        if (attempt < MAX_ATTEMPTS && RETRYABLE_SQLSTATES.has((error as { code?: string }).code ?? '')) continue;
        throw error;
      }
      if (outcome.ok) {
        const results = this.succeeded(scope, cmd, verdict, outcome);
        if (!cmd.dryRun) {
          // A wake-up for change-feed subscribers; it must never fail the write that committed.
          try {
            this.hooks.onChanged?.(scope.tenantId, scope.installId);
          } catch {
            // ignored: subscribers also poll
          }
        }
        return { results, seq: cmd.dryRun ? null : Number(outcome.seq) };
      }
      if (outcome.probe) throw new Error('the write function answered a probe that was not asked for');
      if (outcome.error === 'schema-changed' && attempt < MAX_ATTEMPTS) {
        this.activeSchemas.remember({ ...scope, namespace: outcome.namespace }, outcome.active);
        continue;
      }
      // An increment's result changed between its validation and its write (a record expired in between).
      if (outcome.error === 'moved' && attempt < MAX_ATTEMPTS) continue;
      throw this.refusal(cmd, verdict, outcome);
    }
  }

  /**
   * Validates the command's values: each put against its pinned version or its namespace's active
   * one as last seen here; increments into a namespace with a schema are noted, to be validated
   * once the database has computed their results.
   */
  private async judgeSchema(scope: InstallScope, cmd: WriteCommand): Promise<SchemaVerdict> {
    const versions: Array<number | null> = cmd.ops.map(() => null);
    const mustBeActive = new Map<string, number | null>();
    const increments: SchemaVerdict['increments'] = [];
    const issues: ValidationIssue[] = [];
    let failedVersion: number | null = null;
    for (const [index, op] of cmd.ops.entries()) {
      if (op.kind === 'delete') continue;
      const schemaScope = { ...scope, namespace: op.namespace };
      const pinned = op.kind === 'put' ? op.pinnedSchemaVersion : null;
      const version = pinned ?? (await this.activeSchemas.get(this.db, schemaScope));
      if (pinned === null) mustBeActive.set(op.namespace, version);
      versions[index] = version;
      if (version === null) continue;
      const validate = await this.validators.get(this.db, schemaScope, version);
      if (!validate) {
        return { versions, mustBeActive: [], increments: [], failure: new ValidationFailedError(`unknown schema version ${version}`, [], version) };
      }
      if (op.kind === 'increment') {
        increments.push({ index, version, validate });
        continue;
      }
      const found = validationIssues(validate, op.value, cmd.indexed ? `/${index}` : '');
      if (found.length > 0 && failedVersion === null) failedVersion = version;
      issues.push(...found);
    }
    const failure = issues.length > 0 ? new ValidationFailedError(`value does not match schema version ${failedVersion}`, issues.slice(0, 100), failedVersion) : null;
    return { versions, mustBeActive: [...mustBeActive].map(([namespace, version]) => ({ namespace, version })), failure, increments };
  }

  private request(
    caller: Caller,
    scope: InstallScope,
    cmd: WriteCommand,
    verdict: SchemaVerdict,
    extra: { probe?: boolean; seen?: Record<string, unknown> } = {},
  ): string {
    return this.functionRequest({
      operation: cmd.operation,
      actor: caller.principal.actor,
      requestId: caller.requestId,
      quota: scope.quota,
      schemas: verdict.mustBeActive,
      invalid: verdict.failure !== null,
      checks: cmd.checks,
      dryRun: cmd.dryRun,
      probe: extra.probe === true,
      seen: extra.seen,
      ops: cmd.ops.map((op, index) => (op.kind === 'delete' ? op : { ...op, pinnedSchemaVersion: undefined, schemaVersion: verdict.versions[index] })),
    });
  }

  /** ext_storage_write_v1's request (its fields: migrations 005, 008 and 009), with this process's settings. */
  private functionRequest(r: {
    operation: string;
    actor: string;
    requestId: string | null;
    quota: Pick<QuotaSettings, 'maxNamespaces' | 'maxKeysPerNamespace' | 'maxBytes'>;
    ops: unknown[];
    sweep?: number;
    schemas?: SchemaVerdict['mustBeActive'];
    invalid?: boolean;
    checks?: WriteCommand['checks'];
    dryRun?: boolean;
    probe?: boolean;
    seen?: Record<string, unknown>;
  }): string {
    return JSON.stringify({
      operation: r.operation,
      actor: r.actor,
      requestId: r.requestId,
      sweep: r.sweep ?? this.settings.sweepBatch,
      auditRetentionSeconds: this.settings.auditRetentionSeconds,
      changesRetentionSeconds: this.settings.changesRetentionSeconds,
      quota: { namespaces: r.quota.maxNamespaces, keys: r.quota.maxKeysPerNamespace, bytes: r.quota.maxBytes },
      schemas: r.schemas ?? [],
      invalid: r.invalid ?? false,
      checks: r.checks ?? [],
      dryRun: r.dryRun ?? false,
      probe: r.probe ?? false,
      seen: r.seen,
      bound: COUNTER_BOUND,
      ops: r.ops,
    });
  }

  /**
   * Several calls of the write function for one install in one transaction (an import): `run`
   * gets `call` (one request of restoreRequest, answered as the function answers) and the
   * transaction itself. Throwing rolls everything back.
   */
  transaction<T>(scope: InstallScope, run: (call: (request: string) => Promise<RawOutcome>, trx: Db) => Promise<T>): Promise<T> {
    return this.combiner.transaction(scope.tenantId, scope.installId, (call, trx) => run(async (request) => (await call(request)) as RawOutcome, trx));
  }

  /**
   * A request of restored puts and deletes (import): operation `import`, no schema stage (the
   * importer validated each value against its own version), and the install's quotas unless
   * `quota` is false (a replace checks them against the file itself: its net effect).
   */
  restoreRequest(caller: Caller, scope: InstallScope, ops: RestoreOp[], opts: { quota: boolean }): string {
    const unbounded = Number.MAX_SAFE_INTEGER;
    return this.functionRequest({
      operation: 'import',
      actor: caller.principal.actor,
      requestId: caller.requestId,
      quota: opts.quota ? scope.quota : { maxNamespaces: unbounded, maxKeysPerNamespace: unbounded, maxBytes: unbounded },
      ops,
    });
  }

  /**
   * Removes up to `batch` of the install's expired records off the request path (npm run sweep):
   * the write function with no ops sweeps them, moves the counters and writes their ttlExpire
   * audit events and EXPIRE changes. Answers how many it removed.
   */
  async sweep(scope: { tenantId: string; installId: string }, batch: number): Promise<number> {
    const request = this.functionRequest({
      operation: 'sweep',
      actor: 'system',
      requestId: null,
      sweep: batch,
      quota: { maxNamespaces: 0, maxKeysPerNamespace: 0, maxBytes: 0 },
      ops: [],
    });
    const outcome = (await this.combiner.write(scope.tenantId, scope.installId, request)) as Outcome;
    if (!outcome.ok) throw new Error('the write function refused a sweep');
    const swept = Number(outcome.swept);
    if (swept > 0) {
      this.hooks.onTtlDeleted?.(swept);
      this.hooks.onChanged?.(scope.tenantId, scope.installId);
    }
    return swept;
  }

  private async call(caller: Caller, scope: InstallScope, cmd: WriteCommand, verdict: SchemaVerdict): Promise<Outcome> {
    return (await this.combiner.write(scope.tenantId, scope.installId, this.request(caller, scope, cmd, verdict), caller.whileQueued)) as Outcome;
  }

  /**
   * Increments into a namespace with a schema: the result is known only under the install's lock,
   * so one transaction asks the function for the results first (a probe: every stage before the
   * schema, nothing applied), validates them here, then runs the write with the lock still held.
   */
  private async callValidatingIncrements(caller: Caller, scope: InstallScope, cmd: WriteCommand, verdict: SchemaVerdict): Promise<Outcome> {
    return this.combiner.transaction(scope.tenantId, scope.installId, async (call) => {
      const probe = (await call(this.request(caller, scope, cmd, verdict, { probe: true }))) as Outcome;
      if (!probe.probe) return probe;
      const computed = probe.increments;
      const issues: ValidationIssue[] = verdict.failure ? [...verdict.failure.issues] : [];
      let failedVersion = verdict.failure?.schemaVersion ?? null;
      for (const { index, version, validate } of verdict.increments) {
        const found = validationIssues(validate, computed[String(index)], cmd.indexed ? `/${index}` : '');
        if (found.length > 0 && failedVersion === null) failedVersion = version;
        issues.push(...found);
      }
      if (issues.length > 0 && !verdict.failure) {
        verdict.failure = new ValidationFailedError(`value does not match schema version ${failedVersion}`, issues.slice(0, 100), failedVersion);
      } else if (verdict.failure && issues.length > verdict.failure.issues.length) {
        verdict.failure = new ValidationFailedError(verdict.failure.message, issues.slice(0, 100), verdict.failure.schemaVersion);
      }
      return (await call(this.request(caller, scope, cmd, verdict, { seen: computed }))) as Outcome;
    });
  }

  private refusal(cmd: WriteCommand, verdict: SchemaVerdict, outcome: Refusal): Error {
    const itemIndex = (index: number) => (cmd.indexed ? Number(index) : null);
    switch (outcome.error) {
      case 'conflict':
        return new CommitConflictError(
          outcome.conflicts.map((c) => ({
            index: Number(c.index),
            namespace: c.namespace,
            key: c.key,
            expectedRevision: Number(c.expected),
            currentRevision: c.current === null ? null : Number(c.current),
          })),
        );
      case 'revision':
        return new RevisionMismatchError(outcome.namespace, outcome.key, Number(outcome.expected), outcome.current);
      case 'valueType':
        return outcome.reason === 'bound'
          ? new LimitExceededError('valueType', `the counter "${outcome.key}" would pass ±${COUNTER_BOUND}`, COUNTER_BOUND, null, itemIndex(outcome.index))
          : new LimitExceededError('valueType', `record "${outcome.key}" holds ${outcome.type === 'object' || outcome.type === 'array' ? 'an' : 'a'} ${outcome.type ?? 'non-number'} value, not a number`, null, null, itemIndex(outcome.index));
      case 'quota':
        // A commit's quotas concern it as a whole (contract, "Transactions: commit"): no item index.
        return new QuotaExceededError(outcome.quota, Number(outcome.allowed), Number(outcome.used), cmd.operation === 'bulkPutRecords' ? outcome.index : null);
      case 'schema':
        return verdict.failure ?? new Error('the write function reported a schema failure that was not found');
      case 'schema-changed':
        return new Error('the active schema kept changing during a write');
      case 'moved':
        return new Error('an increment kept changing between its validation and its write');
    }
  }

  private succeeded(scope: InstallScope, cmd: WriteCommand, verdict: SchemaVerdict, outcome: Extract<Outcome, { ok: true }>): WriteResult {
    const results = cmd.ops.map((op, index): StoredRecord | { deleted: boolean } => {
      const r = outcome.results[index]!;
      if (op.kind === 'delete') return { deleted: r.deleted === true };
      const [value, metadata, storedBytes] =
        op.kind === 'put' ? [op.value, op.metadata, op.valueBytes + op.metadataBytes] : [r.value, r.metadata ?? {}, Number(r.valueBytes) + Number(r.metadataBytes)];
      return {
        installId: scope.installId,
        namespace: op.namespace,
        key: op.key,
        value,
        metadata,
        revision: Number(r.revision),
        schemaVersion: verdict.versions[index] ?? null,
        ttlExpiresAt: r.expiresAt ? new Date(r.expiresAt) : null,
        createdAt: new Date(r.createdAt!),
        updatedAt: new Date(r.updatedAt!),
        storedBytes,
      };
    });
    if (cmd.dryRun) return results;
    if (outcome.swept > 0) this.hooks.onTtlDeleted?.(outcome.swept);
    const u = outcome.usage;
    const moves: Array<[QuotaName, [number, number], number]> = [
      ['namespaces', u.namespaces, scope.quota.maxNamespaces],
      ['bytes', u.bytes, scope.quota.maxBytes],
      ...Object.values(u.keys).map((k): [QuotaName, [number, number], number] => ['keysPerNamespace', k, scope.quota.maxKeysPerNamespace]),
    ];
    for (const [quota, [before, after], max] of moves) notePressure(this.hooks, quota, Number(before), Number(after), max);
    const written = results.reduce((sum, r) => sum + ('storedBytes' in r ? r.storedBytes : 0), 0);
    if (written > 0) this.hooks.onBytesWritten?.(written);
    return results;
  }
}

/** Fires the quota-pressure hook when a write moved usage across 80 % or 95 % of a quota. */
function notePressure(hooks: StorageHooks, quota: QuotaName, before: number, after: number, max: number): void {
  if (!hooks.onQuotaPressure || max <= 0) return;
  for (const threshold of PRESSURE_THRESHOLDS) {
    if (before < threshold * max && after >= threshold * max) hooks.onQuotaPressure(quota, threshold);
  }
}
