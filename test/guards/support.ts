/** GraphQL documents and small clients shared by the guard tests (quotas, schemas, audit, limits). */
import { request } from 'node:http';
import { dataOf, type AuditEventView, type GqlResult, type TestApp, type TestInstall, type UsageView } from '../support/app.js';

const RECORD = 'namespace key value metadata revision schemaVersion ttlExpiresAt';
const FAILURES = `
  ... on RevisionMismatch { code namespace key expectedRevision currentRevision }
  ... on LimitExceeded { code limit max actual itemIndex }
  ... on QuotaExceeded { code quota allowed used itemIndex }
  ... on ValidationFailed { code schemaVersion issues { path message keyword } }`;

export const PUT = `mutation Put($input: PutRecordInput!) {
  putRecord(input: $input) { __typename ... on PutRecordSuccess { record { ${RECORD} } } ${FAILURES} }
}`;

export const BULK = `mutation Bulk($input: BulkPutRecordsInput!) {
  bulkPutRecords(input: $input) { __typename ... on BulkPutRecordsSuccess { records { ${RECORD} } } ${FAILURES} }
}`;

export const DELETE = `mutation Delete($input: DeleteRecordInput!) {
  deleteRecord(input: $input) {
    __typename
    ... on DeleteRecordSuccess { deleted }
    ... on RevisionMismatch { code currentRevision }
    ... on LimitExceeded { code limit }
  }
}`;

export const RECORDS = `query Records($ns: String!, $keys: [String!]!, $installId: ID) {
  records(namespace: $ns, keys: $keys, installId: $installId) { ${RECORD} }
}`;

export const LIST = `query List($ns: String!, $after: String, $installId: ID) {
  recordList(namespace: $ns, first: 100, after: $after, installId: $installId) {
    edges { node { key value metadata } }
    pageInfo { hasNextPage endCursor }
  }
}`;

export const USAGE = `query Usage($ns: String!, $installId: ID) {
  install(id: $installId) { usage { namespaces keys bytes } namespace(name: $ns) { keyCount bytesUsed } }
}`;

export const INSTALL_FIELDS = 'id enabled capabilities { read write namespaces } quota { maxNamespaces maxKeysPerNamespace maxBytes maxValueBytes maxMetadataBytes }';

export const UPSERT_INSTALL = `mutation Upsert($input: UpsertInstallInput!) { upsertInstall(input: $input) { ${INSTALL_FIELDS} } }`;

export const SET_SCHEMA = `mutation SetSchema($input: SetNamespaceSchemaInput!) {
  setNamespaceSchema(input: $input) {
    __typename
    ... on SetNamespaceSchemaSuccess { schema { version schema createdAt } }
    ... on LimitExceeded { code limit }
    ... on ValidationFailed { code schemaVersion issues { path message keyword } }
  }
}`;

export const AUDIT_PAGE = `query Audit($id: ID!, $first: Int, $after: String) {
  install(id: $id) {
    auditLog(first: $first, after: $after) {
      edges { cursor node { id at actor operation namespace key revision bytesDelta } }
      pageInfo { hasNextPage endCursor }
    }
  }
}`;

export type Result = { __typename: string } & Record<string, any>;

export { dataOf, type AuditEventView, type UsageView };

/** The extension codes of a response's errors. */
export function errorCodes(res: GqlResult): string[] {
  return (res.body.errors ?? []).map((e) => String(e.extensions?.code));
}

/** Stored bytes of a record as the contract defines them: compact JSON UTF-8 bytes of value plus metadata. */
export function storedBytes(value: unknown, metadata: unknown = {}): number {
  return Buffer.byteLength(JSON.stringify(value), 'utf8') + Buffer.byteLength(JSON.stringify(metadata ?? {}), 'utf8');
}

/** One install, driven through its own extension token. */
export interface Extension {
  install: TestInstall;
  token: string;
  gql(query: string, variables?: Record<string, unknown>): Promise<GqlResult>;
  put(input: Record<string, unknown>): Promise<Result>;
  bulk(namespace: string, items: Array<Record<string, unknown>>): Promise<Result>;
  del(namespace: string, key: string): Promise<Result>;
  records(namespace: string, keys: string[]): Promise<Array<Record<string, any> | null>>;
  /** Every live record of a namespace (value and metadata), through paging. */
  all(namespace: string): Promise<Array<{ key: string; value: unknown; metadata: unknown }>>;
  usage(namespace: string): Promise<UsageView>;
}

export async function extension(t: TestApp, opts: Parameters<TestApp['createInstall']>[0] = {}): Promise<Extension> {
  const install = await t.createInstall(opts);
  const token = await install.token();
  const gql = (query: string, variables: Record<string, unknown> = {}) => t.gql(query, variables, { token });
  return {
    install,
    token,
    gql,
    put: async (input) => dataOf(await gql(PUT, { input })).putRecord,
    bulk: async (namespace, items) => dataOf(await gql(BULK, { input: { namespace, items } })).bulkPutRecords,
    del: async (namespace, key) => dataOf(await gql(DELETE, { input: { namespace, key } })).deleteRecord,
    records: async (ns, keys) => dataOf(await gql(RECORDS, { ns, keys })).records,
    async all(ns) {
      const out: Array<{ key: string; value: unknown; metadata: unknown }> = [];
      let after: string | null = null;
      for (;;) {
        const page: any = dataOf(await gql(LIST, { ns, after })).recordList;
        out.push(...page.edges.map((e: { node: { key: string; value: unknown; metadata: unknown } }) => e.node));
        if (!page.pageInfo.hasNextPage) return out;
        after = page.pageInfo.endCursor;
      }
    },
    usage: async (ns) => dataOf(await gql(USAGE, { ns })).install,
  };
}

/** Every audit event of an install, newest first, read by an admin of its tenant. */
export async function auditEvents(t: TestApp, installId: string, tenantId = t.tenantId): Promise<AuditEventView[]> {
  const res = await t.gql(AUDIT_PAGE, { id: installId, first: 100 }, { token: await t.adminToken(tenantId) });
  return dataOf(res).install.auditLog.edges.map((e: { node: AuditEventView }) => e.node);
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  ms: number;
}

/**
 * POSTs a raw body with node:http and resolves as soon as the response is complete, even when the
 * server answers (and closes the connection) before the upload has finished. `chunked` sends no
 * Content-Length, so the server must count the bytes as they arrive.
 */
export function rawPost(url: string, body: Buffer, opts: { chunked?: boolean; token?: string } = {}): Promise<RawResponse> {
  const started = performance.now();
  const framing = opts.chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(body.length) };
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request(
      url,
      { method: 'POST', headers: { 'content-type': 'application/json', ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...framing } },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - started });
          req.destroy();
        });
        res.on('error', (e) => (answered ? undefined : reject(e)));
      },
    );
    // The server may close the socket mid-upload once it has refused the body: not an error here.
    req.on('error', (e) => (answered ? undefined : reject(e)));
    req.end(body);
  });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
