/**
 * The three doors a property test writes through (GraphQL as the extension, GraphQL as an admin
 * of the install's tenant, the Runner's REST protocol), each answer normalised to one `Outcome`
 * so the model can compare them without caring which door was used.
 */
import type { GqlResult, TestApp } from '../support/app.js';

export type Door = 'ext' | 'admin' | 'runner';
export const DOORS: readonly Door[] = ['ext', 'admin', 'runner'];

/** One install as the tests see it, with a credential for each door. */
export interface Actor {
  index: number;
  id: string;
  tenantId: string;
  extToken: string;
  adminToken: string;
}

/** A record as a door reports it. `ttl` is ttlExpiresAt − updatedAt in seconds ('set' when the door gives no updatedAt). */
export interface Observed {
  key: string;
  value?: unknown;
  metadata?: unknown;
  revision: number;
  ttl: number | null | 'set';
  createdAt?: string;
}

export type Outcome =
  | { kind: 'put'; record: Observed }
  | { kind: 'bulk'; records: Observed[] }
  | { kind: 'deleted'; deleted: boolean }
  | { kind: 'get'; record: Observed | null }
  | { kind: 'mismatch'; key: string; expected: number; current: number | null }
  | { kind: 'quota'; quota: string; allowed: number; used: number; itemIndex: number | null }
  | { kind: 'limit'; limit: string; itemIndex: number | null }
  | { kind: 'badInput' }
  | { kind: 'forbidden' }
  | { kind: 'unexpected'; status: number; body: unknown };

export interface PutArgs {
  namespace: string;
  key: string;
  value: unknown;
  metadata?: unknown;
  ttlSeconds?: number | null;
  ifRevision?: number | null;
}

export type BulkItemArgs = Omit<PutArgs, 'namespace'>;

const RECORD = 'key value metadata revision ttlExpiresAt createdAt updatedAt';
const ERRORS = `
  ... on RevisionMismatch { key expectedRevision currentRevision }
  ... on QuotaExceeded { quota allowed used itemIndex }
  ... on LimitExceeded { limit itemIndex }
  ... on ValidationFailed { code message }`;

const PUT = `mutation Put($input: PutRecordInput!) {
  putRecord(input: $input) { __typename ... on PutRecordSuccess { record { ${RECORD} } } ${ERRORS} }
}`;
const BULK = `mutation Bulk($input: BulkPutRecordsInput!) {
  bulkPutRecords(input: $input) { __typename ... on BulkPutRecordsSuccess { records { ${RECORD} } } ${ERRORS} }
}`;
const DELETE = `mutation Delete($input: DeleteRecordInput!) {
  deleteRecord(input: $input) {
    __typename
    ... on DeleteRecordSuccess { deleted }
    ... on RevisionMismatch { key expectedRevision currentRevision }
    ... on LimitExceeded { limit itemIndex }
  }
}`;
const GET = `query Get($ns: String!, $key: String!, $installId: ID) {
  record(namespace: $ns, key: $key, installId: $installId) { ${RECORD} }
}`;
const LIST = `query List($ns: String!, $prefix: String, $first: Int, $after: String, $installId: ID) {
  recordList(namespace: $ns, prefix: $prefix, first: $first, after: $after, installId: $installId) {
    edges { cursor node { ${RECORD} } }
    pageInfo { hasNextPage endCursor }
  }
}`;

export interface UsageView {
  usage: { namespaces: number; keys: number; bytes: number };
  namespaces: Array<{ name: string; keyCount: number; bytesUsed: number }>;
}

function compact<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null)) as T;
}

function ttlOf(r: { ttlExpiresAt?: string | null; updatedAt?: string }): number | null | 'set' {
  if (r.ttlExpiresAt === null || r.ttlExpiresAt === undefined) return null;
  if (!r.updatedAt) return 'set';
  return (Date.parse(r.ttlExpiresAt) - Date.parse(r.updatedAt)) / 1000;
}

function observed(r: Record<string, any>): Observed {
  const o: Observed = { key: r.key, revision: r.revision, ttl: ttlOf(r) };
  if ('value' in r) o.value = r.value;
  if ('metadata' in r) o.metadata = r.metadata;
  if (typeof r.createdAt === 'string') o.createdAt = r.createdAt;
  return o;
}

function fromGraphQL(res: GqlResult, field: string, success: string, ok: (node: any) => Outcome): Outcome {
  const errors = res.body.errors;
  if (errors && errors.length > 0) {
    const code = errors[0]?.extensions?.code;
    if (code === 'BAD_USER_INPUT' && errors.length === 1) return { kind: 'badInput' };
    if (code === 'FORBIDDEN' && errors.length === 1 && res.status === 200) return { kind: 'forbidden' };
    // Query fields report request limits as errors (contract, "Reads").
    if (code === 'LIMIT_EXCEEDED' && errors.length === 1 && res.status === 200) {
      return { kind: 'limit', limit: errors[0]!.extensions!.limit, itemIndex: errors[0]!.extensions!.itemIndex ?? null };
    }
    return { kind: 'unexpected', status: res.status, body: res.body };
  }
  const node = res.body.data?.[field];
  if (res.status !== 200 || node === undefined) return { kind: 'unexpected', status: res.status, body: res.body };
  if (node === null) return ok(node);
  switch (node.__typename) {
    case 'RevisionMismatch':
      return { kind: 'mismatch', key: node.key, expected: node.expectedRevision, current: node.currentRevision };
    case 'QuotaExceeded':
      return { kind: 'quota', quota: node.quota, allowed: node.allowed, used: node.used, itemIndex: node.itemIndex };
    case 'LimitExceeded':
      return { kind: 'limit', limit: node.limit, itemIndex: node.itemIndex };
    case success:
    case undefined:
      return ok(node);
    default:
      return { kind: 'unexpected', status: res.status, body: res.body };
  }
}

interface RunnerResponse {
  status: number;
  body: any;
}

function fromRunner(res: RunnerResponse, ok: (body: any) => Outcome): Outcome {
  const d = res.body?.details;
  const code = res.body?.code;
  if (res.status === 200) return ok(res.body);
  if (res.status === 409 && code === 'REVISION_MISMATCH') {
    return { kind: 'mismatch', key: d.key, expected: d.expectedRevision, current: d.currentRevision };
  }
  if (res.status === 429 && code === 'QUOTA_EXCEEDED') {
    return { kind: 'quota', quota: d.quota, allowed: d.allowed, used: d.used, itemIndex: d.itemIndex };
  }
  if (res.status === 400 && code === 'LIMIT_EXCEEDED') return { kind: 'limit', limit: d.limit, itemIndex: d.itemIndex };
  if (res.status === 400 && code === 'VALIDATION_FAILED' && d === null) return { kind: 'badInput' };
  if (res.status === 403 && code === 'FORBIDDEN') return { kind: 'forbidden' };
  return { kind: 'unexpected', status: res.status, body: res.body };
}

export class Gateway {
  constructor(readonly t: TestApp) {}

  private tokenFor(door: Door, actor: Actor): string {
    return door === 'admin' ? actor.adminToken : actor.extToken;
  }

  private installIdFor(door: Door, actor: Actor): string | undefined {
    return door === 'admin' ? actor.id : undefined;
  }

  async runner(installId: string, body: unknown): Promise<RunnerResponse> {
    const res = await fetch(`${this.t.url}/api/internal/ext-storage/install/${installId}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-runner-auth': this.t.runnerToken },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    try {
      return { status: res.status, body: JSON.parse(text) };
    } catch {
      return { status: res.status, body: { raw: text } };
    }
  }

  async put(door: Door, actor: Actor, args: PutArgs): Promise<Outcome> {
    if (door === 'runner') {
      const res = await this.runner(actor.id, compact({ operation: 'put', ...args }));
      return fromRunner(res, (b) => ({ kind: 'put', record: observed(b) }));
    }
    const input = compact({ ...args, installId: this.installIdFor(door, actor) });
    const res = await this.t.gql(PUT, { input }, { token: this.tokenFor(door, actor) });
    return fromGraphQL(res, 'putRecord', 'PutRecordSuccess', (n) => ({ kind: 'put', record: observed(n.record) }));
  }

  async bulk(door: Door, actor: Actor, namespace: string, items: BulkItemArgs[]): Promise<Outcome> {
    if (door === 'runner') {
      const res = await this.runner(actor.id, { operation: 'bulkPut', namespace, items: items.map((i) => compact(i)) });
      return fromRunner(res, (b) => ({ kind: 'bulk', records: (b.items as any[]).map(observed) }));
    }
    const input = compact({ namespace, items: items.map((i) => compact(i)), installId: this.installIdFor(door, actor) });
    const res = await this.t.gql(BULK, { input }, { token: this.tokenFor(door, actor) });
    return fromGraphQL(res, 'bulkPutRecords', 'BulkPutRecordsSuccess', (n) => ({ kind: 'bulk', records: (n.records as any[]).map(observed) }));
  }

  async del(door: Door, actor: Actor, args: { namespace: string; key: string; ifRevision?: number | null }): Promise<Outcome> {
    if (door === 'runner') {
      const res = await this.runner(actor.id, compact({ operation: 'delete', ...args }));
      return fromRunner(res, (b) => (typeof b.success === 'boolean' ? { kind: 'deleted', deleted: b.success } : { kind: 'unexpected', status: 200, body: b }));
    }
    const input = compact({ ...args, installId: this.installIdFor(door, actor) });
    const res = await this.t.gql(DELETE, { input }, { token: this.tokenFor(door, actor) });
    return fromGraphQL(res, 'deleteRecord', 'DeleteRecordSuccess', (n) => ({ kind: 'deleted', deleted: n.deleted }));
  }

  async get(door: Door, actor: Actor, namespace: string, key: string): Promise<Outcome> {
    if (door === 'runner') {
      const res = await this.runner(actor.id, { operation: 'get', namespace, key });
      if (res.status === 404 && res.body?.code === 'NOT_FOUND') return { kind: 'get', record: null };
      return fromRunner(res, (b) => ({ kind: 'get', record: observed(b) }));
    }
    const res = await this.t.gql(GET, compact({ ns: namespace, key, installId: this.installIdFor(door, actor) }), { token: this.tokenFor(door, actor) });
    return fromGraphQL(res, 'record', 'Record', (n) => ({ kind: 'get', record: n === null ? null : observed(n) }));
  }

  /** A GraphQL `record` read with any token, naming any install. */
  async getWith(token: string, namespace: string, key: string, installId?: string): Promise<Outcome> {
    const res = await this.t.gql(GET, compact({ ns: namespace, key, installId }), { token });
    return fromGraphQL(res, 'record', 'Record', (n) => ({ kind: 'get', record: n === null ? null : observed(n) }));
  }

  /** Every live record of a namespace, paging `pageSize` at a time; a string describes a failure. */
  async list(door: Door, actor: Actor, namespace: string, pageSize: number, prefix?: string): Promise<Observed[] | string> {
    const out: Observed[] = [];
    let after: string | null | undefined = null;
    for (let pages = 0; pages < 1000; pages++) {
      if (door === 'runner') {
        const res = await this.runner(actor.id, compact({ operation: 'list', namespace, limit: pageSize, cursor: after, keyPrefix: prefix }));
        if (res.status !== 200) return `runner list answered ${res.status}: ${JSON.stringify(res.body)}`;
        if (res.body.items.length > pageSize) return `runner list page of ${res.body.items.length} > ${pageSize}`;
        out.push(...(res.body.items as any[]).map(observed));
        if (res.body.nextCursor === null) return out;
        if (res.body.items.length === 0) return 'runner list: empty page with a next cursor';
        after = res.body.nextCursor;
      } else {
        const vars: Record<string, unknown> = compact({ ns: namespace, prefix, first: pageSize, after, installId: this.installIdFor(door, actor) });
        const res: GqlResult = await this.t.gql(LIST, vars, { token: this.tokenFor(door, actor) });
        if (res.status !== 200 || res.body.errors) return `recordList answered ${res.status}: ${JSON.stringify(res.body)}`;
        const conn: any = res.body.data.recordList;
        if (conn.edges.length > pageSize) return `recordList page of ${conn.edges.length} > ${pageSize}`;
        out.push(...(conn.edges as any[]).map((e) => observed(e.node)));
        if (!conn.pageInfo.hasNextPage) return out;
        if (conn.edges.length === 0 || conn.pageInfo.endCursor === null) return 'recordList: hasNextPage with no endCursor';
        after = conn.pageInfo.endCursor;
      }
    }
    return 'listing did not end after 1000 pages';
  }

  /** Usage and live namespaces of several installs of one tenant, read by its admin in one request. */
  async usage(adminToken: string, installIds: string[]): Promise<Map<string, UsageView> | string> {
    const fields = installIds
      .map((id, i) => `i${i}: install(id: "${id}") { usage { namespaces keys bytes } namespaces { name keyCount bytesUsed } }`)
      .join('\n');
    const res = await this.t.gql(`{ ${fields} }`, {}, { token: adminToken });
    if (res.status !== 200 || res.body.errors) return `usage answered ${res.status}: ${JSON.stringify(res.body)}`;
    return new Map(installIds.map((id, i) => [id, res.body.data[`i${i}`] as UsageView]));
  }
}
