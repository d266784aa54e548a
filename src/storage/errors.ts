/**
 * Errors are values with a code, raised in the core and mapped once at each door
 * (GraphQL result unions / GraphQL error codes, Runner REST status codes).
 */

export type StorageErrorCode =
  | 'VALIDATION_FAILED'
  | 'LIMIT_EXCEEDED'
  | 'QUOTA_EXCEEDED'
  | 'REVISION_MISMATCH'
  | 'NOT_FOUND'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'RATE_LIMITED'
  | 'CURSOR_EXPIRED'
  | 'INTERNAL';

export abstract class StorageError extends Error {
  abstract readonly code: StorageErrorCode;
}

export class RevisionMismatchError extends StorageError {
  readonly code = 'REVISION_MISMATCH' as const;
  constructor(
    readonly namespace: string,
    readonly key: string,
    readonly expectedRevision: number,
    readonly currentRevision: number | null,
  ) {
    super(
      currentRevision === null
        ? `record "${key}" does not exist (expected revision ${expectedRevision})`
        : `record "${key}" is at revision ${currentRevision}, not ${expectedRevision}`,
    );
  }
}

/** One failed check of a commit. */
export interface CheckConflict {
  /** The check's index in the commit's checks. */
  index: number;
  namespace: string;
  key: string;
  expectedRevision: number;
  /** null when the key holds no live record. */
  currentRevision: number | null;
}

/** A commit's checks did not hold: every failed one, in input order (contract, "Transactions: commit"). */
export class CommitConflictError extends StorageError {
  readonly code = 'REVISION_MISMATCH' as const;
  constructor(readonly conflicts: CheckConflict[]) {
    super(`${conflicts.length} of the commit's checks failed; nothing was written`);
  }
}

export type QuotaName = 'namespaces' | 'keysPerNamespace' | 'bytes';

export class QuotaExceededError extends StorageError {
  readonly code = 'QUOTA_EXCEEDED' as const;
  constructor(
    readonly quota: QuotaName,
    readonly allowed: number,
    readonly used: number,
    readonly itemIndex: number | null = null,
  ) {
    super(`quota "${quota}" exceeded: ${used} used of ${allowed} allowed`);
  }
}

export type LimitName =
  | 'valueBytes'
  | 'valueType'
  | 'valueFormat'
  | 'metadataBytes'
  | 'metadataType'
  | 'keyLength'
  | 'keyFormat'
  | 'namespaceFormat'
  | 'ttlSeconds'
  | 'bulkItems'
  | 'bulkBytes'
  | 'bulkDuplicateKey'
  | 'commitOperations'
  | 'commitChecks'
  | 'commitBytes'
  | 'commitDuplicateKey'
  | 'keysPerRead'
  | 'pageSize'
  | 'schemaBytes'
  | 'subscriptions';

export class LimitExceededError extends StorageError {
  readonly code = 'LIMIT_EXCEEDED' as const;
  constructor(
    readonly limit: LimitName,
    message: string,
    readonly max: number | null = null,
    readonly actual: number | null = null,
    readonly itemIndex: number | null = null,
  ) {
    super(message);
  }

  /** The same error for item `index` of a bulk write. */
  atItem(index: number): LimitExceededError {
    return new LimitExceededError(this.limit, `item ${index}: ${this.message}`, this.max, this.actual, index);
  }
}

export interface ValidationIssue {
  path: string;
  message: string;
  keyword: string;
}

export class ValidationFailedError extends StorageError {
  readonly code = 'VALIDATION_FAILED' as const;
  constructor(
    message: string,
    readonly issues: ValidationIssue[],
    readonly schemaVersion: number | null = null,
  ) {
    super(message);
  }
}

/** The credential may not do this. */
export class ForbiddenError extends StorageError {
  readonly code = 'FORBIDDEN' as const;
  constructor(message = 'forbidden') {
    super(message);
  }
}

export class UnauthenticatedError extends StorageError {
  readonly code = 'UNAUTHENTICATED' as const;
  constructor(message = 'a valid credential is required') {
    super(message);
  }
}

export class RateLimitedError extends StorageError {
  readonly code = 'RATE_LIMITED' as const;
  constructor(readonly retryAfterSeconds: number) {
    super(`too many requests for this install; retry in ${retryAfterSeconds} s`);
  }
}

/** A change-feed cursor from before the oldest retained change (contract, "Change feed": retention). */
export class CursorExpiredError extends StorageError {
  readonly code = 'CURSOR_EXPIRED' as const;
  constructor() {
    super('the cursor is older than the retained changes; resync from a snapshot (Install.changesCursor, then recordList)');
  }
}

/** Malformed input that is not a limit: a negative ifRevision, a malformed cursor. */
export class BadInputError extends StorageError {
  readonly code = 'VALIDATION_FAILED' as const;
}

/** The database is unreachable or timed out: callers get a clean 503 / INTERNAL. */
export class UnavailableError extends StorageError {
  readonly code = 'INTERNAL' as const;
  constructor() {
    super('storage is temporarily unavailable; retry shortly');
  }
}

const UNAVAILABLE_SQLSTATE_PREFIXES = ['08', '57P', '53'];
const UNAVAILABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND']);

/** Maps a database failure by SQLSTATE (never by constraint name: Citus suffixes shard ids). */
export function mapDatabaseError(error: unknown): unknown {
  if (error instanceof StorageError) return error;
  const e = error as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : '';
  if (
    UNAVAILABLE_SQLSTATE_PREFIXES.some((p) => code.startsWith(p)) ||
    UNAVAILABLE_NODE_CODES.has(code) ||
    code === '57014' /* statement timeout */ ||
    // A deadlock or serialization victim (Citus detects distributed deadlocks: docs/citus.md rule 18)
    // changed nothing and may be retried; the write path retries it first.
    code === '40P01' ||
    code === '40001' ||
    /timeout exceeded when trying to connect|Connection terminated|connection timeout|is not queryable|Query read timeout/i.test(message)
  ) {
    return new UnavailableError();
  }
  return error;
}
