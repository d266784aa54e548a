/* eslint-disable */
/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
import type { DocumentTypeDecoration } from '@graphql-typed-document-node/core';
export type BulkPutItem = {
  ifRevision?: number | null | undefined;
  key: string;
  metadata?: unknown;
  ttlSeconds?: number | null | undefined;
  value: unknown;
};

export type BulkPutRecordsInput = {
  installId?: string | number | null | undefined;
  items: Array<BulkPutItem>;
  namespace: string;
};

export type DeleteRecordInput = {
  /** n > 0: delete only if the record exists with revision n. */
  ifRevision?: number | null | undefined;
  installId?: string | number | null | undefined;
  key: string;
  namespace: string;
};

export type PutRecordInput = {
  /**
   * Omitted: write unconditionally. 0: create only, fail if the record exists.
   * n > 0: the record must exist with revision n.
   */
  ifRevision?: number | null | undefined;
  /** Admins only; extension callers write to their own install. */
  installId?: string | number | null | undefined;
  key: string;
  /** Must be a JSON object. */
  metadata?: unknown;
  namespace: string;
  /** Validate against this schema version instead of the active one. */
  schemaVersion?: number | null | undefined;
  /** Seconds until the record expires; omitted means it never expires. */
  ttlSeconds?: number | null | undefined;
  value: unknown;
};

export type StorageErrorCode =
  | 'FORBIDDEN'
  | 'INTERNAL'
  | 'LIMIT_EXCEEDED'
  | 'NOT_FOUND'
  | 'QUOTA_EXCEEDED'
  | 'RATE_LIMITED'
  | 'REVISION_MISMATCH'
  | 'UNAUTHENTICATED'
  | 'VALIDATION_FAILED';

export type BulkPutRecordsMutationVariables = Exact<{
  input: BulkPutRecordsInput;
}>;


export type BulkPutRecordsMutation = { bulkPutRecords:
    | { __typename: 'BulkPutRecordsSuccess', records: Array<{ namespace: string, key: string, value: unknown, metadata: unknown, revision: number, schemaVersion: number | null, ttlExpiresAt: string | null, createdAt: string, updatedAt: string }> }
    | { __typename: 'LimitExceeded', limit: string, max: number | null, actual: number | null, itemIndex: number | null, code: StorageErrorCode, message: string }
    | { __typename: 'QuotaExceeded', quota: string, allowed: number, used: number, itemIndex: number | null, code: StorageErrorCode, message: string }
    | { __typename: 'RevisionMismatch', namespace: string, key: string, expectedRevision: number, currentRevision: number | null, code: StorageErrorCode, message: string }
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

export type StorageRecordFragment = { namespace: string, key: string, value: unknown, metadata: unknown, revision: number, schemaVersion: number | null, ttlExpiresAt: string | null, createdAt: string, updatedAt: string };

type StorageErrorFields_LimitExceeded_Fragment = { __typename: 'LimitExceeded', limit: string, max: number | null, actual: number | null, itemIndex: number | null, code: StorageErrorCode, message: string };

type StorageErrorFields_QuotaExceeded_Fragment = { __typename: 'QuotaExceeded', quota: string, allowed: number, used: number, itemIndex: number | null, code: StorageErrorCode, message: string };

type StorageErrorFields_RevisionMismatch_Fragment = { __typename: 'RevisionMismatch', namespace: string, key: string, expectedRevision: number, currentRevision: number | null, code: StorageErrorCode, message: string };

type StorageErrorFields_ValidationFailed_Fragment = { __typename: 'ValidationFailed', schemaVersion: number | null, code: StorageErrorCode, message: string, issues: Array<{ path: string, message: string, keyword: string }> };

export type StorageErrorFieldsFragment =
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


export type GetRecordQuery = { record: { namespace: string, key: string, value: unknown, metadata: unknown, revision: number, schemaVersion: number | null, ttlExpiresAt: string | null, createdAt: string, updatedAt: string } | null };

export type GetRecordsQueryVariables = Exact<{
  namespace: string;
  keys: Array<string> | string;
  installId?: string | number | null | undefined;
}>;


export type GetRecordsQuery = { records: Array<{ namespace: string, key: string, value: unknown, metadata: unknown, revision: number, schemaVersion: number | null, ttlExpiresAt: string | null, createdAt: string, updatedAt: string } | null> };

export type ListRecordsQueryVariables = Exact<{
  namespace: string;
  prefix?: string | null | undefined;
  first?: number | null | undefined;
  after?: string | null | undefined;
  installId?: string | number | null | undefined;
}>;


export type ListRecordsQuery = { recordList: { edges: Array<{ node: { namespace: string, key: string, value: unknown, metadata: unknown, revision: number, schemaVersion: number | null, ttlExpiresAt: string | null, createdAt: string, updatedAt: string } }>, pageInfo: { hasNextPage: boolean, endCursor: string | null } } };

export type PutRecordMutationVariables = Exact<{
  input: PutRecordInput;
}>;


export type PutRecordMutation = { putRecord:
    | { __typename: 'LimitExceeded', limit: string, max: number | null, actual: number | null, itemIndex: number | null, code: StorageErrorCode, message: string }
    | { __typename: 'PutRecordSuccess', record: { namespace: string, key: string, value: unknown, metadata: unknown, revision: number, schemaVersion: number | null, ttlExpiresAt: string | null, createdAt: string, updatedAt: string } }
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
}`) as unknown as TypedDocumentString<BulkPutRecordsMutation, BulkPutRecordsMutationVariables>;
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
}`) as unknown as TypedDocumentString<DeleteRecordMutation, DeleteRecordMutationVariables>;
export const GetRecordDocument = new TypedDocumentString(`
    query GetRecord($namespace: String!, $key: String!, $installId: ID) {
  record(namespace: $namespace, key: $key, installId: $installId) {
    ...StorageRecord
  }
}
    fragment StorageRecord on Record {
  namespace
  key
  value
  metadata
  revision
  schemaVersion
  ttlExpiresAt
  createdAt
  updatedAt
}`) as unknown as TypedDocumentString<GetRecordQuery, GetRecordQueryVariables>;
export const GetRecordsDocument = new TypedDocumentString(`
    query GetRecords($namespace: String!, $keys: [String!]!, $installId: ID) {
  records(namespace: $namespace, keys: $keys, installId: $installId) {
    ...StorageRecord
  }
}
    fragment StorageRecord on Record {
  namespace
  key
  value
  metadata
  revision
  schemaVersion
  ttlExpiresAt
  createdAt
  updatedAt
}`) as unknown as TypedDocumentString<GetRecordsQuery, GetRecordsQueryVariables>;
export const ListRecordsDocument = new TypedDocumentString(`
    query ListRecords($namespace: String!, $prefix: String, $first: Int, $after: String, $installId: ID) {
  recordList(
    namespace: $namespace
    prefix: $prefix
    first: $first
    after: $after
    installId: $installId
  ) {
    edges {
      node {
        ...StorageRecord
      }
    }
    pageInfo {
      hasNextPage
      endCursor
    }
  }
}
    fragment StorageRecord on Record {
  namespace
  key
  value
  metadata
  revision
  schemaVersion
  ttlExpiresAt
  createdAt
  updatedAt
}`) as unknown as TypedDocumentString<ListRecordsQuery, ListRecordsQueryVariables>;
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
}`) as unknown as TypedDocumentString<PutRecordMutation, PutRecordMutationVariables>;