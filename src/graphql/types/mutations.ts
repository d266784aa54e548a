import type { StoredRecord } from '../../storage/records.js';
import type { CommitOutcome } from '../../storage/storage.js';
import type { NamespaceSchema } from '../../storage/schemas.js';
import { builder } from '../builder.js';
import { COMMIT_ERRORS, DELETE_ERRORS, INCREMENT_ERRORS, SCHEMA_ERRORS, WRITE_ERRORS } from './errors.js';
import { InstallRef } from './installs.js';
import { NamespaceSchemaRef, RecordRef } from './records.js';

/** Field descriptions that putRecord and bulkPutRecords items share (the same rules apply to both). */
const VALUE_DESCRIPTION = 'Any JSON value except null; at most Quota.maxValueBytes (default 65,536) UTF-8 bytes as compact JSON.';
const METADATA_DESCRIPTION = 'Must be a JSON object; at most Quota.maxMetadataBytes (default 4,096) bytes. Omitted: {}.';
const TTL_DESCRIPTION = 'Seconds until the record expires; omitted means it never expires. 60 to 2,592,000 (30 days) by default.';

const PutRecordInput = builder.inputType('PutRecordInput', {
  description: 'One record to create or replace (putRecord).',
  fields: (t) => ({
    installId: t.id({ description: 'Admins only; extension callers write to their own install.' }),
    namespace: t.string({ required: true, description: 'The namespace, ^[a-z0-9][a-z0-9._-]{0,63}$; created by its first write.' }),
    key: t.string({ required: true, description: '1 to 256 Unicode code points, no control characters; `/` is allowed (for prefix listing).' }),
    value: t.field({
      type: 'JSON',
      required: true,
      description: VALUE_DESCRIPTION,
    }),
    metadata: t.field({
      type: 'JSON',
      description: METADATA_DESCRIPTION,
    }),
    ttlSeconds: t.int({
      description: TTL_DESCRIPTION,
    }),
    ifRevision: t.int({
      description: 'Omitted: write unconditionally. 0: create only, fail if the record exists.\nn > 0: the record must exist with revision n.',
    }),
    schemaVersion: t.int({ description: 'Validate against this schema version instead of the active one.' }),
  }),
});

const BulkPutItem = builder.inputType('BulkPutItem', {
  description: 'One record of a bulkPutRecords batch; the fields mean what they mean in PutRecordInput.',
  fields: (t) => ({
    key: t.string({ required: true, description: 'The key; each key at most once per batch (LimitExceeded "bulkDuplicateKey").' }),
    value: t.field({
      type: 'JSON',
      required: true,
      description: VALUE_DESCRIPTION,
    }),
    metadata: t.field({
      type: 'JSON',
      description: METADATA_DESCRIPTION,
    }),
    ttlSeconds: t.int({
      description: TTL_DESCRIPTION,
    }),
    ifRevision: t.int({
      description: 'Omitted: write unconditionally. 0: create only. n > 0: the record must exist with revision n. Any mismatch fails the whole batch.',
    }),
  }),
});

const BulkPutRecordsInput = builder.inputType('BulkPutRecordsInput', {
  description: 'Records of one namespace to write together, all or nothing (bulkPutRecords).',
  fields: (t) => ({
    installId: t.id({ description: 'Admins only; extension callers write to their own install.' }),
    namespace: t.string({ required: true, description: 'The namespace, ^[a-z0-9][a-z0-9._-]{0,63}$; created by its first write.' }),
    items: t.field({
      type: [BulkPutItem],
      required: true,
      description:
        '1 to 100 items by default (LimitExceeded "bulkItems"), at most 1 MiB of values and metadata together ("bulkBytes"). Validated against the active schema.',
    }),
  }),
});

const DeleteRecordInput = builder.inputType('DeleteRecordInput', {
  description: 'The record to delete (deleteRecord).',
  fields: (t) => ({
    installId: t.id({ description: 'Admins only; extension callers write to their own install.' }),
    namespace: t.string({ required: true, description: 'The namespace of the record.' }),
    key: t.string({ required: true, description: 'The key of the record.' }),
    ifRevision: t.int({
      description:
        'n > 0: delete only if the record exists with revision n. 0: assert that the record does not exist (a live record is RevisionMismatch). Omitted: delete whatever is there.',
    }),
  }),
});

const NAMESPACE_DESCRIPTION = 'The namespace, ^[a-z0-9][a-z0-9._-]{0,63}$; created by its first write.';
const KEY_DESCRIPTION = '1 to 256 Unicode code points, no control characters; `/` is allowed (for prefix listing).';
const BY_DESCRIPTION =
  "What to add (negative to subtract), taken as the shortest decimal text of the number (0.1 + 0.2 stores 0.3). The stored value must be a JSON number (a missing record starts at 0); a result beyond 1e15 in magnitude is LimitExceeded \"valueType\".";
const INCREMENT_TTL_DESCRIPTION = 'Sets the TTL like a put; omitted clears it.';

const CommitCheck = builder.inputType('CommitCheck', {
  description: 'A condition of a commit on one key, evaluated against the state the operations apply to. A check reads: it needs read capability.',
  fields: (t) => ({
    namespace: t.string({ required: true, description: 'The namespace of the key.' }),
    key: t.string({ required: true, description: 'The key to check.' }),
    revision: t.int({ required: true, description: '0: the key holds no live record. n > 0: the record is live at revision n.' }),
  }),
});

const CommitPut = builder.inputType('CommitPut', {
  description: 'Create or replace a record, like putRecord without ifRevision (value, metadata and TTL together).',
  fields: (t) => ({
    namespace: t.string({ required: true, description: NAMESPACE_DESCRIPTION }),
    key: t.string({ required: true, description: KEY_DESCRIPTION }),
    value: t.field({ type: 'JSON', required: true, description: VALUE_DESCRIPTION }),
    metadata: t.field({ type: 'JSON', description: METADATA_DESCRIPTION }),
    ttlSeconds: t.int({ description: TTL_DESCRIPTION }),
    schemaVersion: t.int({ description: 'Validate against this schema version instead of the active one.' }),
  }),
});

const CommitDelete = builder.inputType('CommitDelete', {
  description: 'Remove a live record; an absent key is fine.',
  fields: (t) => ({
    namespace: t.string({ required: true, description: 'The namespace of the record.' }),
    key: t.string({ required: true, description: 'The key of the record.' }),
  }),
});

const CommitIncrement = builder.inputType('CommitIncrement', {
  description: 'Add `by` to a record whose value is a number, like incrementRecord.',
  fields: (t) => ({
    namespace: t.string({ required: true, description: NAMESPACE_DESCRIPTION }),
    key: t.string({ required: true, description: KEY_DESCRIPTION }),
    by: t.float({ required: true, description: BY_DESCRIPTION }),
    ttlSeconds: t.int({ description: INCREMENT_TTL_DESCRIPTION }),
  }),
});

const CommitOperation = builder.inputType('CommitOperation', {
  description: 'Exactly one of the fields.',
  isOneOf: true,
  fields: (t) => ({
    put: t.field({ type: CommitPut, description: 'Create or replace a record.' }),
    delete: t.field({ type: CommitDelete, description: 'Delete a record.' }),
    increment: t.field({ type: CommitIncrement, description: 'Add to a numeric record.' }),
  }),
});

const CommitInput = builder.inputType('CommitInput', {
  description: 'Checks, then operations across namespaces of one install, all or nothing (commit).',
  fields: (t) => ({
    installId: t.id({ description: 'Admins only; extension callers write to their own install.' }),
    checks: t.field({
      type: [CommitCheck],
      defaultValue: [],
      description:
        'Every check must hold, or nothing is written and CommitConflict lists the ones that failed. At most 100 by default (LimitExceeded "commitChecks").',
    }),
    operations: t.field({
      type: [CommitOperation],
      required: true,
      description:
        'Applied in order; a key may appear in at most one operation (LimitExceeded "commitDuplicateKey"). 1 to 100 by default ("commitOperations"), at most 1 MiB of values and metadata together ("commitBytes").',
    }),
    dryRun: t.boolean({
      defaultValue: false,
      description: 'Check and validate everything, report the outcome, write nothing.',
    }),
  }),
});

const IncrementRecordInput = builder.inputType('IncrementRecordInput', {
  description: 'The counter to change (incrementRecord).',
  fields: (t) => ({
    installId: t.id({ description: 'Admins only; extension callers write to their own install.' }),
    namespace: t.string({ required: true, description: NAMESPACE_DESCRIPTION }),
    key: t.string({ required: true, description: KEY_DESCRIPTION }),
    by: t.float({ required: true, description: BY_DESCRIPTION }),
    ttlSeconds: t.int({ description: INCREMENT_TTL_DESCRIPTION }),
  }),
});

const QuotaInput = builder.inputType('QuotaInput', {
  description:
    "Per-install overrides of the server's quota defaults; each field is a non-negative integer, and an omitted or null field takes the server default. Lowering a quota below current usage keeps the data; only writes that would grow usage are refused.",
  fields: (t) => ({
    maxNamespaces: t.int({ description: 'Most namespaces holding live records (server default 32).' }),
    maxKeysPerNamespace: t.int({ description: 'Most live records per namespace (server default 5,120).' }),
    maxBytes: t.field({ type: 'SafeInt', description: 'Most stored bytes of values and metadata for the install (server default 256 MiB).' }),
    maxValueBytes: t.int({ description: 'Largest value in bytes of compact JSON (server default 65,536).' }),
    maxMetadataBytes: t.int({ description: 'Largest metadata object in bytes of compact JSON (server default 4,096).' }),
  }),
});

const UpsertInstallInput = builder.inputType('UpsertInstallInput', {
  description: 'An install and its storage capabilities, as the host platform registers them (upsertInstall).',
  fields: (t) => ({
    id: t.id({ required: true, description: "The install's UUID (a malformed one is BAD_USER_INPUT)." }),
    tenantId: t.id({ description: "Admins may only name their own tenant; omitted means the admin's tenant." }),
    extensionId: t.string({ required: true, description: 'Which extension this install is of: 1 to 200 printable characters.' }),
    enabled: t.boolean({
      required: true,
      description: 'False refuses the extension and the Runner (FORBIDDEN) without deleting anything; admins keep access.',
    }),
    canRead: t.boolean({ required: true, description: 'Whether the install may read records.' }),
    canWrite: t.boolean({ required: true, description: 'Whether the install may write and delete records.' }),
    namespaces: t.stringList({
      description: 'null means any namespace. Otherwise the only namespaces the install may touch (at most 1,000 names). Omitted on an update: keep the stored list.',
    }),
    quota: t.field({
      type: QuotaInput,
      description: 'Per-install quota overrides; an omitted field keeps the server default. Omitted on an update: keep the stored overrides; null: reset all to the server defaults.',
    }),
  }),
});

const SetNamespaceSchemaInput = builder.inputType('SetNamespaceSchemaInput', {
  description: 'A new JSON Schema version for a namespace (setNamespaceSchema).',
  fields: (t) => ({
    installId: t.id({ required: true, description: 'The install, of the admin\'s tenant.' }),
    namespace: t.string({ required: true, description: 'The namespace, ^[a-z0-9][a-z0-9._-]{0,63}$; it need not hold records yet.' }),
    schema: t.field({
      type: 'JSON',
      required: true,
      description:
        'A JSON Schema (draft 2020-12) document. At most 64 KiB of compact JSON; strict (an unknown keyword is an error, `format` is enforced), no `$ref` outside the document.',
    }),
  }),
});

const PutRecordSuccess = builder.objectRef<{ record: StoredRecord }>('PutRecordSuccess').implement({
  description: 'The record was written.',
  fields: (t) => ({
    record: t.field({
      type: RecordRef,
      description: 'The record as written, with its new revision.',
      resolve: (r, _a, ctx) => {
        ctx.work.returned([r.record]);
        return r.record;
      },
    }),
  }),
});

const BulkPutRecordsSuccess = builder.objectRef<{ records: StoredRecord[] }>('BulkPutRecordsSuccess').implement({
  description: 'Every item of the batch was written.',
  fields: (t) => ({
    records: t.field({
      type: [RecordRef],
      description: 'The written records, in the order of the input items.',
      resolve: (r, _a, ctx) => {
        ctx.work.returned(r.records);
        return r.records;
      },
    }),
  }),
});

const CommitSuccess = builder.objectRef<CommitOutcome>('CommitSuccess').implement({
  description: 'Every check held and every operation was applied (or, for a dry run, would have been).',
  fields: (t) => ({
    records: t.field({
      type: [RecordRef],
      nullable: { list: false, items: true },
      description: 'One entry per operation, in order: the record as written, or null for a delete.',
      resolve: (r, _a, ctx) => {
        ctx.work.returned(r.records);
        return r.records;
      },
    }),
    committed: t.exposeBoolean('committed', { description: 'False for a dry run: nothing was written.' }),
    cursor: t.exposeString('cursor', {
      nullable: true,
      description: 'The change-feed cursor just after this commit; null for a dry run.',
    }),
  }),
});

const DeleteRecordSuccess = builder
  .objectRef<{ namespace: string; key: string; deleted: boolean }>('DeleteRecordSuccess')
  .implement({
    description: 'The record is gone (or was never there).',
    fields: (t) => ({
      namespace: t.exposeString('namespace', { description: 'The namespace of the record.' }),
      key: t.exposeString('key', { description: 'The key of the record.' }),
      deleted: t.exposeBoolean('deleted', { description: 'False when there was nothing to delete.' }),
    }),
  });

const SetNamespaceSchemaSuccess = builder.objectRef<{ schema: NamespaceSchema }>('SetNamespaceSchemaSuccess').implement({
  description: 'The schema was stored and is now the active one.',
  fields: (t) => ({
    schema: t.field({ type: NamespaceSchemaRef, description: 'The new version, now active.', resolve: (r) => r.schema }),
  }),
});

builder.mutationFields((t) => ({
  putRecord: t.field({
    type: PutRecordSuccess,
    description:
      'Create or replace one record. Needs write capability and an allowed namespace (FORBIDDEN, a GraphQL error, otherwise).',
    args: { input: t.arg({ type: PutRecordInput, required: true, description: 'The record to write.' }) },
    errors: {
      types: WRITE_ERRORS,
      directResult: true,
      union: {
        name: 'PutRecordResult',
        description: 'PutRecordSuccess, or the typed error saying why nothing was written.',
      },
    },
    resolve: async (_r, { input }, ctx) => ({ record: await ctx.work.read(() => ctx.storage.putRecord(ctx.caller, input)) }),
  }),
  bulkPutRecords: t.field({
    type: BulkPutRecordsSuccess,
    description:
      'Write up to the bulk limit of records of one namespace, all or nothing. Needs write capability and an allowed namespace.',
    args: { input: t.arg({ type: BulkPutRecordsInput, required: true, description: 'The namespace and the items to write.' }) },
    errors: {
      types: WRITE_ERRORS,
      directResult: true,
      union: {
        name: 'BulkPutRecordsResult',
        description: 'BulkPutRecordsSuccess, or the typed error (naming the item in `itemIndex` or `path`) saying why nothing was written.',
      },
    },
    resolve: async (_r, { input }, ctx) => ({ records: await ctx.work.read(() => ctx.storage.bulkPutRecords(ctx.caller, input)) }),
  }),
  deleteRecord: t.field({
    type: DeleteRecordSuccess,
    description:
      'Delete one record. Deleting a record that does not exist is not an error. Needs write capability and an allowed namespace.',
    args: { input: t.arg({ type: DeleteRecordInput, required: true, description: 'The record to delete.' }) },
    errors: {
      types: DELETE_ERRORS,
      directResult: true,
      union: {
        name: 'DeleteRecordResult',
        description: 'DeleteRecordSuccess, or the typed error saying why nothing was deleted.',
      },
    },
    resolve: (_r, { input }, ctx) => ctx.work.read(() => ctx.storage.deleteRecord(ctx.caller, input)),
  }),
  commit: t.field({
    type: CommitSuccess,
    description:
      'Checks, then puts, deletes and increments across namespaces of one install: all or nothing. Needs write capability on the namespaces written and read capability on the namespaces checked (FORBIDDEN otherwise).',
    args: { input: t.arg({ type: CommitInput, required: true, description: 'The checks and the operations.' }) },
    errors: {
      types: COMMIT_ERRORS,
      directResult: true,
      union: {
        name: 'CommitResult',
        description:
          'CommitSuccess, or the typed error saying why nothing was written: CommitConflict for failed checks; LimitExceeded names the operation in `itemIndex`.',
      },
    },
    resolve: (_r, { input }, ctx) => ctx.work.read(() => ctx.storage.commit(ctx.caller, input)),
  }),
  incrementRecord: t.field({
    type: PutRecordSuccess,
    description:
      'Add `by` to a record whose value is a number (a missing record starts at 0). Never loses an increment. Needs write capability and an allowed namespace.',
    args: { input: t.arg({ type: IncrementRecordInput, required: true, description: 'The counter and what to add.' }) },
    errors: {
      types: INCREMENT_ERRORS,
      directResult: true,
      union: {
        name: 'IncrementRecordResult',
        description: 'PutRecordSuccess with the record as written, or the typed error saying why nothing was written.',
      },
    },
    resolve: async (_r, { input }, ctx) => ({ record: await ctx.work.read(() => ctx.storage.incrementRecord(ctx.caller, input)) }),
  }),
  upsertInstall: t.field({
    type: InstallRef,
    description:
      'Admin only: create or update an install and its storage capabilities. Errors are GraphQL errors: FORBIDDEN (not an admin, or another tenant), LIMIT_EXCEEDED (a malformed field), BAD_USER_INPUT (a malformed id).',
    args: { input: t.arg({ type: UpsertInstallInput, required: true, description: 'The install as it should be.' }) },
    resolve: async (_r, { input }, ctx) => ctx.storage.scopeOf(await ctx.work.read(() => ctx.storage.upsertInstall(ctx.caller, input))),
  }),
  setNamespaceSchema: t.field({
    type: SetNamespaceSchemaSuccess,
    description:
      'Admin only: set a new active JSON Schema version for a namespace. An invalid schema document is ValidationFailed and changes nothing.',
    args: { input: t.arg({ type: SetNamespaceSchemaInput, required: true, description: 'The namespace and its new schema.' }) },
    errors: {
      types: SCHEMA_ERRORS,
      directResult: true,
      union: {
        name: 'SetNamespaceSchemaResult',
        description: 'SetNamespaceSchemaSuccess, or the typed error saying why the schema was not stored.',
      },
    },
    resolve: async (_r, { input }, ctx) => ({ schema: await ctx.work.read(() => ctx.storage.setNamespaceSchema(ctx.caller, input)) }),
  }),
}));
