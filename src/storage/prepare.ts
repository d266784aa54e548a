/**
 * The prepare stage of every write: the caller's input becomes checked operations, and the
 * contract's refusals that need no stored state are raised here, in the contract's order, once
 * for every door (names and formats, then sizes and TTL, then the batch's bytes). No database
 * access: revisions, schema and quotas are decided later against one locked state (write.ts).
 */
import type { Limits, QuotaSettings } from '../config.js';
import { BadInputError, LimitExceededError } from './errors.js';
import { checkKey, checkNamespace, checkValueFormat, checkValueSizes } from './limits.js';

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

export interface IncrementInput {
  installId?: string | null;
  namespace: string;
  key: string;
  by: number;
  ttlSeconds?: number | null;
}

export interface CommitCheckInput {
  namespace: string;
  key: string;
  revision: number;
}

export interface CommitOperationInput {
  put?: { namespace: string; key: string; value?: unknown; metadata?: unknown; ttlSeconds?: number | null; schemaVersion?: number | null } | null;
  delete?: { namespace: string; key: string } | null;
  increment?: { namespace: string; key: string; by: number; ttlSeconds?: number | null } | null;
}

export interface CommitInput {
  installId?: string | null;
  checks?: readonly CommitCheckInput[] | null;
  operations: readonly CommitOperationInput[];
  dryRun?: boolean | null;
}

export interface PutOp {
  kind: 'put';
  namespace: string;
  key: string;
  ifRevision: number | null;
  value: unknown;
  metadata: Record<string, unknown>;
  valueBytes: number;
  metadataBytes: number;
  ttlSeconds: number | null;
  /** The `schemaVersion` the caller pinned (any number: an unknown one is refused in the schema stage). */
  pinnedSchemaVersion: number | null;
}

export interface DeleteOp {
  kind: 'delete';
  namespace: string;
  key: string;
  ifRevision: number | null;
}

/** Adds `by` to a stored number; the database does the exact decimal arithmetic (contract, "Counters"). */
export interface IncrementOp {
  kind: 'increment';
  namespace: string;
  key: string;
  ifRevision: null;
  /** The shortest decimal text of the number sent (String(by)). */
  by: string;
  ttlSeconds: number | null;
}

export type WriteOp = PutOp | DeleteOp | IncrementOp;

/** A commit's check: 0 = no live record, n = live at revision n. */
export interface CheckOp {
  namespace: string;
  key: string;
  revision: number;
}

/** One write, checked: what write.ts decides and applies in one call. */
export interface WriteCommand {
  operation: 'putRecord' | 'bulkPutRecords' | 'deleteRecord' | 'commit' | 'incrementRecord';
  ops: WriteOp[];
  /** A commit's checks, decided against the state the operations apply to. */
  checks: CheckOp[];
  /** Errors name the item (bulk writes and commits). */
  indexed: boolean;
  /** Decide everything, apply nothing. */
  dryRun: boolean;
}

type Sizing = { limits: Limits; quota: QuotaSettings };

/** ifRevision: absent, or a non-negative safe integer (any size: a revision that does not exist is a mismatch). */
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

function checkSchemaVersionType(schemaVersion: unknown): number | null {
  if (schemaVersion === null || schemaVersion === undefined) return null;
  if (typeof schemaVersion !== 'number' || !Number.isFinite(schemaVersion)) throw new BadInputError('schemaVersion must be an integer');
  return schemaVersion;
}

/** Runs a check for item `index`, naming the item in its error when the write is indexed. */
function atItem<T>(indexed: boolean, index: number, check: () => T): T {
  if (!indexed) return check();
  try {
    return check();
  } catch (error) {
    if (error instanceof LimitExceededError) throw error.atItem(index);
    if (error instanceof BadInputError) throw new BadInputError(`item ${index}: ${error.message}`);
    throw error;
  }
}

/** Names and formats of every item, then sizes and TTL of every item: the contract's per-item stages. */
function preparePuts(namespace: string, items: readonly BulkPutItem[], indexed: boolean, { limits, quota }: Sizing): PutOp[] {
  const revisions = items.map((item, index) =>
    atItem(indexed, index, () => {
      const ifRevision = checkIfRevision(item.ifRevision);
      checkKey(item.key, limits);
      checkValueFormat(item.value, item.metadata);
      return ifRevision;
    }),
  );
  return items.map((item, index) =>
    atItem(indexed, index, () => {
      const ttlSeconds = checkTtlType(item.ttlSeconds);
      const sized = checkValueSizes(item.value, item.metadata, ttlSeconds, limits, quota);
      return { kind: 'put', namespace, key: item.key, ifRevision: revisions[index]!, ...sized, ttlSeconds, pinnedSchemaVersion: null };
    }),
  );
}

function command(operation: WriteCommand['operation'], ops: WriteOp[], indexed: boolean): WriteCommand {
  return { operation, ops, checks: [], indexed, dryRun: false };
}

export function preparePut(input: PutInput, sizing: Sizing): WriteCommand {
  checkNamespace(input.namespace);
  const pinned = checkSchemaVersionType(input.schemaVersion);
  const ops = preparePuts(input.namespace, [input], false, sizing);
  ops[0]!.pinnedSchemaVersion = pinned;
  return command('putRecord', ops, false);
}

export function prepareBulkPut(input: BulkPutInput, sizing: Sizing): WriteCommand {
  const { limits } = sizing;
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
  const ops = preparePuts(input.namespace, items, true, sizing);
  const total = ops.reduce((sum, op) => sum + op.valueBytes + op.metadataBytes, 0);
  if (total > limits.maxBulkBytes) {
    throw new LimitExceededError('bulkBytes', `the batch is ${total} bytes; the limit is ${limits.maxBulkBytes}`, limits.maxBulkBytes, total);
  }
  return command('bulkPutRecords', ops, true);
}

export function prepareDelete(input: DeleteInput, limits: Limits): WriteCommand {
  checkNamespace(input.namespace);
  const ifRevision = checkIfRevision(input.ifRevision);
  checkKey(input.key, limits);
  const op: DeleteOp = { kind: 'delete', namespace: input.namespace, key: input.key, ifRevision };
  return command('deleteRecord', [op], false);
}

/** `by`: a finite number, as the shortest decimal text that reads back as it (JavaScript's String). */
function checkBy(by: unknown): string {
  if (typeof by !== 'number' || !Number.isFinite(by)) throw new BadInputError('by must be a finite number');
  return String(by);
}

function prepareIncrementOp(input: { namespace: string; key: string; by: number; ttlSeconds?: number | null }, sizing: Sizing): IncrementOp {
  const by = checkBy(input.by);
  checkKey(input.key, sizing.limits);
  const ttlSeconds = checkTtlType(input.ttlSeconds);
  checkValueSizes(0, null, ttlSeconds, sizing.limits, sizing.quota);
  return { kind: 'increment', namespace: input.namespace, key: input.key, ifRevision: null, by, ttlSeconds };
}

export function prepareIncrement(input: IncrementInput, sizing: Sizing): WriteCommand {
  checkNamespace(input.namespace);
  return command('incrementRecord', [prepareIncrementOp(input, sizing)], false);
}

/**
 * The fields of a commit's checks and operations (the contract's CommitCheck, CommitPut,
 * CommitDelete, CommitIncrement). GraphQL refuses any other field before the core sees it; the
 * Runner door's JSON is checked here, so a misspelt field is refused rather than dropped (an
 * `ifRevision` on a commit put is not a check: the write would be unconditional).
 */
const COMMIT_FIELDS = {
  check: ['namespace', 'key', 'revision'],
  put: ['namespace', 'key', 'value', 'metadata', 'ttlSeconds', 'schemaVersion'],
  delete: ['namespace', 'key'],
  increment: ['namespace', 'key', 'by', 'ttlSeconds'],
} as const;

/** Refuses a field of `value` that is not in `allowed` (BadInputError naming it and `where`). */
export function checkKnownFields(value: object, allowed: readonly string[], where: string): void {
  for (const name of Object.keys(value)) {
    if (!allowed.includes(name)) throw new BadInputError(`${where}: unknown field "${name.slice(0, 64)}" (known: ${allowed.join(', ')})`);
  }
}

/** The one field of a commit operation (GraphQL's @oneOf says so; the Runner door's JSON is checked here). */
function oneOf(op: CommitOperationInput, index: number): 'put' | 'delete' | 'increment' {
  const kinds = op && typeof op === 'object' ? (['put', 'delete', 'increment'] as const).filter((k) => op[k] !== null && op[k] !== undefined) : [];
  const only = kinds[0];
  if (kinds.length !== 1 || !only || typeof op[only] !== 'object' || Array.isArray(op[only])) {
    throw new BadInputError(`operation ${index} must have exactly one of put, delete or increment`);
  }
  checkKnownFields(op, ['put', 'delete', 'increment'], `operation ${index}`);
  return only;
}

/**
 * A commit's stages that need no stored state, across the whole commit in the contract's order
 * ("Transactions: commit", precedence): the commit limits, names and formats (checks, then
 * operations), sizes and TTL, then the commit's bytes. Checks, increment types, schema and quotas
 * are decided in the database (write.ts).
 */
export function prepareCommit(input: CommitInput, sizing: Sizing): WriteCommand {
  const { limits } = sizing;
  const operations = input.operations;
  const checks = input.checks ?? [];
  if (!Array.isArray(operations)) throw new BadInputError('operations must be a list');
  if (!Array.isArray(checks)) throw new BadInputError('checks must be a list');
  if (operations.length === 0 || operations.length > limits.maxCommitOperations) {
    throw new LimitExceededError('commitOperations', `a commit takes 1 to ${limits.maxCommitOperations} operations`, limits.maxCommitOperations, operations.length);
  }
  if (checks.length > limits.maxCommitChecks) {
    throw new LimitExceededError('commitChecks', `a commit takes at most ${limits.maxCommitChecks} checks`, limits.maxCommitChecks, checks.length);
  }
  const kinds = operations.map(oneOf);
  const seen = new Set<string>();
  operations.forEach((op, index) => {
    const target = op[kinds[index]!]!;
    const id = JSON.stringify([target.namespace, target.key]);
    if (seen.has(id)) {
      throw new LimitExceededError('commitDuplicateKey', `key "${String(target.key).slice(0, 300)}" of namespace "${String(target.namespace).slice(0, 64)}" appears in more than one operation`, null, null, index);
    }
    seen.add(id);
  });
  // Names and formats: the checks (a malformed check names no operation), then every operation.
  const checkOps = checks.map((check, index): CheckOp => {
    if (typeof check !== 'object' || check === null || Array.isArray(check)) throw new BadInputError(`check ${index} must be an object`);
    checkKnownFields(check, COMMIT_FIELDS.check, `check ${index}`);
    const revision = check.revision;
    if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 0) {
      throw new BadInputError(`check ${index}: revision must be a non-negative integer`);
    }
    checkNamespace(check.namespace);
    checkKey(check.key, limits);
    return { namespace: check.namespace, key: check.key, revision };
  });
  operations.forEach((op, index) =>
    atItem(true, index, () => {
      const target = op[kinds[index]!]!;
      checkKnownFields(target, COMMIT_FIELDS[kinds[index]!], `operation ${index} ${kinds[index]!}`);
      checkNamespace(target.namespace);
      checkKey(target.key, limits);
      if (op.put) {
        checkSchemaVersionType(op.put.schemaVersion);
        checkValueFormat(op.put.value, op.put.metadata);
      }
      if (op.increment) checkBy(op.increment.by);
    }),
  );
  // Sizes and TTL of every operation.
  const ops = operations.map((op, index): WriteOp =>
    atItem(true, index, () => {
      if (op.put) {
        const ttlSeconds = checkTtlType(op.put.ttlSeconds);
        const sized = checkValueSizes(op.put.value, op.put.metadata, ttlSeconds, limits, sizing.quota);
        const pinnedSchemaVersion = checkSchemaVersionType(op.put.schemaVersion);
        return { kind: 'put', namespace: op.put.namespace, key: op.put.key, ifRevision: null, ...sized, ttlSeconds, pinnedSchemaVersion };
      }
      if (op.delete) return { kind: 'delete', namespace: op.delete.namespace, key: op.delete.key, ifRevision: null };
      return prepareIncrementOp(op.increment!, sizing);
    }),
  );
  const total = ops.reduce((sum, op) => sum + (op.kind === 'put' ? op.valueBytes + op.metadataBytes : 0), 0);
  if (total > limits.maxCommitBytes) {
    throw new LimitExceededError('commitBytes', `the commit's values and metadata are ${total} bytes; the limit is ${limits.maxCommitBytes}`, limits.maxCommitBytes, total);
  }
  return { operation: 'commit', ops, checks: checkOps, indexed: true, dryRun: input.dryRun === true };
}
