import type { StoredRecord } from '../../storage/records.js';
import type { NamespaceSchema } from '../../storage/schemas.js';
import { builder } from '../builder.js';
import { DELETE_ERRORS, SCHEMA_ERRORS, WRITE_ERRORS } from './errors.js';
import { InstallRef } from './installs.js';
import { NamespaceSchemaRef, RecordRef } from './records.js';

const PutRecordInput = builder.inputType('PutRecordInput', {
  fields: (t) => ({
    installId: t.id({ description: 'Admins only; extension callers write to their own install.' }),
    namespace: t.string({ required: true }),
    key: t.string({ required: true }),
    value: t.field({ type: 'JSON', required: true }),
    metadata: t.field({ type: 'JSON', description: 'Must be a JSON object.' }),
    ttlSeconds: t.int({ description: 'Seconds until the record expires; omitted means it never expires.' }),
    ifRevision: t.int({
      description: 'Omitted: write unconditionally. 0: create only, fail if the record exists.\nn > 0: the record must exist with revision n.',
    }),
    schemaVersion: t.int({ description: 'Validate against this schema version instead of the active one.' }),
  }),
});

const BulkPutItem = builder.inputType('BulkPutItem', {
  fields: (t) => ({
    key: t.string({ required: true }),
    value: t.field({ type: 'JSON', required: true }),
    metadata: t.field({ type: 'JSON' }),
    ttlSeconds: t.int(),
    ifRevision: t.int(),
  }),
});

const BulkPutRecordsInput = builder.inputType('BulkPutRecordsInput', {
  fields: (t) => ({
    installId: t.id(),
    namespace: t.string({ required: true }),
    items: t.field({ type: [BulkPutItem], required: true }),
  }),
});

const DeleteRecordInput = builder.inputType('DeleteRecordInput', {
  fields: (t) => ({
    installId: t.id(),
    namespace: t.string({ required: true }),
    key: t.string({ required: true }),
    ifRevision: t.int({ description: 'n > 0: delete only if the record exists with revision n.' }),
  }),
});

const QuotaInput = builder.inputType('QuotaInput', {
  fields: (t) => ({
    maxNamespaces: t.int(),
    maxKeysPerNamespace: t.int(),
    maxBytes: t.field({ type: 'SafeInt' }),
    maxValueBytes: t.int(),
    maxMetadataBytes: t.int(),
  }),
});

const UpsertInstallInput = builder.inputType('UpsertInstallInput', {
  fields: (t) => ({
    id: t.id({ required: true }),
    tenantId: t.id({ description: "Admins may only name their own tenant; omitted means the admin's tenant." }),
    extensionId: t.string({ required: true }),
    enabled: t.boolean({ required: true }),
    canRead: t.boolean({ required: true }),
    canWrite: t.boolean({ required: true }),
    namespaces: t.stringList({ description: 'null means any namespace.' }),
    quota: t.field({ type: QuotaInput, description: 'Per-install quota overrides; an omitted field keeps the server default.' }),
  }),
});

const SetNamespaceSchemaInput = builder.inputType('SetNamespaceSchemaInput', {
  fields: (t) => ({
    installId: t.id({ required: true }),
    namespace: t.string({ required: true }),
    schema: t.field({ type: 'JSON', required: true, description: 'A JSON Schema (draft 2020-12) document.' }),
  }),
});

const PutRecordSuccess = builder.objectRef<{ record: StoredRecord }>('PutRecordSuccess').implement({
  fields: (t) => ({
    record: t.field({
      type: RecordRef,
      resolve: (r, _a, ctx) => {
        ctx.work.returned([r.record]);
        return r.record;
      },
    }),
  }),
});

const BulkPutRecordsSuccess = builder.objectRef<{ records: StoredRecord[] }>('BulkPutRecordsSuccess').implement({
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

const DeleteRecordSuccess = builder
  .objectRef<{ namespace: string; key: string; deleted: boolean }>('DeleteRecordSuccess')
  .implement({
    fields: (t) => ({
      namespace: t.exposeString('namespace'),
      key: t.exposeString('key'),
      deleted: t.exposeBoolean('deleted', { description: 'False when there was nothing to delete.' }),
    }),
  });

const SetNamespaceSchemaSuccess = builder.objectRef<{ schema: NamespaceSchema }>('SetNamespaceSchemaSuccess').implement({
  fields: (t) => ({ schema: t.field({ type: NamespaceSchemaRef, resolve: (r) => r.schema }) }),
});

builder.mutationFields((t) => ({
  putRecord: t.field({
    type: PutRecordSuccess,
    description: 'Create or replace one record.',
    args: { input: t.arg({ type: PutRecordInput, required: true }) },
    errors: { types: WRITE_ERRORS, directResult: true, union: { name: 'PutRecordResult' } },
    resolve: async (_r, { input }, ctx) => ({ record: await ctx.work.read(() => ctx.storage.putRecord(ctx.caller, input)) }),
  }),
  bulkPutRecords: t.field({
    type: BulkPutRecordsSuccess,
    description: 'Write up to the bulk limit of records of one namespace, all or nothing.',
    args: { input: t.arg({ type: BulkPutRecordsInput, required: true }) },
    errors: { types: WRITE_ERRORS, directResult: true, union: { name: 'BulkPutRecordsResult' } },
    resolve: async (_r, { input }, ctx) => ({ records: await ctx.work.read(() => ctx.storage.bulkPutRecords(ctx.caller, input)) }),
  }),
  deleteRecord: t.field({
    type: DeleteRecordSuccess,
    description: 'Delete one record. Deleting a record that does not exist is not an error.',
    args: { input: t.arg({ type: DeleteRecordInput, required: true }) },
    errors: { types: DELETE_ERRORS, directResult: true, union: { name: 'DeleteRecordResult' } },
    resolve: (_r, { input }, ctx) => ctx.work.read(() => ctx.storage.deleteRecord(ctx.caller, input)),
  }),
  upsertInstall: t.field({
    type: InstallRef,
    description: 'Admin only: create or update an install and its storage capabilities.',
    args: { input: t.arg({ type: UpsertInstallInput, required: true }) },
    resolve: async (_r, { input }, ctx) => ctx.storage.scopeOf(await ctx.work.read(() => ctx.storage.upsertInstall(ctx.caller, input))),
  }),
  setNamespaceSchema: t.field({
    type: SetNamespaceSchemaSuccess,
    description: 'Admin only: set a new active JSON Schema version for a namespace.',
    args: { input: t.arg({ type: SetNamespaceSchemaInput, required: true }) },
    errors: { types: SCHEMA_ERRORS, directResult: true, union: { name: 'SetNamespaceSchemaResult' } },
    resolve: async (_r, { input }, ctx) => ({ schema: await ctx.work.read(() => ctx.storage.setNamespaceSchema(ctx.caller, input)) }),
  }),
}));
