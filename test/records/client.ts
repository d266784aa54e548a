/** GraphQL documents and a small per-install client shared by the record contract tests. */
import { expect } from 'vitest';
import { dataOf, type AuditEventView, type GqlResult, type TestApp, type TestInstall, type UsageView } from '../support/app.js';

export const RECORD_FIELDS = 'namespace key value metadata revision schemaVersion ttlExpiresAt createdAt updatedAt';

const ERROR_FIELDS = `
  ... on RevisionMismatch { code message namespace key expectedRevision currentRevision }
  ... on LimitExceeded { code message limit max actual itemIndex }
  ... on QuotaExceeded { code message quota allowed used itemIndex }
  ... on ValidationFailed { code message schemaVersion issues { path message keyword } }`;

export const PUT = `mutation Put($input: PutRecordInput!) {
  putRecord(input: $input) { __typename ... on PutRecordSuccess { record { ${RECORD_FIELDS} } } ${ERROR_FIELDS} }
}`;

export const BULK = `mutation Bulk($input: BulkPutRecordsInput!) {
  bulkPutRecords(input: $input) { __typename ... on BulkPutRecordsSuccess { records { ${RECORD_FIELDS} } } ${ERROR_FIELDS} }
}`;

export const DELETE = `mutation Delete($input: DeleteRecordInput!) {
  deleteRecord(input: $input) {
    __typename
    ... on DeleteRecordSuccess { namespace key deleted }
    ... on RevisionMismatch { code message namespace key expectedRevision currentRevision }
    ... on LimitExceeded { code message limit max actual itemIndex }
  }
}`;

export const GET = `query Get($ns: String!, $key: String!, $installId: ID) {
  record(namespace: $ns, key: $key, installId: $installId) { ${RECORD_FIELDS} }
}`;

export const GET_MANY = `query GetMany($ns: String!, $keys: [String!]!, $installId: ID) {
  records(namespace: $ns, keys: $keys, installId: $installId) { ${RECORD_FIELDS} }
}`;

export const LIST = `query List($ns: String!, $prefix: String, $first: Int, $after: String, $installId: ID) {
  recordList(namespace: $ns, prefix: $prefix, first: $first, after: $after, installId: $installId) {
    edges { cursor node { key value revision } }
    pageInfo { hasNextPage endCursor }
  }
}`;

export const NESTED_LIST = `query NestedList($ns: String!, $prefix: String, $first: Int, $after: String, $installId: ID) {
  install(id: $installId) {
    namespace(name: $ns) {
      recordList(prefix: $prefix, first: $first, after: $after) {
        edges { cursor node { key value revision } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
}`;

export const USAGE = `query Usage($ns: String!, $installId: ID) {
  install(id: $installId) { usage { namespaces keys bytes } namespace(name: $ns) { keyCount bytesUsed } }
}`;

export const AUDIT = `query Audit($id: ID!) {
  install(id: $id) { auditLog(first: 100) { edges { node { actor operation namespace key revision bytesDelta } } } }
}`;

/** A result-union member or a record, loosely typed: the tests assert its shape. */
export type Result = { __typename: string } & Record<string, any>;

export interface PageResult {
  edges: Array<{ cursor: string; node: { key: string; value: unknown; revision: number } }>;
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

/** This file's AUDIT query selects no id or time. */
export type AuditEventResult = Omit<AuditEventView, 'id' | 'at'>;

export { dataOf };

/** Asserts a GraphQL response carries exactly one error and returns its extensions. */
export function errorOf(res: GqlResult): { message: string; extensions: Record<string, any> } {
  expect(res.body.errors, JSON.stringify(res.body)).toHaveLength(1);
  const error = res.body.errors![0]!;
  return { message: error.message, extensions: error.extensions ?? {} };
}

/** One install seen through its extension token (storage:read storage:write). */
export interface ExtensionClient {
  install: TestInstall;
  token: string;
  gql(query: string, variables?: Record<string, unknown>): Promise<GqlResult>;
  put(input: Record<string, unknown>): Promise<Result>;
  bulk(namespace: string, items: Array<Record<string, unknown>>): Promise<Result>;
  del(input: Record<string, unknown>): Promise<Result>;
  get(namespace: string, key: string): Promise<Result | null>;
  getMany(namespace: string, keys: string[]): Promise<Array<Result | null>>;
  list(namespace: string, args?: { prefix?: string; first?: number; after?: string }): Promise<PageResult>;
  usage(namespace: string): Promise<UsageView>;
}

export async function extensionClient(t: TestApp, opts: Parameters<TestApp['createInstall']>[0] = {}): Promise<ExtensionClient> {
  const install = await t.createInstall(opts);
  const token = await install.token();
  const gql = (query: string, variables: Record<string, unknown> = {}) => t.gql(query, variables, { token });
  return {
    install,
    token,
    gql,
    put: async (input) => dataOf(await gql(PUT, { input })).putRecord,
    bulk: async (namespace, items) => dataOf(await gql(BULK, { input: { namespace, items } })).bulkPutRecords,
    del: async (input) => dataOf(await gql(DELETE, { input })).deleteRecord,
    get: async (ns, key) => dataOf(await gql(GET, { ns, key })).record,
    getMany: async (ns, keys) => dataOf(await gql(GET_MANY, { ns, keys })).records,
    list: async (ns, args = {}) => dataOf(await gql(LIST, { ns, ...args })).recordList,
    usage: async (ns) => dataOf(await gql(USAGE, { ns })).install,
  };
}

/** The install's audit events, newest first, read by an admin of its tenant. */
export async function auditEvents(t: TestApp, install: TestInstall): Promise<AuditEventResult[]> {
  const res = await t.gql(AUDIT, { id: install.id }, { token: await t.adminToken(install.tenantId) });
  return dataOf(res).install.auditLog.edges.map((e: { node: AuditEventResult }) => e.node);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
