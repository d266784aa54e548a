/**
 * A typed client for the extension storage gateway's GraphQL API, for the iframe SDK (browser,
 * extension JWT), the Runner (x-runner-auth + x-install-id) and admin tools (admin JWT).
 *
 * Browser-safe: it uses only `fetch` (no Node built-ins, no graphql-js at run time). Every method
 * resolves to a result value, never throws for a storage, GraphQL, transport or local error:
 * `{ ok: true, ... } | { ok: false, error }`, where `error.code` tells the kinds apart.
 * NETWORK_ERROR means a request was attempted and fetch failed (worth retrying); CLIENT_ERROR means
 * nothing was sent because the call could not be made here (a throwing token function, variables
 * that are not JSON, NaN or Infinity included), and retrying it would fail the same way.
 *
 * The documents come from client/operations/*.graphql, typed by `npm run codegen` (client/generated/).
 */
import {
  BulkPutRecordsDocument,
  ChangesCursorDocument,
  ChangesDocument,
  CommitDocument,
  DeleteRecordDocument,
  GetRecordDocument,
  GetRecordsDocument,
  IncrementRecordDocument,
  ListRecordsDocument,
  PutRecordDocument,
  WatchChangesDocument,
  type CommitOperation,
  type StorageChangeFragment,
  type StorageErrorFieldsFragment,
  type StorageRecordFragment,
  type TypedDocumentString,
} from './generated/graphql.js';

export type StorageRecord = StorageRecordFragment;
/** One change of the install's feed; `record` is the record as it is now (null once gone). */
export type StorageChange = StorageChangeFragment;

// ------------------------------------------------------------------ errors, as values

export interface ValidationIssue {
  path: string;
  message: string;
  keyword: string;
}

/** ifRevision did not match: `currentRevision` is null when the record does not exist. */
export interface RevisionMismatchError {
  code: 'REVISION_MISMATCH';
  message: string;
  namespace: string;
  key: string;
  expectedRevision: number;
  currentRevision: number | null;
}

/** A stored-data quota ("namespaces", "keysPerNamespace", "bytes"). */
export interface QuotaExceededError {
  code: 'QUOTA_EXCEEDED';
  message: string;
  quota: string;
  allowed: number;
  used: number;
  itemIndex: number | null;
}

/** A per-request limit ("valueBytes", "keyFormat", "pageSize", ...). */
export interface LimitExceededError {
  code: 'LIMIT_EXCEEDED';
  message: string;
  limit: string;
  max: number | null;
  actual: number | null;
  itemIndex: number | null;
}

/** The value does not satisfy the namespace's JSON Schema. */
export interface ValidationFailedError {
  code: 'VALIDATION_FAILED';
  message: string;
  schemaVersion: number | null;
  issues: ValidationIssue[];
}

/** Too many requests for this install; wait `retryAfterSeconds` when known. */
export interface RateLimitedError {
  code: 'RATE_LIMITED';
  message: string;
  status: number | null;
  retryAfterSeconds: number | null;
}

/**
 * The request itself was refused or failed: no valid credential (UNAUTHENTICATED), no right
 * (FORBIDDEN), a malformed argument such as a foreign cursor (BAD_USER_INPUT), a change-feed
 * cursor older than the retained changes (CURSOR_EXPIRED: resync from a snapshot), a server fault
 * (INTERNAL), or another GraphQL error (GRAPHQL_ERROR; `graphqlCode` has the server's code).
 */
export interface RequestError {
  code: 'UNAUTHENTICATED' | 'FORBIDDEN' | 'BAD_USER_INPUT' | 'CURSOR_EXPIRED' | 'INTERNAL' | 'GRAPHQL_ERROR';
  message: string;
  status: number | null;
  graphqlCode: string | null;
}

/**
 * No usable answer: fetch rejected (offline, DNS, a CORS refusal in the browser) or the answer
 * was not a GraphQL response (BAD_RESPONSE, e.g. a proxy's HTML error page).
 */
export interface TransportError {
  code: 'NETWORK_ERROR' | 'BAD_RESPONSE';
  message: string;
  status: number | null;
  cause?: unknown;
}

/**
 * Nothing was sent: the request could not be made here. The token function threw or rejected,
 * the variables cannot be JSON (a BigInt, a cycle, a throwing toJSON, or a number JSON has no
 * spelling for: NaN, Infinity, -Infinity, anywhere in a value or metadata), or an `update`
 * updater threw. Not a network failure: code that retries on NETWORK_ERROR must not retry this
 * (the same call fails the same way). `message` says what failed, with the cause's message;
 * `cause` is what was thrown.
 */
export interface ClientError {
  code: 'CLIENT_ERROR';
  message: string;
  status: null;
  cause?: unknown;
}

export type StorageClientError =
  | ClientError
  | RevisionMismatchError
  | QuotaExceededError
  | LimitExceededError
  | ValidationFailedError
  | RateLimitedError
  | RequestError
  | TransportError;

export type Failure = { ok: false; error: StorageClientError };
export type Result<T extends object> = ({ ok: true } & T) | Failure;

/** One check of a commit that did not hold; `currentRevision` is null when the key holds no live record. */
export interface CheckConflict {
  /** The check's index, in the order the checks were added. */
  index: number;
  namespace: string;
  key: string;
  expectedRevision: number;
  currentRevision: number | null;
}

/** A commit's checks did not hold: nothing was written. Read again and retry with the current revisions. */
export interface CommitConflictError {
  code: 'REVISION_MISMATCH';
  message: string;
  /** Every check that failed, in the order the checks were added. */
  conflicts: CheckConflict[];
}

/** What a commit can fail with: a commit has no ifRevision, so its REVISION_MISMATCH is always a CommitConflictError. */
export type CommitError = Exclude<StorageClientError, RevisionMismatchError> | CommitConflictError;

export type CommitResult =
  | {
      ok: true;
      /** One entry per operation, in order: the record as written (as it would be, for a dry run), null for a delete. */
      records: Array<StorageRecord | null>;
      /** False for a dry run: nothing was written. */
      committed: boolean;
      /** The change-feed cursor just after the commit; null for a dry run. */
      cursor: string | null;
    }
  | { ok: false; error: CommitError };

// ------------------------------------------------------------------ options and inputs

export type TokenSource = string | (() => string | Promise<string>);

/** What every caller may set. */
export interface CommonOptions {
  /**
   * Name each operation by its SHA-256 hash instead of sending its text (trusted documents: the
   * gateway knows this client's documents, and a gateway with STORAGE_TRUSTED_DOCUMENTS=require
   * runs nothing else for extensions and the Runner). Default true; a gateway that does not know a
   * hash answers PERSISTED_QUERY_NOT_FOUND and the client sends that request's text once instead.
   */
  trustedDocuments?: boolean;
}

/** Extension (iframe SDK) or admin: a JWT. Admins name the install they act on with `installId`. */
export interface TokenOptions extends CommonOptions {
  /** The gateway's GraphQL endpoint (e.g. https://storage.example.com/graphql) or its base URL. */
  url: string;
  /** The bearer token, or a function returning a fresh one for each request. */
  token: TokenSource;
  installId?: string;
}

/** The Runner: its shared token plus the install it acts for. */
export interface RunnerOptions extends CommonOptions {
  url: string;
  runnerToken: string;
  installId: string;
}

export type StorageClientOptions = TokenOptions | RunnerOptions;

export type FetchLike = (input: string, init: { method: string; headers: Record<string, string>; body: string }) => Promise<Response>;

export interface PutOptions {
  /** Must be a JSON object; omitted means {}. */
  metadata?: Record<string, unknown>;
  /** Omitted: the record never expires (a put replaces value, metadata and TTL together). */
  ttlSeconds?: number;
  /** Omitted: unconditional. 0: create only. n > 0: the record must be at revision n. */
  ifRevision?: number;
  schemaVersion?: number;
}

export interface BulkPutItem {
  key: string;
  value: unknown;
  metadata?: Record<string, unknown>;
  ttlSeconds?: number;
  ifRevision?: number;
}

export interface ListOptions {
  prefix?: string;
  /** Records per request, 1..100 (server default 25). */
  pageSize?: number;
}

export interface ListPageOptions extends ListOptions {
  /** `nextCursor` of the previous page. */
  after?: string | null;
}

export type ListPage = Result<{ records: StorageRecord[]; nextCursor: string | null }>;

export interface ChangesOptions {
  /** Only changes of this namespace. */
  namespace?: string;
  /** Only keys starting with this; needs `namespace`. */
  prefix?: string;
  /** `cursor` of the previous page, a change's cursor, a commit's or `changesCursor()`; omitted: the oldest retained change. */
  after?: string | null;
  /** Changes per request, 1..1000 (server default 100). */
  pageSize?: number;
}

/**
 * One page of the change feed, oldest first. `cursor` is where to resume (pass it as `after`),
 * even when a filtered page holds no change; `hasMore` says whether more changes exist now.
 * Delivery is at least once: dedupe by `change.cursor`.
 */
export type ChangesPage = Result<{ changes: StorageChange[]; cursor: string; hasMore: boolean }>;

export interface UpdateOptions {
  /** Tries before giving up with the last RevisionMismatch (default 5). */
  maxAttempts?: number;
  /** Metadata to write; omitted keeps the record's current metadata. */
  metadata?: Record<string, unknown>;
  /** TTL of the written record; omitted means no TTL (as with put). */
  ttlSeconds?: number;
}

export interface IncrementOptions {
  /** Sets the TTL like a put; omitted clears it. */
  ttlSeconds?: number;
}

/** A commit's put replaces value, metadata and TTL together, like put without ifRevision (use a check instead). */
export interface CommitPutOptions {
  /** Must be a JSON object; omitted means {}. */
  metadata?: Record<string, unknown>;
  /** Omitted: the record never expires. */
  ttlSeconds?: number;
  schemaVersion?: number;
}

/**
 * A commit being built: checks, then operations across namespaces of the install, sent together
 * by `run` and applied all or nothing. Each method adds one item and returns the builder.
 */
export interface CommitBuilder {
  /** The key must hold a live record at `revision` (0: must hold no live record), or nothing is written. */
  check(namespace: string, key: string, revision: number): CommitBuilder;
  put(namespace: string, key: string, value: unknown, options?: CommitPutOptions): CommitBuilder;
  /** Removes a live record; an absent key is fine. */
  delete(namespace: string, key: string): CommitBuilder;
  /** Adds `by` to a numeric record (a missing one starts at 0). */
  increment(namespace: string, key: string, by: number, options?: IncrementOptions): CommitBuilder;
  /**
   * Sends the commit. A failed check is `{ ok: false, error: CommitConflictError }` listing every
   * failed check; `dryRun: true` decides everything and writes nothing (`committed: false`).
   */
  run(options?: { dryRun?: boolean }): Promise<CommitResult>;
}

/** Returns the new value for the current one (undefined when the record does not exist). */
export type Updater = (current: unknown, record: StorageRecord | null) => unknown | Promise<unknown>;

export interface StorageClient {
  get(namespace: string, key: string): Promise<Result<{ record: StorageRecord | null }>>;
  /** Several keys in one round trip (at most 100), in order, null where missing. */
  getMany(namespace: string, keys: readonly string[]): Promise<Result<{ records: Array<StorageRecord | null> }>>;
  /** One page by key order; pass the previous page's nextCursor as `after`. */
  listPage(namespace: string, options?: ListPageOptions): Promise<ListPage>;
  /** Every page of a namespace, in key order; a failed page is yielded and ends the iteration. */
  list(namespace: string, options?: ListOptions): AsyncIterableIterator<ListPage>;
  put(namespace: string, key: string, value: unknown, options?: PutOptions): Promise<Result<{ record: StorageRecord }>>;
  /** All or nothing; the records come back in the order of `items`. */
  bulkPut(namespace: string, items: readonly BulkPutItem[]): Promise<Result<{ records: StorageRecord[] }>>;
  /** `deleted: false` when there was nothing to delete. */
  delete(namespace: string, key: string, options?: { ifRevision?: number }): Promise<Result<{ deleted: boolean }>>;
  /**
   * Read, compute, write with ifRevision; on a RevisionMismatch read again and retry, at most
   * `maxAttempts` times. No update is lost: each successful write was computed from the revision it replaced.
   */
  update(namespace: string, key: string, fn: Updater, options?: UpdateOptions): Promise<Result<{ record: StorageRecord; attempts: number }>>;
  /**
   * Adds `by` (negative to subtract) to a record whose value is a number; a missing record starts
   * at 0. Concurrent increments never lose one. A stored value that is not a number is LIMIT_EXCEEDED valueType.
   */
  increment(namespace: string, key: string, by: number, options?: IncrementOptions): Promise<Result<{ record: StorageRecord }>>;
  /** Starts a commit: `client.commit().check(...).put(...).delete(...).increment(...).run()`. */
  commit(): CommitBuilder;
  /** One page of the install's change feed; follow `cursor` for the next (CURSOR_EXPIRED: resync from a snapshot). */
  changes(options?: ChangesOptions): Promise<ChangesPage>;
  /** The head of the change feed now: `changes({ after })` from it returns only later changes (snapshot, then follow). */
  changesCursor(): Promise<Result<{ cursor: string }>>;
  /**
   * The install's change feed as it happens (Subscription.changes over SSE): the changes after
   * `after` (omitted: from now on), then live ones, each with its record as it is now. After a
   * network failure or a server going away it reconnects with backoff from the last cursor it
   * delivered, so nothing is missed (a change may come twice: same cursor). A refusal
   * (FORBIDDEN, CURSOR_EXPIRED: resync from a snapshot, BAD_USER_INPUT) ends the iteration by
   * throwing a WatchError. `break` (or `signal`) ends it cleanly.
   */
  watch(options?: WatchOptions): AsyncIterableIterator<WatchedChange>;
}

export interface WatchOptions {
  namespace?: string;
  /** Only keys starting with this (needs `namespace`). */
  prefix?: string;
  /** Resume after this cursor (a change's, or Install.changesCursor). */
  after?: string;
  signal?: AbortSignal;
  /** Reconnect backoff bounds (ms); defaults 250 and 10,000. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export interface WatchedChange {
  cursor: string;
  at: string;
  operation: 'PUT' | 'DELETE' | 'EXPIRE';
  namespace: string;
  key: string;
  revision: number;
  actor: string;
  /** The record as it is now; null when it no longer exists. */
  record: StorageRecord | null;
}

/** Thrown by watch()'s iterator when the gateway refuses the subscription. */
export class WatchError extends Error {
  constructor(readonly error: StorageClientError) {
    super(error.message);
    this.name = 'WatchError';
  }
}

/** Server-sent events of one response body, parsed as they arrive. */
async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<{ event: string; data: string }> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (data.length > 0 || event !== 'message') yield { event, data: data.join('\n') };
      }
    }
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

// ------------------------------------------------------------------ transport

interface GraphQLErrorJson {
  message?: unknown;
  extensions?: Record<string, unknown>;
}

function endpointOf(url: string): string {
  const trimmed = url.replace(/\/+$/, '');
  return /\/graphql$/.test(trimmed) ? trimmed : `${trimmed}/graphql`;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown, fallback: string): string => (typeof v === 'string' ? v : fallback);

function fromGraphQLError(e: GraphQLErrorJson, status: number, retryAfterHeader: string | null): StorageClientError {
  const ext = e.extensions ?? {};
  const graphqlCode = typeof ext.code === 'string' ? ext.code : null;
  const message = str(e.message, 'GraphQL error');
  switch (graphqlCode) {
    case 'LIMIT_EXCEEDED':
      return { code: 'LIMIT_EXCEEDED', message, limit: str(ext.limit, 'unknown'), max: num(ext.max), actual: num(ext.actual), itemIndex: num(ext.itemIndex) };
    case 'RATE_LIMITED': {
      const header = retryAfterHeader === null ? null : num(Number(retryAfterHeader));
      return { code: 'RATE_LIMITED', message, status, retryAfterSeconds: num(ext.retryAfterSeconds) ?? header };
    }
    case 'UNAUTHENTICATED':
    case 'FORBIDDEN':
    case 'BAD_USER_INPUT':
    case 'CURSOR_EXPIRED':
    case 'INTERNAL':
      return { code: graphqlCode, message, status, graphqlCode };
    default:
      return { code: 'GRAPHQL_ERROR', message, status, graphqlCode };
  }
}

/** A typed error of a result union other than CommitConflict (which only commit answers, see commitFailure). */
function fromResultUnion(e: Exclude<StorageErrorFieldsFragment, { __typename: 'CommitConflict' }>): StorageClientError {
  switch (e.__typename) {
    case 'RevisionMismatch':
      return { code: 'REVISION_MISMATCH', message: e.message, namespace: e.namespace, key: e.key, expectedRevision: e.expectedRevision, currentRevision: e.currentRevision };
    case 'QuotaExceeded':
      return { code: 'QUOTA_EXCEEDED', message: e.message, quota: e.quota, allowed: e.allowed, used: e.used, itemIndex: e.itemIndex };
    case 'LimitExceeded':
      return { code: 'LIMIT_EXCEEDED', message: e.message, limit: e.limit, max: e.max, actual: e.actual, itemIndex: e.itemIndex };
    case 'ValidationFailed':
      return { code: 'VALIDATION_FAILED', message: e.message, schemaVersion: e.schemaVersion, issues: e.issues.map((i) => ({ path: i.path, message: i.message, keyword: i.keyword })) };
  }
}

const fail = (error: StorageClientError): Failure => ({ ok: false, error });

function commitConflict(e: { message: string; conflicts: readonly CheckConflict[] }): CommitConflictError {
  return {
    code: 'REVISION_MISMATCH',
    message: e.message,
    conflicts: e.conflicts.map((c) => ({ index: c.index, namespace: c.namespace, key: c.key, expectedRevision: c.expectedRevision, currentRevision: c.currentRevision })),
  };
}

function clientError(what: string, cause: unknown): ClientError {
  const reason = cause instanceof Error ? cause.message : typeof cause === 'string' ? cause : String(cause);
  return { code: 'CLIENT_ERROR', message: `${what}: ${reason}`, status: null, cause };
}

/**
 * JSON.stringify's replacer: JSON has no NaN or Infinity, and JSON.stringify would quietly send
 * null instead (a value the caller never wrote). Refused instead, naming the property.
 */
function refuseNonJsonNumbers(this: unknown, key: string, value: unknown): unknown {
  const n = typeof value === 'number' ? value : value instanceof Number ? value.valueOf() : null;
  if (n !== null && !Number.isFinite(n)) throw new TypeError(`${n} (at ${key === '' ? 'the top level' : JSON.stringify(key)}) is not a JSON number`);
  return value;
}

/** A generated document's SHA-256 (codegen's persistedDocuments: `__meta__.hash` = "sha256:<hex>"), else null. */
function hashOf(document: { __meta__?: Record<string, unknown> }): string | null {
  const hash = (document.__meta__ as { hash?: unknown } | undefined)?.hash;
  return typeof hash === 'string' && hash.startsWith('sha256:') ? hash.slice('sha256:'.length) : null;
}

/** A GraphQL request's JSON: the document named by its hash (trusted documents) when given, else its text. */
function requestBody(document: { toString(): string }, variables: unknown, hash: string | null): object {
  return hash ? { variables, extensions: { persistedQuery: { version: 1, sha256Hash: hash } } } : { query: document.toString(), variables };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function createStorageClient(options: StorageClientOptions, fetchImpl?: FetchLike): StorageClient {
  const endpoint = endpointOf(options.url);
  // Bound: window.fetch called as a method of another object throws "Illegal invocation".
  const doFetch: FetchLike = fetchImpl ?? ((input, init) => globalThis.fetch(input, init));
  const runner = 'runnerToken' in options;
  // The Runner names its install in a header; admins (and, optionally, extensions) pass it as an argument.
  const installId = runner ? undefined : options.installId;

  async function headers(): Promise<Record<string, string>> {
    const h: Record<string, string> = { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' };
    if ('runnerToken' in options) {
      h['x-runner-auth'] = options.runnerToken;
      h['x-install-id'] = options.installId;
    } else {
      const token = typeof options.token === 'function' ? await options.token() : options.token;
      h.authorization = `Bearer ${token}`;
    }
    return h;
  }

  async function request<TResult, TVariables>(
    document: TypedDocumentString<TResult, TVariables>,
    variables: TVariables,
    byHash = options.trustedDocuments !== false,
  ): Promise<{ ok: true; data: TResult } | Failure> {
    // Everything that can fail before sending fails here, as CLIENT_ERROR: nothing is sent.
    let body: string;
    const hash = byHash ? hashOf(document) : null;
    try {
      body = JSON.stringify(requestBody(document, variables, hash), refuseNonJsonNumbers);
    } catch (cause) {
      return fail(clientError('the variables cannot be sent as JSON', cause));
    }
    let requestHeaders: Record<string, string>;
    try {
      requestHeaders = await headers();
    } catch (cause) {
      return fail(clientError('the token function failed', cause));
    }
    let response: Response;
    try {
      response = await doFetch(endpoint, { method: 'POST', headers: requestHeaders, body });
    } catch (cause) {
      return fail({ code: 'NETWORK_ERROR', message: cause instanceof Error ? cause.message : 'the request failed', status: null, cause });
    }
    let answer: { data?: TResult | null; errors?: GraphQLErrorJson[] };
    try {
      answer = (await response.json()) as typeof answer;
    } catch (cause) {
      return fail({ code: 'BAD_RESPONSE', message: `HTTP ${response.status}: the answer is not JSON`, status: response.status, cause });
    }
    if (typeof answer !== 'object' || answer === null) {
      return fail({ code: 'BAD_RESPONSE', message: `HTTP ${response.status}: not a GraphQL response`, status: response.status });
    }
    const first = Array.isArray(answer.errors) ? answer.errors[0] : undefined;
    // A gateway that does not know this document's hash (another version): its text, once.
    if (hash && first?.extensions?.code === 'PERSISTED_QUERY_NOT_FOUND') return request(document, variables, false);
    if (first) return fail(fromGraphQLError(first, response.status, response.headers.get('retry-after')));
    if (answer.data === undefined || answer.data === null) {
      return fail({ code: 'BAD_RESPONSE', message: `HTTP ${response.status}: a GraphQL response without data`, status: response.status });
    }
    return { ok: true, data: answer.data };
  }

  /** watch(): reconnects from its last cursor until the consumer stops or the gateway refuses. */
  async function* watch(opts: WatchOptions = {}): AsyncGenerator<WatchedChange, void, undefined> {
    const minBackoff = opts.minBackoffMs ?? 250;
    const maxBackoff = opts.maxBackoffMs ?? 10_000;
    let backoff = minBackoff;
    let watchByHash = options.trustedDocuments !== false;
    let cursor = opts.after ?? null;
    if (cursor === null) {
      // From now on, even across a reconnect before the first change: start from the feed's head.
      const head = await request(ChangesCursorDocument, { installId });
      if (head.ok && head.data.install) cursor = head.data.install.changesCursor;
      else if (!head.ok && (head.error.code === 'FORBIDDEN' || head.error.code === 'UNAUTHENTICATED')) throw new WatchError(head.error);
      // Otherwise (a gateway without changesCursor, a network failure) the first subscription starts from now.
    }
    while (!opts.signal?.aborted) {
      const abort = new AbortController();
      const onAbort = () => abort.abort();
      opts.signal?.addEventListener('abort', onAbort);
      try {
        const h = await headers();
        h.accept = 'text/event-stream';
        const variables = { namespace: opts.namespace, prefix: opts.prefix, after: cursor ?? undefined, installId };
        const hash = watchByHash ? hashOf(WatchChangesDocument) : null;
        const body = JSON.stringify(requestBody(WatchChangesDocument, variables, hash));
        const response = await globalThis.fetch(endpoint, { method: 'POST', headers: h, body, signal: abort.signal });
        if (!response.ok || !response.body || !(response.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
          let answer = null as { errors?: GraphQLErrorJson[] } | null;
          try {
            answer = (await response.json()) as { errors?: GraphQLErrorJson[] } | null;
          } catch {
            // not JSON: a proxy's page, retried below
          }
          const first = answer?.errors?.[0];
          // A gateway that does not know the hash: the document's text from now on, at once.
          if (hash && first?.extensions?.code === 'PERSISTED_QUERY_NOT_FOUND') {
            watchByHash = false;
            backoff = 0;
            throw new Error('PersistedQueryNotFound');
          }
          // 429 and 503 are worth waiting for; other refusals are final.
          if (first && response.status !== 429 && response.status !== 503) throw new WatchError(fromGraphQLError(first, response.status, response.headers.get('retry-after')));
          throw new Error(`HTTP ${response.status}`);
        }
        for await (const e of sseEvents(response.body)) {
          if (e.event === 'complete') break;
          if (e.event !== 'next') continue;
          const payload = JSON.parse(e.data) as { data?: { changes?: WatchedChange } | null; errors?: GraphQLErrorJson[] };
          const error = payload.errors?.[0];
          // The token expired during the stream: with a token function, reconnect at once from the
          // last cursor (the function gives a fresh one; a refused token then ends the watch).
          if (error?.extensions?.code === 'UNAUTHENTICATED' && 'token' in options && typeof options.token === 'function') {
            backoff = 0;
            throw new Error('token expired');
          }
          if (error) throw new WatchError(fromGraphQLError(error, response.status, null));
          const change = payload.data?.changes;
          if (!change) continue;
          backoff = minBackoff;
          cursor = change.cursor;
          yield change;
        }
      } catch (error) {
        if (error instanceof WatchError) throw error;
        // A network failure or a cut stream: reconnect below from the last cursor.
      } finally {
        opts.signal?.removeEventListener('abort', onAbort);
        abort.abort();
      }
      if (opts.signal?.aborted) return;
      await sleep(backoff);
      backoff = Math.min(maxBackoff, Math.max(minBackoff, backoff * 2));
    }
  }

  const client: StorageClient = {
    watch,

    async get(namespace, key) {
      const r = await request(GetRecordDocument, { namespace, key, installId });
      return r.ok ? { ok: true, record: r.data.record } : r;
    },

    async getMany(namespace, keys) {
      const r = await request(GetRecordsDocument, { namespace, keys: [...keys], installId });
      return r.ok ? { ok: true, records: r.data.records } : r;
    },

    async listPage(namespace, opts = {}) {
      const r = await request(ListRecordsDocument, { namespace, prefix: opts.prefix, first: opts.pageSize, after: opts.after ?? undefined, installId });
      if (!r.ok) return r;
      const { edges, pageInfo } = r.data.recordList;
      return { ok: true, records: edges.map((e) => e.node), nextCursor: pageInfo.hasNextPage ? pageInfo.endCursor : null };
    },

    async changes(opts = {}) {
      const r = await request(ChangesDocument, {
        namespace: opts.namespace,
        prefix: opts.prefix,
        after: opts.after ?? undefined,
        first: opts.pageSize,
        installId,
      });
      if (!r.ok) return r;
      const { edges, pageInfo } = r.data.changes;
      // endCursor is never null on a change page (the contract's PageInfo type is shared, hence nullable).
      return { ok: true, changes: edges.map((e) => e.node), cursor: pageInfo.endCursor ?? opts.after ?? '', hasMore: pageInfo.hasNextPage };
    },

    async changesCursor() {
      const r = await request(ChangesCursorDocument, { installId });
      if (!r.ok) return r;
      if (!r.data.install) return { ok: false, error: { code: 'FORBIDDEN', message: 'no install', status: null, graphqlCode: null } };
      return { ok: true, cursor: r.data.install.changesCursor };
    },

    async *list(namespace, opts = {}) {
      let after: string | null = null;
      do {
        const page: ListPage = await client.listPage(namespace, { ...opts, after });
        yield page;
        if (!page.ok) return;
        after = page.nextCursor;
      } while (after !== null);
    },

    async put(namespace, key, value, opts = {}) {
      const r = await request(PutRecordDocument, { input: { installId, namespace, key, value, ...opts } });
      if (!r.ok) return r;
      const result = r.data.putRecord;
      return result.__typename === 'PutRecordSuccess' ? { ok: true, record: result.record } : fail(fromResultUnion(result));
    },

    async bulkPut(namespace, items) {
      const r = await request(BulkPutRecordsDocument, { input: { installId, namespace, items: items.map((i) => ({ ...i })) } });
      if (!r.ok) return r;
      const result = r.data.bulkPutRecords;
      return result.__typename === 'BulkPutRecordsSuccess' ? { ok: true, records: result.records } : fail(fromResultUnion(result));
    },

    async delete(namespace, key, opts = {}) {
      const r = await request(DeleteRecordDocument, { input: { installId, namespace, key, ifRevision: opts.ifRevision } });
      if (!r.ok) return r;
      const result = r.data.deleteRecord;
      return result.__typename === 'DeleteRecordSuccess' ? { ok: true, deleted: result.deleted } : fail(fromResultUnion(result));
    },

    async update(namespace, key, fn, opts = {}) {
      const maxAttempts = Math.max(1, Math.floor(opts.maxAttempts ?? 5));
      let last: Failure | null = null;
      for (let attempt = 1; attempt <= maxAttempts; attempt++) {
        if (attempt > 1) await sleep(Math.random() * Math.min(100, 5 * 2 ** attempt));
        const read = await client.get(namespace, key);
        if (!read.ok) return read;
        const current = read.record;
        let value: unknown;
        try {
          value = await fn(current === null ? undefined : current.value, current);
        } catch (cause) {
          return fail(clientError('the updater failed', cause));
        }
        const written = await client.put(namespace, key, value, {
          metadata: opts.metadata ?? (current?.metadata as Record<string, unknown> | undefined),
          ttlSeconds: opts.ttlSeconds,
          ifRevision: current === null ? 0 : current.revision,
        });
        if (written.ok) return { ok: true, record: written.record, attempts: attempt };
        if (written.error.code !== 'REVISION_MISMATCH') return written;
        last = written;
      }
      return last!;
    },

    async increment(namespace, key, by, opts = {}) {
      const r = await request(IncrementRecordDocument, { input: { installId, namespace, key, by, ttlSeconds: opts.ttlSeconds } });
      if (!r.ok) return r;
      const result = r.data.incrementRecord;
      return result.__typename === 'PutRecordSuccess' ? { ok: true, record: result.record } : fail(fromResultUnion(result));
    },

    commit() {
      const checks: Array<{ namespace: string; key: string; revision: number }> = [];
      const operations: CommitOperation[] = [];
      const builder: CommitBuilder = {
        check(namespace, key, revision) {
          checks.push({ namespace, key, revision });
          return builder;
        },
        put(namespace, key, value, opts = {}) {
          operations.push({ put: { namespace, key, value, metadata: opts.metadata, ttlSeconds: opts.ttlSeconds, schemaVersion: opts.schemaVersion } });
          return builder;
        },
        delete(namespace, key) {
          operations.push({ delete: { namespace, key } });
          return builder;
        },
        increment(namespace, key, by, opts = {}) {
          operations.push({ increment: { namespace, key, by, ttlSeconds: opts.ttlSeconds } });
          return builder;
        },
        async run(opts = {}) {
          // Copies: the builder may be extended and run again.
          const r = await request(CommitDocument, { input: { installId, checks: [...checks], operations: [...operations], dryRun: opts.dryRun ?? false } });
          // A request-level error is never REVISION_MISMATCH (fromGraphQLError), so it is a CommitError.
          if (!r.ok) return { ok: false, error: r.error as CommitError };
          const result = r.data.commit;
          switch (result.__typename) {
            case 'CommitSuccess':
              return { ok: true, records: result.records, committed: result.committed, cursor: result.cursor };
            case 'CommitConflict':
              return { ok: false, error: commitConflict(result) };
            default:
              // QuotaExceeded, LimitExceeded or ValidationFailed: never REVISION_MISMATCH.
              return { ok: false, error: fromResultUnion(result) as CommitError };
          }
        },
      };
      return builder;
    },
  };
  return client;
}

// ------------------------------------------------------------------ normalized caches (Apollo Client, urql Graphcache)

export {
  apolloTypePolicies,
  embeddedTypes,
  graphcacheOptions,
  possibleTypes,
  removeRecordFromGraphcache,
  type GraphcacheLike,
} from './cache.js';
