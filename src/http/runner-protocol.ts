/**
 * The Runner's existing REST protocol (contract, "HTTP surface"), served by the same storage core
 * as GraphQL: this file only translates bodies and maps errors to status codes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  BadInputError,
  CommitConflictError,
  LimitExceededError,
  QuotaExceededError,
  RevisionMismatchError,
  StorageError,
  UnavailableError,
  ValidationFailedError,
  mapDatabaseError,
} from '../storage/errors.js';
import type { Principal } from '../storage/principal.js';
import type { StoredRecord } from '../storage/records.js';
import type { BulkPutItem, CommitCheckInput, CommitOperationInput, Storage } from '../storage/storage.js';
import { MAX_JSON_DEPTH } from '../storage/limits.js';
import { checkKnownFields } from '../storage/prepare.js';
import { BodyTooLargeError, isUtf8Body, jsonNestingExceeds, MAX_REQUEST_JSON_DEPTH, readBody } from './body.js';
import { clipForLog } from './log-fields.js';
import { sendJson, STORAGE_ERROR_HTTP } from './respond.js';

export const RUNNER_PATH = '/api/internal/ext-storage/install/';

export interface RunnerDeps {
  storage: Storage;
  /** Checks x-runner-auth for the install named in the path; throws a StorageError when refused. */
  authenticate(installId: string): Promise<Principal>;
  /** Caller.whileQueued: the request stands aside from its install's requests in flight while its write is queued. */
  whileQueued?: <T>(wait: Promise<T>) => Promise<T>;
  /** Charges the install's rate limit by the operation's priced cost (src/graphql/cost.ts runnerPrice); throws RateLimitedError. */
  charge(principal: Principal, operation: string, body: Readonly<Record<string, unknown>>): Promise<void>;
  /** Charges the bytes of the records an operation returned, once known (src/graphql/cost.ts BYTES_PER_UNIT). */
  returned(principal: Principal, records: readonly StoredRecord[]): void;
  requestId: string;
  maxBodyBytes: number;
  logError(error: unknown): void;
  log: { operation?: string };
}

class ProtocolError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: unknown = null,
  ) {
    super(message);
  }
}


function details(error: StorageError): unknown {
  if (error instanceof CommitConflictError) {
    return {
      conflicts: error.conflicts.map((c) => ({ index: c.index, namespace: c.namespace, key: c.key, expectedRevision: c.expectedRevision, currentRevision: c.currentRevision })),
    };
  }
  if (error instanceof RevisionMismatchError) {
    return { namespace: error.namespace, key: error.key, expectedRevision: error.expectedRevision, currentRevision: error.currentRevision };
  }
  if (error instanceof QuotaExceededError) return { quota: error.quota, allowed: error.allowed, used: error.used, itemIndex: error.itemIndex };
  if (error instanceof LimitExceededError) return { limit: error.limit, max: error.max, actual: error.actual, itemIndex: error.itemIndex };
  if (error instanceof ValidationFailedError) return { schemaVersion: error.schemaVersion, issues: error.issues };
  return null;
}

function recordShape(r: StoredRecord, withValue: boolean, withMetadata: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {
    namespace: r.namespace,
    key: r.key,
    revision: r.revision,
    ttlExpiresAt: r.ttlExpiresAt?.toISOString() ?? null,
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
  };
  if (withValue) out.value = r.value;
  if (withMetadata) out.metadata = r.metadata;
  return out;
}

type Body = Record<string, unknown>;

function field<T>(body: Body, name: string, type: 'string' | 'number' | 'boolean' | 'object' | 'array', required: boolean): T | undefined {
  const v = body[name];
  if (v === undefined || v === null) {
    if (required) throw new ProtocolError(400, 'VALIDATION_FAILED', `"${name}" is required`);
    return undefined;
  }
  const ok = type === 'array' ? Array.isArray(v) : type === 'object' ? typeof v === 'object' && !Array.isArray(v) : typeof v === type;
  if (!ok) throw new ProtocolError(400, 'VALIDATION_FAILED', `"${name}" must be ${type === 'array' ? 'an array' : `a ${type}`}`);
  return v as T;
}

function optionalInt(body: Body, name: string): number | null {
  const v = field<number>(body, name, 'number', false);
  if (v === undefined) return null;
  if (!Number.isInteger(v)) throw new ProtocolError(400, 'VALIDATION_FAILED', `"${name}" must be an integer`);
  return v;
}

/**
 * The fields of each operation's body (contract, "HTTP surface"). Any other field is refused
 * (the core's BadInputError: 400 VALIDATION_FAILED) before anything runs: a misspelt `ifRevision` must not make a
 * conditional write unconditional. `namespace` is accepted on every operation (ignored by commit).
 */
const BODY_FIELDS: Record<string, readonly string[]> = {
  put: ['key', 'value', 'metadata', 'ttlSeconds', 'ifRevision', 'schemaVersion'],
  get: ['key'],
  list: ['limit', 'cursor', 'keyPrefix', 'includeValues', 'includeMetadata'],
  delete: ['key', 'ifRevision'],
  bulkPut: ['items'],
  increment: ['key', 'by', 'ttlSeconds'],
  commit: ['checks', 'operations', 'dryRun'],
  changes: ['keyPrefix', 'cursor', 'limit'],
};
const BULK_ITEM_FIELDS = ['key', 'value', 'metadata', 'ttlSeconds', 'ifRevision'];

async function execute(body: Body, principal: Principal, deps: RunnerDeps): Promise<unknown> {
  const { storage } = deps;
  const caller = { principal, requestId: deps.requestId, whileQueued: deps.whileQueued };
  const operation = field<string>(body, 'operation', 'string', true)!;
  // Caller-controlled: a 1 MB operation field made a 1 MB log line.
  deps.log.operation = clipForLog(operation, 128);
  const fields = Object.hasOwn(BODY_FIELDS, operation) ? BODY_FIELDS[operation] : undefined;
  if (fields) checkKnownFields(body, ['operation', 'namespace', ...fields], `operation ${operation}`);
  // A commit names its namespaces in its checks and operations; its top-level `namespace` is ignored.
  // A `changes` page reads the whole install unless it names one (read below, as optional).
  const namespace = operation === 'commit' || operation === 'changes' ? '' : field<string>(body, 'namespace', 'string', true)!;
  // A known, fixed cost per operation (a list by its limit, a bulk put by its items), charged before it runs.
  await deps.charge(principal, operation, body);
  switch (operation) {
    case 'put': {
      if (!('value' in body)) throw new ProtocolError(400, 'VALIDATION_FAILED', '"value" is required');
      const record = await storage.putRecord(caller, {
        namespace,
        key: field<string>(body, 'key', 'string', true)!,
        value: body.value,
        metadata: body.metadata,
        ttlSeconds: optionalInt(body, 'ttlSeconds'),
        ifRevision: optionalInt(body, 'ifRevision'),
        schemaVersion: optionalInt(body, 'schemaVersion'),
      });
      return recordShape(record, false, false);
    }
    case 'get': {
      const record = await storage.getRecord(caller, { namespace, key: field<string>(body, 'key', 'string', true)! });
      if (!record) throw new ProtocolError(404, 'NOT_FOUND', 'record not found');
      deps.returned(principal, [record]);
      return recordShape(record, true, true);
    }
    case 'list': {
      const limit = optionalInt(body, 'limit');
      const cursor = field<string>(body, 'cursor', 'string', false);
      const keyPrefix = field<string>(body, 'keyPrefix', 'string', false);
      const includeValues = field<boolean>(body, 'includeValues', 'boolean', false) ?? true;
      const includeMetadata = field<boolean>(body, 'includeMetadata', 'boolean', false) ?? true;
      const scope = await storage.resolveInstall(caller, undefined, 'read', namespace);
      const columns = includeValues || includeMetadata ? 'all' : 'keysOnly';
      const page = await storage.listRecords(scope, namespace, { prefix: keyPrefix, first: limit, after: cursor, columns });
      deps.returned(principal, page.items);
      return {
        items: page.items.map((r) => recordShape(r, includeValues, includeMetadata)),
        nextCursor: page.hasNextPage ? page.endCursor : null,
      };
    }
    case 'delete': {
      const result = await storage.deleteRecord(caller, {
        namespace,
        key: field<string>(body, 'key', 'string', true)!,
        ifRevision: optionalInt(body, 'ifRevision'),
      });
      return { success: result.deleted };
    }
    case 'bulkPut': {
      const items = field<unknown[]>(body, 'items', 'array', true)!;
      const parsed: BulkPutItem[] = items.map((item, index) => {
        if (typeof item !== 'object' || item === null || Array.isArray(item)) {
          throw new ProtocolError(400, 'VALIDATION_FAILED', `items[${index}] must be an object`);
        }
        const it = item as Body;
        checkKnownFields(it, BULK_ITEM_FIELDS, `items[${index}]`);
        if (!('value' in it)) throw new ProtocolError(400, 'VALIDATION_FAILED', `items[${index}].value is required`);
        return {
          key: field<string>(it, 'key', 'string', true)!,
          value: it.value,
          metadata: it.metadata,
          ttlSeconds: optionalInt(it, 'ttlSeconds'),
          ifRevision: optionalInt(it, 'ifRevision'),
        };
      });
      const records = await storage.bulkPutRecords(caller, { namespace, items: parsed });
      return {
        namespace,
        items: records.map((r) => ({ key: r.key, revision: r.revision, ttlExpiresAt: r.ttlExpiresAt?.toISOString() ?? null })),
      };
    }
    case 'increment': {
      const record = await storage.incrementRecord(caller, {
        namespace,
        key: field<string>(body, 'key', 'string', true)!,
        // Any JSON: the core refuses what is not a finite number.
        by: body.by as number,
        ttlSeconds: optionalInt(body, 'ttlSeconds'),
      });
      return recordShape(record, true, true);
    }
    case 'commit': {
      // Shapes are the core's to check (prepareCommit): lists, one of put/delete/increment, names, numbers.
      const operations = field<unknown>(body, 'operations', 'array', true);
      const dryRun = field<boolean>(body, 'dryRun', 'boolean', false) ?? false;
      const outcome = await storage.commit(caller, {
        checks: body.checks as CommitCheckInput[] | null | undefined,
        operations: operations as CommitOperationInput[],
        dryRun,
      });
      return {
        records: outcome.records.map((r) => (r === null ? null : recordShape(r, true, true))),
        committed: outcome.committed,
        cursor: outcome.cursor,
      };
    }
    case 'changes': {
      // The core owns the rules (page bounds, cursors, expiry, a keyPrefix needing a namespace, the
      // install's allowed namespaces); this maps names (keyPrefix → prefix, cursor → after) and shapes.
      const only = field<string>(body, 'namespace', 'string', false) ?? null;
      const keyPrefix = field<string>(body, 'keyPrefix', 'string', false) ?? null;
      const limit = optionalInt(body, 'limit');
      const cursor = field<string>(body, 'cursor', 'string', false) ?? null;
      const scope = await storage.resolveInstall(caller, undefined, 'read', only ?? undefined);
      const page = await storage.changes(caller, scope, { namespace: only, prefix: keyPrefix, after: cursor, first: limit });
      return {
        items: page.changes.map((c) => ({
          cursor: c.cursor,
          at: c.at.toISOString(),
          operation: c.operation,
          namespace: c.namespace,
          key: c.key,
          revision: c.revision,
          actor: c.actor,
        })),
        // Always a resume point (the core's endCursor), also after an empty or filtered page.
        nextCursor: page.endCursor,
      };
    }
    default:
      throw new ProtocolError(400, 'VALIDATION_FAILED', 'operation must be one of put, get, list, delete, bulkPut, increment, commit, changes');
  }
}

/** A malformed percent-encoding is treated like any malformed id: an unknown install (403), never a 500. */
function decodeInstallId(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

export async function handleRunnerRequest(req: IncomingMessage, res: ServerResponse, path: string, deps: RunnerDeps): Promise<void> {
  const sendError = (status: number, code: string, message: string, extra: unknown = null, headers: Record<string, string> = {}) =>
    sendJson(res, status, { error: message, code, details: extra }, headers);
  try {
    if (req.method !== 'POST') {
      sendError(405, 'METHOD_NOT_ALLOWED', 'use POST', null, { allow: 'POST' });
      return;
    }
    const installId = decodeInstallId(path.slice(RUNNER_PATH.length));
    const principal = await deps.authenticate(installId);
    let body: unknown;
    try {
      const raw = await readBody(req, deps.maxBodyBytes);
      if (!isUtf8Body(raw)) throw new ProtocolError(400, 'VALIDATION_FAILED', 'the body must be UTF-8 JSON');
      // Refused by a byte scan before JSON.parse (2 million levels cost a second to parse): the core's valueFormat limit, early.
      if (jsonNestingExceeds(raw, MAX_REQUEST_JSON_DEPTH)) {
        throw new ProtocolError(400, 'LIMIT_EXCEEDED', `the body nests JSON deeper than ${MAX_JSON_DEPTH} levels allow`, {
          limit: 'valueFormat',
          max: MAX_JSON_DEPTH,
          actual: null,
          itemIndex: null,
        });
      }
      body = JSON.parse(raw.toString('utf8'));
    } catch (error) {
      if (error instanceof ProtocolError) throw error;
      if (error instanceof BodyTooLargeError) {
        sendError(413, 'PAYLOAD_TOO_LARGE', `request body larger than ${deps.maxBodyBytes} bytes`, null, { connection: 'close' });
        return;
      }
      throw new ProtocolError(400, 'VALIDATION_FAILED', 'the body must be a JSON object');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new ProtocolError(400, 'VALIDATION_FAILED', 'the body must be a JSON object');
    }
    sendJson(res, 200, await execute(body as Body, principal, deps));
  } catch (error) {
    if (error instanceof ProtocolError) {
      sendError(error.status, error.code, error.message, error.details);
      return;
    }
    const mapped = mapDatabaseError(error);
    if (mapped instanceof UnavailableError) {
      sendError(503, 'INTERNAL_ERROR', mapped.message);
      return;
    }
    if (mapped instanceof StorageError) {
      const [status, code] = mapped instanceof BadInputError ? [400, 'VALIDATION_FAILED'] : STORAGE_ERROR_HTTP[mapped.code];
      const headers: Record<string, string> = {};
      if (status === 429 && 'retryAfterSeconds' in mapped) headers['retry-after'] = String(mapped.retryAfterSeconds);
      sendError(status, code, mapped.message, details(mapped), headers);
      return;
    }
    deps.logError(error);
    sendError(500, 'INTERNAL_ERROR', 'internal error');
  }
}
