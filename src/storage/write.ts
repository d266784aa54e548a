/**
 * The plan-and-apply stages of every write. The schema stage runs here (JSON Schema validation
 * needs ajv); revisions, quotas, TTL, the sweep, counters and audit are decided and applied by
 * one call of ext_storage_write_v1 (migrations/005_write_function.ts) under the install's lock,
 * against one instant. On Citus that call runs whole on the worker holding the tenant. Concurrent
 * writes of one install share a call and a commit (src/storage/write-combiner.ts).
 */
import type { Db } from '../db/database.js';
import { QuotaExceededError, RevisionMismatchError, ValidationFailedError, type QuotaName, type ValidationIssue } from './errors.js';
import type { InstallScope } from './installs.js';
import type { Caller } from './principal.js';
import type { WriteCommand } from './prepare.js';
import type { StoredRecord } from './records.js';
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
}

export type WriteResult = Array<StoredRecord | { deleted: boolean }>;

const PRESSURE_THRESHOLDS = [0.8, 0.95];
/** How often a write re-validates after the active schema changed under it, and retries a deadlock victim. */
const MAX_ATTEMPTS = 5;
const RETRYABLE_SQLSTATES = new Set(['40P01', '40001']);

type Outcome =
  | { ok: true; results: Array<{ revision?: number; expiresAt?: string | null; createdAt?: string; updatedAt?: string; deleted?: boolean }>; swept: number; usage: PressureUsage }
  | { ok?: undefined; error: 'revision'; index: number; namespace: string; key: string; expected: number; current: number | null }
  | { ok?: undefined; error: 'schema-changed'; namespace: string; active: number | null }
  | { ok?: undefined; error: 'schema' }
  | { ok?: undefined; error: 'quota'; quota: QuotaName; allowed: number; used: number; index: number | null };

interface PressureUsage {
  namespaces: [number, number];
  bytes: [number, number];
  keys: Record<string, [number, number]>;
}

/** The schema stage's verdict on the command's values. */
interface SchemaVerdict {
  /** Stored on the records. */
  version: number | null;
  /** Versions the function must find still active (unpinned writes). */
  mustBeActive: Array<{ namespace: string; version: number | null }>;
  failure: ValidationFailedError | null;
}

export class RecordWriter {
  readonly activeSchemas = new ActiveSchemaCache();
  private readonly combiner: WriteCombiner;

  constructor(
    private readonly db: Db,
    private readonly validators: ValidatorCache,
    private readonly settings: { sweepBatch: number; auditRetentionSeconds: number; combine: CombinerSettings },
    private readonly hooks: StorageHooks,
  ) {
    this.combiner = new WriteCombiner(db, settings.combine);
  }

  async write(caller: Caller, scope: InstallScope, cmd: WriteCommand): Promise<WriteResult> {
    for (let attempt = 1; ; attempt++) {
      const verdict = await this.judgeSchema(scope, cmd);
      let outcome: Outcome;
      try {
        outcome = await this.call(caller, scope, cmd, verdict);
      } catch (error) {
        // Rule 18 of docs/citus.md: a deadlock or serialization victim changed nothing; try again.
        if (attempt < MAX_ATTEMPTS && RETRYABLE_SQLSTATES.has((error as { code?: string }).code ?? '')) continue;
        throw error;
      }
      if (outcome.ok) return this.succeeded(scope, cmd, verdict, outcome);
      if (outcome.error === 'schema-changed' && attempt < MAX_ATTEMPTS) {
        this.activeSchemas.remember({ ...scope, namespace: outcome.namespace }, outcome.active);
        continue;
      }
      throw this.refusal(cmd, verdict, outcome);
    }
  }

  /** Validates the command's values against the pinned version, or the active one as last seen here. */
  private async judgeSchema(scope: InstallScope, cmd: WriteCommand): Promise<SchemaVerdict> {
    const puts = cmd.ops.filter((op) => op.kind === 'put');
    if (puts.length === 0) return { version: null, mustBeActive: [], failure: null };
    const schemaScope = { ...scope, namespace: cmd.namespace };
    const pinned = cmd.pinnedSchemaVersion;
    const version = pinned ?? (await this.activeSchemas.get(this.db, schemaScope));
    const mustBeActive = pinned === null ? [{ namespace: cmd.namespace, version }] : [];
    if (version === null) return { version, mustBeActive, failure: null };
    const validate = await this.validators.get(this.db, schemaScope, version);
    if (!validate) return { version, mustBeActive, failure: new ValidationFailedError(`unknown schema version ${version}`, [], version) };
    const issues: ValidationIssue[] = [];
    cmd.ops.forEach((op, index) => {
      if (op.kind === 'put') issues.push(...validationIssues(validate, op.value, cmd.indexed ? `/${index}` : ''));
    });
    const failure = issues.length > 0 ? new ValidationFailedError(`value does not match schema version ${version}`, issues.slice(0, 100), version) : null;
    return { version, mustBeActive, failure };
  }

  private async call(caller: Caller, scope: InstallScope, cmd: WriteCommand, verdict: SchemaVerdict): Promise<Outcome> {
    const request = {
      operation: cmd.operation,
      actor: caller.principal.actor,
      requestId: caller.requestId,
      sweep: this.settings.sweepBatch,
      auditRetentionSeconds: this.settings.auditRetentionSeconds,
      quota: { namespaces: scope.quota.maxNamespaces, keys: scope.quota.maxKeysPerNamespace, bytes: scope.quota.maxBytes },
      schemas: verdict.mustBeActive,
      invalid: verdict.failure !== null,
      ops: cmd.ops.map((op) => (op.kind === 'put' ? { ...op, schemaVersion: verdict.version } : op)),
    };
    return (await this.combiner.write(scope.tenantId, scope.installId, JSON.stringify(request))) as Outcome;
  }

  private refusal(cmd: WriteCommand, verdict: SchemaVerdict, outcome: Exclude<Outcome, { ok: true }>): Error {
    switch (outcome.error) {
      case 'revision':
        return new RevisionMismatchError(outcome.namespace, outcome.key, Number(outcome.expected), outcome.current);
      case 'quota':
        return new QuotaExceededError(outcome.quota, Number(outcome.allowed), Number(outcome.used), cmd.indexed ? outcome.index : null);
      case 'schema':
        return verdict.failure ?? new Error('the write function reported a schema failure that was not found');
      case 'schema-changed':
        return new Error('the active schema kept changing during a write');
    }
  }

  private succeeded(scope: InstallScope, cmd: WriteCommand, verdict: SchemaVerdict, outcome: Extract<Outcome, { ok: true }>): WriteResult {
    if (outcome.swept > 0) this.hooks.onTtlDeleted?.(outcome.swept);
    const u = outcome.usage;
    const moves: Array<[QuotaName, [number, number], number]> = [
      ['namespaces', u.namespaces, scope.quota.maxNamespaces],
      ['bytes', u.bytes, scope.quota.maxBytes],
      ...Object.values(u.keys).map((k): [QuotaName, [number, number], number] => ['keysPerNamespace', k, scope.quota.maxKeysPerNamespace]),
    ];
    for (const [quota, [before, after], max] of moves) notePressure(this.hooks, quota, Number(before), Number(after), max);
    let written = 0;
    const results = cmd.ops.map((op, index): StoredRecord | { deleted: boolean } => {
      const r = outcome.results[index]!;
      if (op.kind === 'delete') return { deleted: r.deleted === true };
      written += op.valueBytes + op.metadataBytes;
      return {
        installId: scope.installId,
        namespace: op.namespace,
        key: op.key,
        value: op.value,
        metadata: op.metadata,
        revision: Number(r.revision),
        schemaVersion: verdict.version,
        ttlExpiresAt: r.expiresAt ? new Date(r.expiresAt) : null,
        createdAt: new Date(r.createdAt!),
        updatedAt: new Date(r.updatedAt!),
        storedBytes: op.valueBytes + op.metadataBytes,
      };
    });
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
