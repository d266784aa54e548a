/* eslint-disable */
import * as types from './graphql.js';



/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "mutation BulkPutRecords($input: BulkPutRecordsInput!) {\n  bulkPutRecords(input: $input) {\n    __typename\n    ... on BulkPutRecordsSuccess {\n      records {\n        ...StorageRecord\n      }\n    }\n    ... on StorageError {\n      ...StorageErrorFields\n    }\n  }\n}": typeof types.BulkPutRecordsDocument,
    "query Changes($namespace: String, $prefix: String, $after: String, $first: Int, $installId: ID) {\n  changes(\n    namespace: $namespace\n    prefix: $prefix\n    after: $after\n    first: $first\n    installId: $installId\n  ) {\n    __typename\n    edges {\n      cursor\n      node {\n        ...StorageChange\n      }\n    }\n    pageInfo {\n      hasNextPage\n      endCursor\n      hasPreviousPage\n      startCursor\n    }\n  }\n}\n\nquery ChangesCursor($installId: ID) {\n  install(id: $installId) {\n    __typename\n    id\n    changesCursor\n  }\n}\n\nfragment StorageChange on Change {\n  __typename\n  cursor\n  at\n  operation\n  namespace\n  key\n  revision\n  actor\n  record {\n    ...StorageRecord\n  }\n}\n\nsubscription WatchChanges($namespace: String, $prefix: String, $after: String, $installId: ID) {\n  changes(\n    namespace: $namespace\n    prefix: $prefix\n    after: $after\n    installId: $installId\n  ) {\n    cursor\n    at\n    operation\n    namespace\n    key\n    revision\n    actor\n    record {\n      __typename\n      id\n      installId\n      namespace\n      key\n      value\n      metadata\n      revision\n      schemaVersion\n      ttlExpiresAt\n      createdAt\n      updatedAt\n    }\n  }\n}": typeof types.ChangesDocument,
    "mutation Commit($input: CommitInput!) {\n  commit(input: $input) {\n    __typename\n    ... on CommitSuccess {\n      records {\n        ...StorageRecord\n      }\n      committed\n      cursor\n    }\n    ... on CommitConflict {\n      code\n      message\n      conflicts {\n        index\n        namespace\n        key\n        expectedRevision\n        currentRevision\n      }\n    }\n    ... on StorageError {\n      ...StorageErrorFields\n    }\n  }\n}": typeof types.CommitDocument,
    "mutation DeleteRecord($input: DeleteRecordInput!) {\n  deleteRecord(input: $input) {\n    __typename\n    ... on DeleteRecordSuccess {\n      namespace\n      key\n      deleted\n    }\n    ... on StorageError {\n      ...StorageErrorFields\n    }\n  }\n}": typeof types.DeleteRecordDocument,
    "fragment StorageRecord on Record {\n  __typename\n  id\n  installId\n  namespace\n  key\n  value\n  metadata\n  revision\n  schemaVersion\n  ttlExpiresAt\n  createdAt\n  updatedAt\n}\n\nfragment StorageErrorFields on StorageError {\n  __typename\n  code\n  message\n  ... on RevisionMismatch {\n    namespace\n    key\n    expectedRevision\n    currentRevision\n  }\n  ... on QuotaExceeded {\n    quota\n    allowed\n    used\n    itemIndex\n  }\n  ... on LimitExceeded {\n    limit\n    max\n    actual\n    itemIndex\n  }\n  ... on ValidationFailed {\n    schemaVersion\n    issues {\n      path\n      message\n      keyword\n    }\n  }\n}": typeof types.StorageRecordFragmentDoc,
    "query GetRecord($namespace: String!, $key: String!, $installId: ID) {\n  record(namespace: $namespace, key: $key, installId: $installId) {\n    ...StorageRecord\n  }\n}": typeof types.GetRecordDocument,
    "query GetRecords($namespace: String!, $keys: [String!]!, $installId: ID) {\n  records(namespace: $namespace, keys: $keys, installId: $installId) {\n    ...StorageRecord\n  }\n}": typeof types.GetRecordsDocument,
    "mutation IncrementRecord($input: IncrementRecordInput!) {\n  incrementRecord(input: $input) {\n    __typename\n    ... on PutRecordSuccess {\n      record {\n        ...StorageRecord\n      }\n    }\n    ... on StorageError {\n      ...StorageErrorFields\n    }\n  }\n}": typeof types.IncrementRecordDocument,
    "query ListRecords($namespace: String!, $prefix: String, $first: Int, $after: String, $installId: ID) {\n  recordList(\n    namespace: $namespace\n    prefix: $prefix\n    first: $first\n    after: $after\n    installId: $installId\n  ) {\n    __typename\n    edges {\n      cursor\n      node {\n        ...StorageRecord\n      }\n    }\n    pageInfo {\n      hasNextPage\n      endCursor\n      hasPreviousPage\n      startCursor\n    }\n  }\n}": typeof types.ListRecordsDocument,
    "mutation PutRecord($input: PutRecordInput!) {\n  putRecord(input: $input) {\n    __typename\n    ... on PutRecordSuccess {\n      record {\n        ...StorageRecord\n      }\n    }\n    ... on StorageError {\n      ...StorageErrorFields\n    }\n  }\n}": typeof types.PutRecordDocument,
};
const documents: Documents = {
    "mutation BulkPutRecords($input: BulkPutRecordsInput!) {\n  bulkPutRecords(input: $input) {\n    __typename\n    ... on BulkPutRecordsSuccess {\n      records {\n        ...StorageRecord\n      }\n    }\n    ... on StorageError {\n      ...StorageErrorFields\n    }\n  }\n}": types.BulkPutRecordsDocument,
    "query Changes($namespace: String, $prefix: String, $after: String, $first: Int, $installId: ID) {\n  changes(\n    namespace: $namespace\n    prefix: $prefix\n    after: $after\n    first: $first\n    installId: $installId\n  ) {\n    __typename\n    edges {\n      cursor\n      node {\n        ...StorageChange\n      }\n    }\n    pageInfo {\n      hasNextPage\n      endCursor\n      hasPreviousPage\n      startCursor\n    }\n  }\n}\n\nquery ChangesCursor($installId: ID) {\n  install(id: $installId) {\n    __typename\n    id\n    changesCursor\n  }\n}\n\nfragment StorageChange on Change {\n  __typename\n  cursor\n  at\n  operation\n  namespace\n  key\n  revision\n  actor\n  record {\n    ...StorageRecord\n  }\n}\n\nsubscription WatchChanges($namespace: String, $prefix: String, $after: String, $installId: ID) {\n  changes(\n    namespace: $namespace\n    prefix: $prefix\n    after: $after\n    installId: $installId\n  ) {\n    cursor\n    at\n    operation\n    namespace\n    key\n    revision\n    actor\n    record {\n      __typename\n      id\n      installId\n      namespace\n      key\n      value\n      metadata\n      revision\n      schemaVersion\n      ttlExpiresAt\n      createdAt\n      updatedAt\n    }\n  }\n}": types.ChangesDocument,
    "mutation Commit($input: CommitInput!) {\n  commit(input: $input) {\n    __typename\n    ... on CommitSuccess {\n      records {\n        ...StorageRecord\n      }\n      committed\n      cursor\n    }\n    ... on CommitConflict {\n      code\n      message\n      conflicts {\n        index\n        namespace\n        key\n        expectedRevision\n        currentRevision\n      }\n    }\n    ... on StorageError {\n      ...StorageErrorFields\n    }\n  }\n}": types.CommitDocument,
    "mutation DeleteRecord($input: DeleteRecordInput!) {\n  deleteRecord(input: $input) {\n    __typename\n    ... on DeleteRecordSuccess {\n      namespace\n      key\n      deleted\n    }\n    ... on StorageError {\n      ...StorageErrorFields\n    }\n  }\n}": types.DeleteRecordDocument,
    "fragment StorageRecord on Record {\n  __typename\n  id\n  installId\n  namespace\n  key\n  value\n  metadata\n  revision\n  schemaVersion\n  ttlExpiresAt\n  createdAt\n  updatedAt\n}\n\nfragment StorageErrorFields on StorageError {\n  __typename\n  code\n  message\n  ... on RevisionMismatch {\n    namespace\n    key\n    expectedRevision\n    currentRevision\n  }\n  ... on QuotaExceeded {\n    quota\n    allowed\n    used\n    itemIndex\n  }\n  ... on LimitExceeded {\n    limit\n    max\n    actual\n    itemIndex\n  }\n  ... on ValidationFailed {\n    schemaVersion\n    issues {\n      path\n      message\n      keyword\n    }\n  }\n}": types.StorageRecordFragmentDoc,
    "query GetRecord($namespace: String!, $key: String!, $installId: ID) {\n  record(namespace: $namespace, key: $key, installId: $installId) {\n    ...StorageRecord\n  }\n}": types.GetRecordDocument,
    "query GetRecords($namespace: String!, $keys: [String!]!, $installId: ID) {\n  records(namespace: $namespace, keys: $keys, installId: $installId) {\n    ...StorageRecord\n  }\n}": types.GetRecordsDocument,
    "mutation IncrementRecord($input: IncrementRecordInput!) {\n  incrementRecord(input: $input) {\n    __typename\n    ... on PutRecordSuccess {\n      record {\n        ...StorageRecord\n      }\n    }\n    ... on StorageError {\n      ...StorageErrorFields\n    }\n  }\n}": types.IncrementRecordDocument,
    "query ListRecords($namespace: String!, $prefix: String, $first: Int, $after: String, $installId: ID) {\n  recordList(\n    namespace: $namespace\n    prefix: $prefix\n    first: $first\n    after: $after\n    installId: $installId\n  ) {\n    __typename\n    edges {\n      cursor\n      node {\n        ...StorageRecord\n      }\n    }\n    pageInfo {\n      hasNextPage\n      endCursor\n      hasPreviousPage\n      startCursor\n    }\n  }\n}": types.ListRecordsDocument,
    "mutation PutRecord($input: PutRecordInput!) {\n  putRecord(input: $input) {\n    __typename\n    ... on PutRecordSuccess {\n      record {\n        ...StorageRecord\n      }\n    }\n    ... on StorageError {\n      ...StorageErrorFields\n    }\n  }\n}": types.PutRecordDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation BulkPutRecords($input: BulkPutRecordsInput!) {\n  bulkPutRecords(input: $input) {\n    __typename\n    ... on BulkPutRecordsSuccess {\n      records {\n        ...StorageRecord\n      }\n    }\n    ... on StorageError {\n      ...StorageErrorFields\n    }\n  }\n}"): typeof import('./graphql.js').BulkPutRecordsDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "query Changes($namespace: String, $prefix: String, $after: String, $first: Int, $installId: ID) {\n  changes(\n    namespace: $namespace\n    prefix: $prefix\n    after: $after\n    first: $first\n    installId: $installId\n  ) {\n    __typename\n    edges {\n      cursor\n      node {\n        ...StorageChange\n      }\n    }\n    pageInfo {\n      hasNextPage\n      endCursor\n      hasPreviousPage\n      startCursor\n    }\n  }\n}\n\nquery ChangesCursor($installId: ID) {\n  install(id: $installId) {\n    __typename\n    id\n    changesCursor\n  }\n}\n\nfragment StorageChange on Change {\n  __typename\n  cursor\n  at\n  operation\n  namespace\n  key\n  revision\n  actor\n  record {\n    ...StorageRecord\n  }\n}\n\nsubscription WatchChanges($namespace: String, $prefix: String, $after: String, $installId: ID) {\n  changes(\n    namespace: $namespace\n    prefix: $prefix\n    after: $after\n    installId: $installId\n  ) {\n    cursor\n    at\n    operation\n    namespace\n    key\n    revision\n    actor\n    record {\n      __typename\n      id\n      installId\n      namespace\n      key\n      value\n      metadata\n      revision\n      schemaVersion\n      ttlExpiresAt\n      createdAt\n      updatedAt\n    }\n  }\n}"): typeof import('./graphql.js').ChangesDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation Commit($input: CommitInput!) {\n  commit(input: $input) {\n    __typename\n    ... on CommitSuccess {\n      records {\n        ...StorageRecord\n      }\n      committed\n      cursor\n    }\n    ... on CommitConflict {\n      code\n      message\n      conflicts {\n        index\n        namespace\n        key\n        expectedRevision\n        currentRevision\n      }\n    }\n    ... on StorageError {\n      ...StorageErrorFields\n    }\n  }\n}"): typeof import('./graphql.js').CommitDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation DeleteRecord($input: DeleteRecordInput!) {\n  deleteRecord(input: $input) {\n    __typename\n    ... on DeleteRecordSuccess {\n      namespace\n      key\n      deleted\n    }\n    ... on StorageError {\n      ...StorageErrorFields\n    }\n  }\n}"): typeof import('./graphql.js').DeleteRecordDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "fragment StorageRecord on Record {\n  __typename\n  id\n  installId\n  namespace\n  key\n  value\n  metadata\n  revision\n  schemaVersion\n  ttlExpiresAt\n  createdAt\n  updatedAt\n}\n\nfragment StorageErrorFields on StorageError {\n  __typename\n  code\n  message\n  ... on RevisionMismatch {\n    namespace\n    key\n    expectedRevision\n    currentRevision\n  }\n  ... on QuotaExceeded {\n    quota\n    allowed\n    used\n    itemIndex\n  }\n  ... on LimitExceeded {\n    limit\n    max\n    actual\n    itemIndex\n  }\n  ... on ValidationFailed {\n    schemaVersion\n    issues {\n      path\n      message\n      keyword\n    }\n  }\n}"): typeof import('./graphql.js').StorageRecordFragmentDoc;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "query GetRecord($namespace: String!, $key: String!, $installId: ID) {\n  record(namespace: $namespace, key: $key, installId: $installId) {\n    ...StorageRecord\n  }\n}"): typeof import('./graphql.js').GetRecordDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "query GetRecords($namespace: String!, $keys: [String!]!, $installId: ID) {\n  records(namespace: $namespace, keys: $keys, installId: $installId) {\n    ...StorageRecord\n  }\n}"): typeof import('./graphql.js').GetRecordsDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation IncrementRecord($input: IncrementRecordInput!) {\n  incrementRecord(input: $input) {\n    __typename\n    ... on PutRecordSuccess {\n      record {\n        ...StorageRecord\n      }\n    }\n    ... on StorageError {\n      ...StorageErrorFields\n    }\n  }\n}"): typeof import('./graphql.js').IncrementRecordDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "query ListRecords($namespace: String!, $prefix: String, $first: Int, $after: String, $installId: ID) {\n  recordList(\n    namespace: $namespace\n    prefix: $prefix\n    first: $first\n    after: $after\n    installId: $installId\n  ) {\n    __typename\n    edges {\n      cursor\n      node {\n        ...StorageRecord\n      }\n    }\n    pageInfo {\n      hasNextPage\n      endCursor\n      hasPreviousPage\n      startCursor\n    }\n  }\n}"): typeof import('./graphql.js').ListRecordsDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation PutRecord($input: PutRecordInput!) {\n  putRecord(input: $input) {\n    __typename\n    ... on PutRecordSuccess {\n      record {\n        ...StorageRecord\n      }\n    }\n    ... on StorageError {\n      ...StorageErrorFields\n    }\n  }\n}"): typeof import('./graphql.js').PutRecordDocument;


export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}
