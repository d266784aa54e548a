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
}

export interface DeleteOp {
  kind: 'delete';
  namespace: string;
  key: string;
  ifRevision: number | null;
}

export type WriteOp = PutOp | DeleteOp;

/** One write, checked: what write.ts decides and applies in one call. */
export interface WriteCommand {
  operation: 'putRecord' | 'bulkPutRecords' | 'deleteRecord';
  namespace: string;
  ops: WriteOp[];
  /** Errors name the item (bulk writes). */
  indexed: boolean;
  /** The `schemaVersion` the caller pinned (any number: an unknown one is refused in the schema stage). */
  pinnedSchemaVersion: number | null;
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
      return { kind: 'put', namespace, key: item.key, ifRevision: revisions[index]!, ...sized, ttlSeconds };
    }),
  );
}

export function preparePut(input: PutInput, sizing: Sizing): WriteCommand {
  checkNamespace(input.namespace);
  const pinned = checkSchemaVersionType(input.schemaVersion);
  const ops = preparePuts(input.namespace, [input], false, sizing);
  return { operation: 'putRecord', namespace: input.namespace, ops, indexed: false, pinnedSchemaVersion: pinned };
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
  return { operation: 'bulkPutRecords', namespace: input.namespace, ops, indexed: true, pinnedSchemaVersion: null };
}

export function prepareDelete(input: DeleteInput, limits: Limits): WriteCommand {
  checkNamespace(input.namespace);
  const ifRevision = checkIfRevision(input.ifRevision);
  checkKey(input.key, limits);
  const op: DeleteOp = { kind: 'delete', namespace: input.namespace, key: input.key, ifRevision };
  return { operation: 'deleteRecord', namespace: input.namespace, ops: [op], indexed: false, pinnedSchemaVersion: null };
}
