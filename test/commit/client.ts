/**
 * GraphQL documents and helpers for the commit and counter contract tests (docs/api.md,
 * "Transactions: commit" and "Counters"). The documents are written by hand against
 * contract/schema.graphql, so they test the contract, not whatever the code happens to print.
 */
import { expect } from 'vitest';
import { dataOf, type GqlResult, type TestApp, type TestInstall } from '../support/app.js';
import { auditEvents, extensionClient, RECORD_FIELDS, type AuditEventResult, type ExtensionClient, type Result } from '../records/client.js';

export { auditEvents, dataOf, type AuditEventResult, type Result };

const LIMIT = '... on LimitExceeded { code message limit max actual itemIndex }';
const QUOTA = '... on QuotaExceeded { code message quota allowed used itemIndex }';
const INVALID = '... on ValidationFailed { code message schemaVersion issues { path message keyword } }';

export const COMMIT = `mutation Commit($input: CommitInput!) {
  commit(input: $input) {
    __typename
    ... on CommitSuccess { records { ${RECORD_FIELDS} } committed cursor }
    ... on CommitConflict { code message conflicts { index namespace key expectedRevision currentRevision } }
    ${QUOTA}
    ${LIMIT}
    ${INVALID}
  }
}`;

export const INCREMENT = `mutation Increment($input: IncrementRecordInput!) {
  incrementRecord(input: $input) {
    __typename
    ... on PutRecordSuccess { record { ${RECORD_FIELDS} } }
    ${QUOTA}
    ${LIMIT}
    ${INVALID}
  }
}`;

export const SET_SCHEMA = `mutation SetSchema($input: SetNamespaceSchemaInput!) {
  setNamespaceSchema(input: $input) {
    __typename
    ... on SetNamespaceSchemaSuccess { schema { version } }
    ... on LimitExceeded { code limit }
    ... on ValidationFailed { code issues { path message } }
  }
}`;

const ALL_RECORDS = `query All($ns: String!, $after: String) {
  recordList(namespace: $ns, first: 100, after: $after) {
    edges { node { key value metadata revision } }
    pageInfo { hasNextPage endCursor }
  }
}`;

const INSTALL_STATE = `query State {
  install { usage { namespaces keys bytes } namespaces { name keyCount bytesUsed } }
}`;

// ------------------------------------------------------------------------- operations and checks

export interface CheckInput {
  namespace: string;
  key: string;
  revision: number;
}
export type OperationInput = { put: Record<string, unknown> } | { delete: Record<string, unknown> } | { increment: Record<string, unknown> };

export const check = (namespace: string, key: string, revision: number): CheckInput => ({ namespace, key, revision });
export const put = (namespace: string, key: string, value: unknown, extra: { metadata?: unknown; ttlSeconds?: number; schemaVersion?: number } = {}): OperationInput => ({
  put: { namespace, key, value, ...extra },
});
export const del = (namespace: string, key: string): OperationInput => ({ delete: { namespace, key } });
export const inc = (namespace: string, key: string, by: number, ttlSeconds?: number): OperationInput => ({
  increment: ttlSeconds === undefined ? { namespace, key, by } : { namespace, key, by, ttlSeconds },
});

export interface CommitArgs {
  checks?: CheckInput[];
  operations: OperationInput[];
  dryRun?: boolean;
  installId?: string;
}

// ------------------------------------------------------------------------------------ the client

/** An extension client that also commits and increments. */
export interface CommitClient extends ExtensionClient {
  /** The raw GraphQL response of a commit (for GraphQL errors such as FORBIDDEN). */
  commitRaw(input: CommitArgs): Promise<GqlResult>;
  commit(input: CommitArgs): Promise<Result>;
  incrementRaw(input: Record<string, unknown>): Promise<GqlResult>;
  increment(input: { namespace: string; key: string; by: number; ttlSeconds?: number }): Promise<Result>;
  /** Every live record of a namespace, by key, read through the API. */
  all(namespace: string): Promise<Array<{ key: string; value: unknown; metadata: unknown; revision: number }>>;
  /** Install usage and every namespace's counters. */
  state(): Promise<InstallState>;
}

export interface InstallState {
  usage: { namespaces: number; keys: number; bytes: number };
  namespaces: Array<{ name: string; keyCount: number; bytesUsed: number }>;
}

export async function commitClient(t: TestApp, opts: Parameters<TestApp['createInstall']>[0] = {}): Promise<CommitClient> {
  const base = await extensionClient(t, opts);
  const commitRaw = (input: CommitArgs) => base.gql(COMMIT, { input });
  const incrementRaw = (input: Record<string, unknown>) => base.gql(INCREMENT, { input });
  return {
    ...base,
    commitRaw,
    commit: async (input) => dataOf(await commitRaw(input)).commit,
    incrementRaw,
    increment: async (input) => dataOf(await incrementRaw(input)).incrementRecord,
    async all(namespace) {
      const out: Array<{ key: string; value: unknown; metadata: unknown; revision: number }> = [];
      let after: string | null = null;
      for (;;) {
        const page: any = dataOf(await base.gql(ALL_RECORDS, { ns: namespace, after })).recordList;
        out.push(...page.edges.map((e: any) => e.node));
        if (!page.pageInfo.hasNextPage) return out;
        after = page.pageInfo.endCursor;
      }
    },
    state: async () => {
      const s = dataOf(await base.gql(INSTALL_STATE)).install as InstallState;
      return { usage: s.usage, namespaces: [...s.namespaces].sort((a, b) => a.name.localeCompare(b.name)) };
    },
  };
}

/** Sets a namespace's JSON Schema as an admin of the install's tenant. */
export async function setSchema(t: TestApp, install: TestInstall, namespace: string, schema: unknown): Promise<number> {
  const res = await t.gql(SET_SCHEMA, { input: { installId: install.id, namespace, schema } }, { token: await t.adminToken(install.tenantId) });
  const out = dataOf(res).setNamespaceSchema;
  expect(out.__typename, JSON.stringify(out)).toBe('SetNamespaceSchemaSuccess');
  return out.schema.version;
}

/** Stored bytes of a record as the contract counts them: compact JSON UTF-8 of value plus metadata ({} when none). */
export function storedBytes(value: unknown, metadata: unknown = {}): number {
  return Buffer.byteLength(JSON.stringify(value), 'utf8') + Buffer.byteLength(JSON.stringify(metadata ?? {}), 'utf8');
}

/**
 * Everything a refused or dry-run commit must leave as it was: the live records of the given
 * namespaces (value, metadata, revision), the install's usage and counters, and its audit log.
 */
export interface Snapshot {
  records: Record<string, Array<{ key: string; value: unknown; metadata: unknown; revision: number }>>;
  state: InstallState;
  audit: AuditEventResult[];
}

export async function snapshot(t: TestApp, c: CommitClient, namespaces: string[]): Promise<Snapshot> {
  const records: Snapshot['records'] = {};
  for (const ns of namespaces) records[ns] = await c.all(ns);
  return { records, state: await c.state(), audit: await auditEvents(t, c.install) };
}

/** Runs tasks with at most `concurrency` in flight at once; results in task order. */
export async function withConcurrency<T>(concurrency: number, tasks: Array<() => Promise<T>>): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, tasks.length) }, worker));
  return results;
}

/** A record without the fields a dry run and the real commit may tell apart (timestamps). */
export function timeless(record: Result | null): Record<string, unknown> | null {
  if (record === null) return null;
  const { createdAt: _c, updatedAt: _u, ttlExpiresAt, ...rest } = record;
  return { ...rest, hasTtl: ttlExpiresAt !== null };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Long enough for a 1-second TTL to pass, measured from the write's response (as in test/records/ttl.test.ts). */
export const PAST_ONE_SECOND = 1300;
