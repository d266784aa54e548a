/* eslint-disable */
/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
import type { DocumentTypeDecoration } from '@graphql-typed-document-node/core';
/** One record of a bulkPutRecords batch; the fields mean what they mean in PutRecordInput. */
export type BulkPutItem = {
  /** Omitted: write unconditionally. 0: create only. n > 0: the record must exist with revision n. Any mismatch fails the whole batch. */
  ifRevision?: number | null | undefined;
  /** The key; each key at most once per batch (LimitExceeded "bulkDuplicateKey"). */
  key: string;
  /** Must be a JSON object; at most Quota.maxMetadataBytes (default 4,096) bytes. Omitted: {}. */
  metadata?: unknown;
  /** Seconds until the record expires; omitted means it never expires. 60 to 2,592,000 (30 days) by default. */
  ttlSeconds?: number | null | undefined;
  /** Any JSON value except null; at most Quota.maxValueBytes (default 65,536) UTF-8 bytes as compact JSON. */
  value: unknown;
};

/** Records of one namespace to write together, all or nothing (bulkPutRecords). */
export type BulkPutRecordsInput = {
  /** Admins only; extension callers write to their own install. */
  installId?: string | number | null | undefined;
  /** 1 to 100 items by default (LimitExceeded "bulkItems"), at most 1 MiB of values and metadata together ("bulkBytes"). Validated against the active schema. */
  items: Array<BulkPutItem>;
  /** The namespace, ^[a-z0-9][a-z0-9._-]{0,63}$; created by its first write. */
  namespace: string;
};

/** What a change did to its record. */
export type ChangeOperation =
  /** A live record was deleted. */
  | 'DELETE'
  /** An expired record was physically removed (actor "system"). */
  | 'EXPIRE'
  /** The record was created or replaced (put, bulk put, commit, increment or import). */
  | 'PUT';

/** A condition of a commit on one key, evaluated against the state the operations apply to. A check reads: it needs read capability. */
export type CommitCheck = {
  /** The key to check. */
  key: string;
  /** The namespace of the key. */
  namespace: string;
  /** 0: the key holds no live record. n > 0: the record is live at revision n. */
  revision: number;
};

/** Remove a live record; an absent key is fine. */
export type CommitDelete = {
  /** The key of the record. */
  key: string;
  /** The namespace of the record. */
  namespace: string;
};

/** Add `by` to a record whose value is a number, like incrementRecord. */
export type CommitIncrement = {
  /** What to add (negative to subtract), taken as the shortest decimal text of the number (0.1 + 0.2 stores 0.3). The stored value must be a JSON number (a missing record starts at 0); a result beyond 1e15 in magnitude is LimitExceeded "valueType". */
  by: number;
  /** 1 to 256 Unicode code points, no control characters; `/` is allowed (for prefix listing). */
  key: string;
  /** The namespace, ^[a-z0-9][a-z0-9._-]{0,63}$; created by its first write. */
  namespace: string;
  /** Sets the TTL like a put; omitted clears it. */
  ttlSeconds?: number | null | undefined;
};

/** Checks, then operations across namespaces of one install, all or nothing (commit). */
export type CommitInput = {
  /** Every check must hold, or nothing is written and CommitConflict lists the ones that failed. At most 100 by default (LimitExceeded "commitChecks"). */
  checks?: Array<CommitCheck> | null | undefined;
  /** Check and validate everything, report the outcome, write nothing. */
  dryRun?: boolean | null | undefined;
  /** Admins only; extension callers write to their own install. */
  installId?: string | number | null | undefined;
  /** Applied in order; a key may appear in at most one operation (LimitExceeded "commitDuplicateKey"). 1 to 100 by default ("commitOperations"), at most 1 MiB of values and metadata together ("commitBytes"). */
  operations: Array<CommitOperation>;
};

/** Exactly one of the fields. */
export type CommitOperation =
  {   /** Delete a record. */
  delete: CommitDelete; increment?: never; put?: never; }
  |  { delete?: never;   /** Add to a numeric record. */
  increment: CommitIncrement; put?: never; }
  |  { delete?: never; increment?: never;   /** Create or replace a record. */
  put: CommitPut; };

/** Create or replace a record, like putRecord without ifRevision (value, metadata and TTL together). */
export type CommitPut = {
  /** 1 to 256 Unicode code points, no control characters; `/` is allowed (for prefix listing). */
  key: string;
  /** Must be a JSON object; at most Quota.maxMetadataBytes (default 4,096) bytes. Omitted: {}. */
  metadata?: unknown;
  /** The namespace, ^[a-z0-9][a-z0-9._-]{0,63}$; created by its first write. */
  namespace: string;
  /** Validate against this schema version instead of the active one. */
  schemaVersion?: number | null | undefined;
  /** Seconds until the record expires; omitted means it never expires. 60 to 2,592,000 (30 days) by default. */
  ttlSeconds?: number | null | undefined;
  /** Any JSON value except null; at most Quota.maxValueBytes (default 65,536) UTF-8 bytes as compact JSON. */
  value: unknown;
};

/** The record to delete (deleteRecord). */
export type DeleteRecordInput = {
  /** n > 0: delete only if the record exists with revision n. 0: assert that the record does not exist (a live record is RevisionMismatch). Omitted: delete whatever is there. */
  ifRevision?: number | null | undefined;
  /** Admins only; extension callers write to their own install. */
  installId?: string | number | null | undefined;
  /** The key of the record. */
  key: string;
  /** The namespace of the record. */
  namespace: string;
};

/** The counter to change (incrementRecord). */
export type IncrementRecordInput = {
  /** What to add (negative to subtract), taken as the shortest decimal text of the number (0.1 + 0.2 stores 0.3). The stored value must be a JSON number (a missing record starts at 0); a result beyond 1e15 in magnitude is LimitExceeded "valueType". */
  by: number;
  /** Admins only; extension callers write to their own install. */
  installId?: string | number | null | undefined;
  /** 1 to 256 Unicode code points, no control characters; `/` is allowed (for prefix listing). */
  key: string;
  /** The namespace, ^[a-z0-9][a-z0-9._-]{0,63}$; created by its first write. */
  namespace: string;
  /** Sets the TTL like a put; omitted clears it. */
  ttlSeconds?: number | null | undefined;
};

/** One record to create or replace (putRecord). */
export type PutRecordInput = {
  /**
   * Omitted: write unconditionally. 0: create only, fail if the record exists.
   * n > 0: the record must exist with revision n.
   */
  ifRevision?: number | null | undefined;
  /** Admins only; extension callers write to their own install. */
  installId?: string | number | null | undefined;
  /** 1 to 256 Unicode code points, no control characters; `/` is allowed (for prefix listing). */
  key: string;
  /** Must be a JSON object; at most Quota.maxMetadataBytes (default 4,096) bytes. Omitted: {}. */
  metadata?: unknown;
  /** The namespace, ^[a-z0-9][a-z0-9._-]{0,63}$; created by its first write. */
  namespace: string;
  /** Validate against this schema version instead of the active one. */
  schemaVersion?: number | null | undefined;
  /** Seconds until the record expires; omitted means it never expires. 60 to 2,592,000 (30 days) by default. */
  ttlSeconds?: number | null | undefined;
  /** Any JSON value except null; at most Quota.maxValueBytes (default 65,536) UTF-8 bytes as compact JSON. */
  value: unknown;
};

/** Why a storage operation was refused: the `code` of a typed error in a result union, and the `extensions.code` of a GraphQL error. */
export type StorageErrorCode =
  /** A change-feed cursor older than the retention window (GraphQL error extension; Runner HTTP 410). Resync from a snapshot. */
  | 'CURSOR_EXPIRED'
  /** The credential may not do this (GraphQL error extension; HTTP 403 where the whole request is refused). */
  | 'FORBIDDEN'
  /** An unexpected error, or storage temporarily unavailable (GraphQL error extension); the message carries no internals. Retry later. */
  | 'INTERNAL'
  /** A per-request limit: key or namespace name, value or metadata size, bulk or commit size, TTL range, page size. */
  | 'LIMIT_EXCEEDED'
  /** A missing record, on the Runner REST door's `get` (HTTP 404); GraphQL answers null for a missing record instead. */
  | 'NOT_FOUND'
  /** A stored-data quota: namespaces, keys per namespace, bytes per install. */
  | 'QUOTA_EXCEEDED'
  /** Too many requests for this install (GraphQL error extension; HTTP 429). */
  | 'RATE_LIMITED'
  /** ifRevision did not match the stored record (RevisionMismatch), or a commit's checks did not hold (CommitConflict). */
  | 'REVISION_MISMATCH'
  /** No valid credential (GraphQL error extension; HTTP 401). */
  | 'UNAUTHENTICATED'
  /** The value does not satisfy the namespace's JSON Schema, or the schema itself is invalid. */
  | 'VALIDATION_FAILED';

export type BulkPutRecordsMutationVariables = Exact<{
  input: BulkPutRecordsInput;
}>;


export type BulkPutRecordsMutation = { bulkPutRecords:
    | { __typename: 'BulkPutRecordsSuccess', records: Array<{ __typename: 'Record', id: string, installId: string, namespace: string, key: string, value: unknown, metadata: unknown, revision: number, schemaVersion: number | null, ttlExpiresAt: string | null, createdAt: string, updatedAt: string }> }
    | { __typename: 'LimitExceeded', limit: string, max: number | null, actual: number | null, itemIndex: number | null, code: StorageErrorCode, message: string }
    | { __typename: 'QuotaExceeded', quota: string, allowed: number, used: number, itemIndex: number | null, code: StorageErrorCode, message: string }
    | { __typename: 'RevisionMismatch', namespace: string, key: string, expectedRevision: number, currentRevision: number | null, code: StorageErrorCode, message: string }
    | { __typename: 'ValidationFailed', schemaVersion: number | null, code: StorageErrorCode, message: string, issues: Array<{ path: string, message: string, keyword: string }> }
   };

export type ChangesQueryVariables = Exact<{
  namespace?: string | null | undefined;
  prefix?: string | null | undefined;
  after?: string | null | undefined;
  first?: number | null | undefined;
  installId?: string | number | null | undefined;
}>;


export type ChangesQuery = { changes: { __typename: 'ChangeConnection', edges: Array<{ cursor: string, node: { __typename: 'Change', cursor: string, at: string, operation: ChangeOperation, namespace: string, key: string, revision: number, actor: string, record: { __typename: 'Record', id: string, installId: string, namespace: string, key: string, value: unknown, metadata: unknown, revision: number, schemaVersion: number | null, ttlExpiresAt: string | null, createdAt: string, updatedAt: string } | null } }>, pageInfo: { hasNextPage: boolean, endCursor: string | null, hasPreviousPage: boolean, startCursor: string | null } } };

export type ChangesCursorQueryVariables = Exact<{
  installId?: string | number | null | undefined;
}>;


export type ChangesCursorQuery = { install: { __typename: 'Install', id: string, changesCursor: string } | null };

export type StorageChangeFragment = { __typename: 'Change', cursor: string, at: string, operation: ChangeOperation, namespace: string, key: string, revision: number, actor: string, record: { __typename: 'Record', id: string, installId: string, namespace: string, key: string, value: unknown, metadata: unknown, revision: number, schemaVersion: number | null, ttlExpiresAt: string | null, createdAt: string, updatedAt: string } | null };

export type WatchChangesSubscriptionVariables = Exact<{
  namespace?: string | null | undefined;
  prefix?: string | null | undefined;
  after?: string | null | undefined;
  installId?: string | number | null | undefined;
}>;


export type WatchChangesSubscription = { changes: { cursor: string, at: string, operation: ChangeOperation, namespace: string, key: string, revision: number, actor: string, record: { __typename: 'Record', id: string, installId: string, namespace: string, key: string, value: unknown, metadata: unknown, revision: number, schemaVersion: number | null, ttlExpiresAt: string | null, createdAt: string, updatedAt: string } | null } };

export type CommitMutationVariables = Exact<{
  input: CommitInput;
}>;


export type CommitMutation = { commit:
    | { __typename: 'CommitConflict', code: StorageErrorCode, message: string, conflicts: Array<{ index: number, namespace: string, key: string, expectedRevision: number, currentRevision: number | null }> }
    | { __typename: 'CommitSuccess', committed: boolean, cursor: string | null, records: Array<{ __typename: 'Record', id: string, installId: string, namespace: string, key: string, value: unknown, metadata: unknown, revision: number, schemaVersion: number | null, ttlExpiresAt: string | null, createdAt: string, updatedAt: string } | null> }
    | { __typename: 'LimitExceeded', limit: string, max: number | null, actual: number | null, itemIndex: number | null, code: StorageErrorCode, message: string }
    | { __typename: 'QuotaExceeded', quota: string, allowed: number, used: number, itemIndex: number | null, code: StorageErrorCode, message: string }
    | { __typename: 'ValidationFailed', schemaVersion: number | null, code: StorageErrorCode, message: string, issues: Array<{ path: string, message: string, keyword: string }> }
   };

export type DeleteRecordMutationVariables = Exact<{
  input: DeleteRecordInput;
}>;


export type DeleteRecordMutation = { deleteRecord:
    | { __typename: 'DeleteRecordSuccess', namespace: string, key: string, deleted: boolean }
    | { __typename: 'LimitExceeded', limit: string, max: number | null, actual: number | null, itemIndex: number | null, code: StorageErrorCode, message: string }
    | { __typename: 'RevisionMismatch', namespace: string, key: string, expectedRevision: number, currentRevision: number | null, code: StorageErrorCode, message: string }
   };

export type StorageRecordFragment = { __typename: 'Record', id: string, installId: string, namespace: string, key: string, value: unknown, metadata: unknown, revision: number, schemaVersion: number | null, ttlExpiresAt: string | null, createdAt: string, updatedAt: string };

type StorageErrorFields_CommitConflict_Fragment = { __typename: 'CommitConflict', code: StorageErrorCode, message: string };

type StorageErrorFields_LimitExceeded_Fragment = { __typename: 'LimitExceeded', limit: string, max: number | null, actual: number | null, itemIndex: number | null, code: StorageErrorCode, message: string };

type StorageErrorFields_QuotaExceeded_Fragment = { __typename: 'QuotaExceeded', quota: string, allowed: number, used: number, itemIndex: number | null, code: StorageErrorCode, message: string };

type StorageErrorFields_RevisionMismatch_Fragment = { __typename: 'RevisionMismatch', namespace: string, key: string, expectedRevision: number, currentRevision: number | null, code: StorageErrorCode, message: string };

type StorageErrorFields_ValidationFailed_Fragment = { __typename: 'ValidationFailed', schemaVersion: number | null, code: StorageErrorCode, message: string, issues: Array<{ path: string, message: string, keyword: string }> };

export type StorageErrorFieldsFragment =
  | StorageErrorFields_CommitConflict_Fragment
  | StorageErrorFields_LimitExceeded_Fragment
  | StorageErrorFields_QuotaExceeded_Fragment
  | StorageErrorFields_RevisionMismatch_Fragment
  | StorageErrorFields_ValidationFailed_Fragment
;

export type GetRecordQueryVariables = Exact<{
  namespace: string;
  key: string;
  installId?: string | number | null | undefined;
}>;


export type GetRecordQuery = { record: { __typename: 'Record', id: string, installId: string, namespace: string, key: string, value: unknown, metadata: unknown, revision: number, schemaVersion: number | null, ttlExpiresAt: string | null, createdAt: string, updatedAt: string } | null };

export type GetRecordsQueryVariables = Exact<{
  namespace: string;
  keys: Array<string> | string;
  installId?: string | number | null | undefined;
}>;


export type GetRecordsQuery = { records: Array<{ __typename: 'Record', id: string, installId: string, namespace: string, key: string, value: unknown, metadata: unknown, revision: number, schemaVersion: number | null, ttlExpiresAt: string | null, createdAt: string, updatedAt: string } | null> };

export type IncrementRecordMutationVariables = Exact<{
  input: IncrementRecordInput;
}>;


export type IncrementRecordMutation = { incrementRecord:
    | { __typename: 'LimitExceeded', limit: string, max: number | null, actual: number | null, itemIndex: number | null, code: StorageErrorCode, message: string }
    | { __typename: 'PutRecordSuccess', record: { __typename: 'Record', id: string, installId: string, namespace: string, key: string, value: unknown, metadata: unknown, revision: number, schemaVersion: number | null, ttlExpiresAt: string | null, createdAt: string, updatedAt: string } }
    | { __typename: 'QuotaExceeded', quota: string, allowed: number, used: number, itemIndex: number | null, code: StorageErrorCode, message: string }
    | { __typename: 'ValidationFailed', schemaVersion: number | null, code: StorageErrorCode, message: string, issues: Array<{ path: string, message: string, keyword: string }> }
   };

export type ListRecordsQueryVariables = Exact<{
  namespace: string;
  prefix?: string | null | undefined;
  first?: number | null | undefined;
  after?: string | null | undefined;
  installId?: string | number | null | undefined;
}>;


export type ListRecordsQuery = { recordList: { __typename: 'RecordConnection', edges: Array<{ cursor: string, node: { __typename: 'Record', id: string, installId: string, namespace: string, key: string, value: unknown, metadata: unknown, revision: number, schemaVersion: number | null, ttlExpiresAt: string | null, createdAt: string, updatedAt: string } }>, pageInfo: { hasNextPage: boolean, endCursor: string | null, hasPreviousPage: boolean, startCursor: string | null } } };

export type PutRecordMutationVariables = Exact<{
  input: PutRecordInput;
}>;


export type PutRecordMutation = { putRecord:
    | { __typename: 'LimitExceeded', limit: string, max: number | null, actual: number | null, itemIndex: number | null, code: StorageErrorCode, message: string }
    | { __typename: 'PutRecordSuccess', record: { __typename: 'Record', id: string, installId: string, namespace: string, key: string, value: unknown, metadata: unknown, revision: number, schemaVersion: number | null, ttlExpiresAt: string | null, createdAt: string, updatedAt: string } }
    | { __typename: 'QuotaExceeded', quota: string, allowed: number, used: number, itemIndex: number | null, code: StorageErrorCode, message: string }
    | { __typename: 'RevisionMismatch', namespace: string, key: string, expectedRevision: number, currentRevision: number | null, code: StorageErrorCode, message: string }
    | { __typename: 'ValidationFailed', schemaVersion: number | null, code: StorageErrorCode, message: string, issues: Array<{ path: string, message: string, keyword: string }> }
   };

export class TypedDocumentString<TResult, TVariables>
  extends String
  implements DocumentTypeDecoration<TResult, TVariables>
{
  __apiType?: NonNullable<DocumentTypeDecoration<TResult, TVariables>['__apiType']>;
  private value: string;
  public __meta__?: Record<string, any> | undefined;

  constructor(value: string, __meta__?: Record<string, any> | undefined) {
    super(value);
    this.value = value;
    this.__meta__ = __meta__;
  }

  override toString(): string & DocumentTypeDecoration<TResult, TVariables> {
    return this.value;
  }
}
export const StorageRecordFragmentDoc = new TypedDocumentString(`
    fragment StorageRecord on Record {
  __typename
  id
  installId
  namespace
  key
  value
  metadata
  revision
  schemaVersion
  ttlExpiresAt
  createdAt
  updatedAt
}
    `, {"fragmentName":"StorageRecord"}) as unknown as TypedDocumentString<StorageRecordFragment, unknown>;
export const StorageChangeFragmentDoc = new TypedDocumentString(`
    fragment StorageChange on Change {
  __typename
  cursor
  at
  operation
  namespace
  key
  revision
  actor
  record {
    ...StorageRecord
  }
}
    fragment StorageRecord on Record {
  __typename
  id
  installId
  namespace
  key
  value
  metadata
  revision
  schemaVersion
  ttlExpiresAt
  createdAt
  updatedAt
}`, {"fragmentName":"StorageChange"}) as unknown as TypedDocumentString<StorageChangeFragment, unknown>;
export const StorageErrorFieldsFragmentDoc = new TypedDocumentString(`
    fragment StorageErrorFields on StorageError {
  __typename
  code
  message
  ... on RevisionMismatch {
    namespace
    key
    expectedRevision
    currentRevision
  }
  ... on QuotaExceeded {
    quota
    allowed
    used
    itemIndex
  }
  ... on LimitExceeded {
    limit
    max
    actual
    itemIndex
  }
  ... on ValidationFailed {
    schemaVersion
    issues {
      path
      message
      keyword
    }
  }
}
    `, {"fragmentName":"StorageErrorFields"}) as unknown as TypedDocumentString<StorageErrorFieldsFragment, unknown>;
export const BulkPutRecordsDocument = new TypedDocumentString(`
    mutation BulkPutRecords($input: BulkPutRecordsInput!) {
  bulkPutRecords(input: $input) {
    __typename
    ... on BulkPutRecordsSuccess {
      records {
        ...StorageRecord
      }
    }
    ... on StorageError {
      ...StorageErrorFields
    }
  }
}
    fragment StorageRecord on Record {
  __typename
  id
  installId
  namespace
  key
  value
  metadata
  revision
  schemaVersion
  ttlExpiresAt
  createdAt
  updatedAt
}
fragment StorageErrorFields on StorageError {
  __typename
  code
  message
  ... on RevisionMismatch {
    namespace
    key
    expectedRevision
    currentRevision
  }
  ... on QuotaExceeded {
    quota
    allowed
    used
    itemIndex
  }
  ... on LimitExceeded {
    limit
    max
    actual
    itemIndex
  }
  ... on ValidationFailed {
    schemaVersion
    issues {
      path
      message
      keyword
    }
  }
}`, {"hash":"sha256:bf6af02c3079105e26acc610752931c0d24fc868306e5440892544057f3148c4"}) as unknown as TypedDocumentString<BulkPutRecordsMutation, BulkPutRecordsMutationVariables>;
export const ChangesDocument = new TypedDocumentString(`
    query Changes($namespace: String, $prefix: String, $after: String, $first: Int, $installId: ID) {
  changes(
    namespace: $namespace
    prefix: $prefix
    after: $after
    first: $first
    installId: $installId
  ) {
    __typename
    edges {
      cursor
      node {
        ...StorageChange
      }
    }
    pageInfo {
      hasNextPage
      endCursor
      hasPreviousPage
      startCursor
    }
  }
}
    fragment StorageChange on Change {
  __typename
  cursor
  at
  operation
  namespace
  key
  revision
  actor
  record {
    ...StorageRecord
  }
}
fragment StorageRecord on Record {
  __typename
  id
  installId
  namespace
  key
  value
  metadata
  revision
  schemaVersion
  ttlExpiresAt
  createdAt
  updatedAt
}`, {"hash":"sha256:98eaf413260f7552123146fd47ec31ba3fb5e580e37da8f416b25084bb87e2e5"}) as unknown as TypedDocumentString<ChangesQuery, ChangesQueryVariables>;
export const ChangesCursorDocument = new TypedDocumentString(`
    query ChangesCursor($installId: ID) {
  install(id: $installId) {
    __typename
    id
    changesCursor
  }
}
    `, {"hash":"sha256:482b670393841b8660375e4b42bc7b2c7e1dc3f4d4dd9847187e3a89bb13dd35"}) as unknown as TypedDocumentString<ChangesCursorQuery, ChangesCursorQueryVariables>;
export const WatchChangesDocument = new TypedDocumentString(`
    subscription WatchChanges($namespace: String, $prefix: String, $after: String, $installId: ID) {
  changes(
    namespace: $namespace
    prefix: $prefix
    after: $after
    installId: $installId
  ) {
    cursor
    at
    operation
    namespace
    key
    revision
    actor
    record {
      __typename
      id
      installId
      namespace
      key
      value
      metadata
      revision
      schemaVersion
      ttlExpiresAt
      createdAt
      updatedAt
    }
  }
}
    `, {"hash":"sha256:1392e94c9fabe7aa2253894a350f6127d95fe07cead43e4be9ddc4e11bd6f0ae"}) as unknown as TypedDocumentString<WatchChangesSubscription, WatchChangesSubscriptionVariables>;
export const CommitDocument = new TypedDocumentString(`
    mutation Commit($input: CommitInput!) {
  commit(input: $input) {
    __typename
    ... on CommitSuccess {
      records {
        ...StorageRecord
      }
      committed
      cursor
    }
    ... on CommitConflict {
      code
      message
      conflicts {
        index
        namespace
        key
        expectedRevision
        currentRevision
      }
    }
    ... on StorageError {
      ...StorageErrorFields
    }
  }
}
    fragment StorageRecord on Record {
  __typename
  id
  installId
  namespace
  key
  value
  metadata
  revision
  schemaVersion
  ttlExpiresAt
  createdAt
  updatedAt
}
fragment StorageErrorFields on StorageError {
  __typename
  code
  message
  ... on RevisionMismatch {
    namespace
    key
    expectedRevision
    currentRevision
  }
  ... on QuotaExceeded {
    quota
    allowed
    used
    itemIndex
  }
  ... on LimitExceeded {
    limit
    max
    actual
    itemIndex
  }
  ... on ValidationFailed {
    schemaVersion
    issues {
      path
      message
      keyword
    }
  }
}`, {"hash":"sha256:5f56f4110d2143c06211ec7ff9b9970769fa80a451fc7914e1e280524e6be3fe"}) as unknown as TypedDocumentString<CommitMutation, CommitMutationVariables>;
export const DeleteRecordDocument = new TypedDocumentString(`
    mutation DeleteRecord($input: DeleteRecordInput!) {
  deleteRecord(input: $input) {
    __typename
    ... on DeleteRecordSuccess {
      namespace
      key
      deleted
    }
    ... on StorageError {
      ...StorageErrorFields
    }
  }
}
    fragment StorageErrorFields on StorageError {
  __typename
  code
  message
  ... on RevisionMismatch {
    namespace
    key
    expectedRevision
    currentRevision
  }
  ... on QuotaExceeded {
    quota
    allowed
    used
    itemIndex
  }
  ... on LimitExceeded {
    limit
    max
    actual
    itemIndex
  }
  ... on ValidationFailed {
    schemaVersion
    issues {
      path
      message
      keyword
    }
  }
}`, {"hash":"sha256:b1598cea12fd9545e040bcfc6f86e34b6887ac9ee46a0e433019af4e6f5c93c3"}) as unknown as TypedDocumentString<DeleteRecordMutation, DeleteRecordMutationVariables>;
export const GetRecordDocument = new TypedDocumentString(`
    query GetRecord($namespace: String!, $key: String!, $installId: ID) {
  record(namespace: $namespace, key: $key, installId: $installId) {
    ...StorageRecord
  }
}
    fragment StorageRecord on Record {
  __typename
  id
  installId
  namespace
  key
  value
  metadata
  revision
  schemaVersion
  ttlExpiresAt
  createdAt
  updatedAt
}`, {"hash":"sha256:2b340b27738d682627a723948885cef0e26f50602713bd0355541caf5003493b"}) as unknown as TypedDocumentString<GetRecordQuery, GetRecordQueryVariables>;
export const GetRecordsDocument = new TypedDocumentString(`
    query GetRecords($namespace: String!, $keys: [String!]!, $installId: ID) {
  records(namespace: $namespace, keys: $keys, installId: $installId) {
    ...StorageRecord
  }
}
    fragment StorageRecord on Record {
  __typename
  id
  installId
  namespace
  key
  value
  metadata
  revision
  schemaVersion
  ttlExpiresAt
  createdAt
  updatedAt
}`, {"hash":"sha256:8c5e26d9524155c62d7af03af45fd95b87c02c9297a58440f7b89da46c59a5ef"}) as unknown as TypedDocumentString<GetRecordsQuery, GetRecordsQueryVariables>;
export const IncrementRecordDocument = new TypedDocumentString(`
    mutation IncrementRecord($input: IncrementRecordInput!) {
  incrementRecord(input: $input) {
    __typename
    ... on PutRecordSuccess {
      record {
        ...StorageRecord
      }
    }
    ... on StorageError {
      ...StorageErrorFields
    }
  }
}
    fragment StorageRecord on Record {
  __typename
  id
  installId
  namespace
  key
  value
  metadata
  revision
  schemaVersion
  ttlExpiresAt
  createdAt
  updatedAt
}
fragment StorageErrorFields on StorageError {
  __typename
  code
  message
  ... on RevisionMismatch {
    namespace
    key
    expectedRevision
    currentRevision
  }
  ... on QuotaExceeded {
    quota
    allowed
    used
    itemIndex
  }
  ... on LimitExceeded {
    limit
    max
    actual
    itemIndex
  }
  ... on ValidationFailed {
    schemaVersion
    issues {
      path
      message
      keyword
    }
  }
}`, {"hash":"sha256:86dadd7b381560fded9db779812a80679795a4fd928f1f9b6fe82de055c2e24f"}) as unknown as TypedDocumentString<IncrementRecordMutation, IncrementRecordMutationVariables>;
export const ListRecordsDocument = new TypedDocumentString(`
    query ListRecords($namespace: String!, $prefix: String, $first: Int, $after: String, $installId: ID) {
  recordList(
    namespace: $namespace
    prefix: $prefix
    first: $first
    after: $after
    installId: $installId
  ) {
    __typename
    edges {
      cursor
      node {
        ...StorageRecord
      }
    }
    pageInfo {
      hasNextPage
      endCursor
      hasPreviousPage
      startCursor
    }
  }
}
    fragment StorageRecord on Record {
  __typename
  id
  installId
  namespace
  key
  value
  metadata
  revision
  schemaVersion
  ttlExpiresAt
  createdAt
  updatedAt
}`, {"hash":"sha256:2260a4bd28f6ccf4618caa53b002e3d91d97548af2ea8fc2bf40e21ff8095c63"}) as unknown as TypedDocumentString<ListRecordsQuery, ListRecordsQueryVariables>;
export const PutRecordDocument = new TypedDocumentString(`
    mutation PutRecord($input: PutRecordInput!) {
  putRecord(input: $input) {
    __typename
    ... on PutRecordSuccess {
      record {
        ...StorageRecord
      }
    }
    ... on StorageError {
      ...StorageErrorFields
    }
  }
}
    fragment StorageRecord on Record {
  __typename
  id
  installId
  namespace
  key
  value
  metadata
  revision
  schemaVersion
  ttlExpiresAt
  createdAt
  updatedAt
}
fragment StorageErrorFields on StorageError {
  __typename
  code
  message
  ... on RevisionMismatch {
    namespace
    key
    expectedRevision
    currentRevision
  }
  ... on QuotaExceeded {
    quota
    allowed
    used
    itemIndex
  }
  ... on LimitExceeded {
    limit
    max
    actual
    itemIndex
  }
  ... on ValidationFailed {
    schemaVersion
    issues {
      path
      message
      keyword
    }
  }
}`, {"hash":"sha256:10316f2717ede60e39a777d4c2def5a762ef4cd3eb823b454a8545403cc16452"}) as unknown as TypedDocumentString<PutRecordMutation, PutRecordMutationVariables>;