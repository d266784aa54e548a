/** The typed errors of the result unions: the core's error classes, exposed as GraphQL objects. */
import {
  CommitConflictError,
  LimitExceededError,
  type CheckConflict,
  QuotaExceededError,
  RevisionMismatchError,
  StorageError,
  ValidationFailedError,
  type ValidationIssue,
} from '../../storage/errors.js';
import { builder } from '../builder.js';

export const StorageErrorCodeEnum = builder.enumType('StorageErrorCode', {
  description:
    'Why a storage operation was refused: the `code` of a typed error in a result union, and the `extensions.code` of a GraphQL error.',
  values: {
    VALIDATION_FAILED: {
      description: "The value does not satisfy the namespace's JSON Schema, or the schema itself is invalid.",
    },
    LIMIT_EXCEEDED: {
      description: 'A per-request limit: key or namespace name, value or metadata size, bulk or commit size, TTL range, page size.',
    },
    QUOTA_EXCEEDED: { description: 'A stored-data quota: namespaces, keys per namespace, bytes per install.' },
    REVISION_MISMATCH: {
      description: "ifRevision did not match the stored record (RevisionMismatch), or a commit's checks did not hold (CommitConflict).",
    },
    NOT_FOUND: {
      description: "A missing record, on the Runner REST door's `get` (HTTP 404); GraphQL answers null for a missing record instead.",
    },
    UNAUTHENTICATED: { description: 'No valid credential (GraphQL error extension; HTTP 401).' },
    FORBIDDEN: {
      description: 'The credential may not do this (GraphQL error extension; HTTP 403 where the whole request is refused).',
    },
    RATE_LIMITED: { description: 'Too many requests for this install (GraphQL error extension; HTTP 429).' },
    CURSOR_EXPIRED: {
      description: 'A change-feed cursor older than the retention window (GraphQL error extension; Runner HTTP 410). Resync from a snapshot.',
    },
    INTERNAL: {
      description:
        'An unexpected error, or storage temporarily unavailable (GraphQL error extension); the message carries no internals. Retry later.',
    },
  } as const,
});

export const StorageErrorInterface = builder.interfaceRef<StorageError>('StorageError').implement({
  description: 'What every typed error in a result union carries.',
  fields: (t) => ({
    code: t.field({
      type: StorageErrorCodeEnum,
      description: "The kind of error, one per error type (REVISION_MISMATCH for RevisionMismatch, and so on); branch on it or on __typename.",
      resolve: (e) => e.code,
    }),
    message: t.exposeString('message', {
      description: 'What went wrong, in English, for people and logs; its wording may change, so do not parse it.',
    }),
  }),
});

builder.objectType(RevisionMismatchError, {
  name: 'RevisionMismatch',
  description:
    "A write's or delete's `ifRevision` did not match the stored record (code REVISION_MISMATCH). Nothing was written; read the record again and retry with its current revision.",
  interfaces: [StorageErrorInterface],
  fields: (t) => ({
    namespace: t.exposeString('namespace', { description: 'The namespace of the record that did not match.' }),
    key: t.exposeString('key', { description: 'The key of the record that did not match.' }),
    expectedRevision: t.exposeInt('expectedRevision', { description: 'The `ifRevision` the write asked for.' }),
    currentRevision: t.exposeInt('currentRevision', {
      nullable: true,
      description: "The record's revision now; null when the record does not exist.",
    }),
  }),
});

builder.objectType(QuotaExceededError, {
  name: 'QuotaExceeded',
  description:
    "The write would take the install past one of its stored-data quotas (code QUOTA_EXCEEDED); nothing was written. Quotas are in Install.quota; deleting records frees room.",
  interfaces: [StorageErrorInterface],
  fields: (t) => ({
    quota: t.exposeString('quota', { description: 'Which quota: "namespaces", "keysPerNamespace" or "bytes".' }),
    allowed: t.expose('allowed', { type: 'SafeInt', description: "The quota's value for this install." }),
    used: t.expose('used', { type: 'SafeInt', description: 'Usage before the refused write.' }),
    itemIndex: t.exposeInt('itemIndex', {
      nullable: true,
      description:
        'With bulkPutRecords: the index of the first item that does not fit; otherwise null (also for commit, whose quotas concern the commit as a whole).',
    }),
  }),
});

builder.objectType(LimitExceededError, {
  name: 'LimitExceeded',
  description:
    'The request breaks a per-request limit or format rule (code LIMIT_EXCEEDED); nothing was written. Reads and upsertInstall report it as a GraphQL error with these fields in `extensions`.',
  interfaces: [StorageErrorInterface],
  fields: (t) => ({
    limit: t.exposeString('limit', {
      description:
        'Which limit: "valueBytes", "valueType", "valueFormat", "metadataBytes", "metadataType",\n"keyLength", "keyFormat", "namespaceFormat", "ttlSeconds", "bulkItems", "bulkBytes",\n"bulkDuplicateKey", "keysPerRead", "pageSize", "commitOperations", "commitChecks",\n"commitBytes", "commitDuplicateKey", "schemaBytes".',
    }),
    max: t.expose('max', {
      type: 'SafeInt',
      nullable: true,
      description: "The limit's value, in its unit (bytes, characters, seconds, items or nesting levels), when it has one; otherwise null.",
    }),
    actual: t.expose('actual', {
      type: 'SafeInt',
      nullable: true,
      description: 'What the request had, in the same unit as `max`, when it is known; otherwise null.',
    }),
    itemIndex: t.exposeInt('itemIndex', {
      nullable: true,
      description:
        'With bulkPutRecords and commit: the index of the offending item or operation (for "commitDuplicateKey" its second occurrence); otherwise null (also for "commitOperations", "commitChecks", "commitBytes" and a malformed check).',
    }),
  }),
});

const ValidationIssueRef = builder.objectRef<ValidationIssue>('ValidationIssue').implement({
  description: 'One reason a value or a JSON Schema document was refused.',
  fields: (t) => ({
    path: t.exposeString('path', {
      description:
        'JSON Pointer into the value, e.g. /items/0/name; with bulk writes, prefixed by /<item index>. For a refused schema document, a pointer into the document.',
    }),
    message: t.exposeString('message', { description: 'What is wrong there, in English.' }),
    keyword: t.exposeString('keyword', {
      description:
        'The JSON Schema keyword that failed, e.g. "type", "required" or "maxLength"; for a refused schema document it may also name the rule broken, e.g. "schemaCost".',
    }),
  }),
});

builder.objectType(ValidationFailedError, {
  name: 'ValidationFailed',
  description:
    "The value does not satisfy the namespace's JSON Schema, the schema version asked for does not exist, or (setNamespaceSchema) the schema document is invalid (code VALIDATION_FAILED). Nothing was written.",
  interfaces: [StorageErrorInterface],
  fields: (t) => ({
    schemaVersion: t.exposeInt('schemaVersion', {
      nullable: true,
      description: 'The schema version the value was checked against (or the unknown version asked for); null when a schema document was refused.',
    }),
    issues: t.field({
      type: [ValidationIssueRef],
      description:
        'What failed: for a value, the first problem found (none when the schema version does not exist); for a schema document, the problems found.',
      resolve: (e) => e.issues,
    }),
  }),
});

const CheckConflictRef = builder.objectRef<CheckConflict>('CheckConflict').implement({
  description: 'One check of a commit that did not hold.',
  fields: (t) => ({
    index: t.exposeInt('index', { description: 'The index of the check in CommitInput.checks.' }),
    namespace: t.exposeString('namespace', { description: 'The namespace the check named.' }),
    key: t.exposeString('key', { description: 'The key the check named.' }),
    expectedRevision: t.exposeInt('expectedRevision', {
      description: 'The revision the check asked for (0: the key holds no live record).',
    }),
    currentRevision: t.exposeInt('currentRevision', {
      nullable: true,
      description: 'The revision of the live record now; null when the key holds no live record.',
    }),
  }),
});

builder.objectType(CommitConflictError, {
  name: 'CommitConflict',
  description:
    "A commit's checks did not hold (code REVISION_MISMATCH): nothing was written. Read the records again and retry the commit with their current revisions.",
  interfaces: [StorageErrorInterface],
  fields: (t) => ({
    conflicts: t.field({
      type: [CheckConflictRef],
      description: 'Every check that failed, in input order.',
      resolve: (e) => e.conflicts,
    }),
  }),
});

export const WRITE_ERRORS = [RevisionMismatchError, QuotaExceededError, LimitExceededError, ValidationFailedError];
export const DELETE_ERRORS = [RevisionMismatchError, LimitExceededError];
export const SCHEMA_ERRORS = [LimitExceededError, ValidationFailedError];
export const COMMIT_ERRORS = [CommitConflictError, QuotaExceededError, LimitExceededError, ValidationFailedError];
export const INCREMENT_ERRORS = [QuotaExceededError, LimitExceededError, ValidationFailedError];
