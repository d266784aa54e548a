import type { AuditEvent } from '../../storage/audit.js';
import type { InstallScope } from '../../storage/installs.js';
import type { Usage } from '../../storage/usage.js';
import type { QuotaSettings } from '../../config.js';
import { builder } from '../builder.js';
import { connectionType } from './connections.js';
import { NodeRef } from './node.js';
import { namespaceOf, NamespaceRef } from './records.js';

const CapabilitiesRef = builder.objectRef<InstallScope>('StorageCapabilities').implement({
  description: 'What this install may do with storage.',
  fields: (t) => ({
    read: t.boolean({
      description: "Whether the install may read records (an extension token also needs the scope storage:read).",
      resolve: (s) => s.install.canRead,
    }),
    write: t.boolean({
      description: "Whether the install may write and delete records (an extension token also needs the scope storage:write).",
      resolve: (s) => s.install.canWrite,
    }),
    namespaces: t.stringList({
      nullable: true,
      description: 'Namespaces the install may touch; null means any.',
      resolve: (s) => s.install.namespaces,
    }),
  }),
});

const UsageRef = builder.objectRef<Usage>('Usage').implement({
  description:
    'What the install stores now, counting live records only (expired ones never count). An extension sees the namespaces it may access; an admin the whole install.',
  fields: (t) => ({
    namespaces: t.exposeInt('namespaces', { description: 'Namespaces holding at least one live record.' }),
    keys: t.exposeInt('keys', { description: 'Live records, all namespaces together.' }),
    bytes: t.expose('bytes', {
      type: 'SafeInt',
      description: 'Stored bytes: the UTF-8 bytes of each live value and metadata as compact JSON, summed.',
    }),
  }),
});

const QuotaRef = builder.objectRef<QuotaSettings>('Quota').implement({
  description: "The install's quotas and size limits in force: its overrides (upsertInstall), else the server defaults.",
  fields: (t) => ({
    maxNamespaces: t.exposeInt('maxNamespaces', {
      description: 'Most namespaces holding live records (default 32); beyond it QuotaExceeded "namespaces".',
    }),
    maxKeysPerNamespace: t.exposeInt('maxKeysPerNamespace', {
      description: 'Most live records per namespace (default 5,120); beyond it QuotaExceeded "keysPerNamespace".',
    }),
    maxBytes: t.expose('maxBytes', {
      type: 'SafeInt',
      description: 'Most stored bytes (values and metadata) of the whole install (default 268,435,456: 256 MiB); beyond it QuotaExceeded "bytes".',
    }),
    maxValueBytes: t.exposeInt('maxValueBytes', {
      description: 'Largest value, in UTF-8 bytes of its compact JSON (default 65,536); beyond it LimitExceeded "valueBytes".',
    }),
    maxMetadataBytes: t.exposeInt('maxMetadataBytes', {
      description: 'Largest metadata object, in UTF-8 bytes of its compact JSON (default 4,096); beyond it LimitExceeded "metadataBytes".',
    }),
  }),
});

const AuditEventRef = builder.objectRef<AuditEvent>('AuditEvent').implement({
  description:
    "One storage mutation of an install, recorded in the write's own transaction. Events are kept for STORAGE_AUDIT_RETENTION_SECONDS (default 90 days).",
  fields: (t) => ({
    id: t.id({ description: "The event's identifier (opaque).", resolve: (e) => String(e.id) }),
    at: t.expose('at', { type: 'DateTime', description: 'When the write happened.' }),
    actor: t.exposeString('actor', { description: 'Who wrote: the token\'s subject, "runner", or "system" for TTL expiry.' }),
    operation: t.exposeString('operation', {
      description: 'putRecord, bulkPutRecords, deleteRecord, ttlExpire, setNamespaceSchema or upsertInstall.',
    }),
    namespace: t.exposeString('namespace', { nullable: true, description: 'The namespace written; null for upsertInstall.' }),
    key: t.exposeString('key', { nullable: true, description: 'The key written; null for non-record operations.' }),
    revision: t.exposeInt('revision', {
      nullable: true,
      description: "The record's revision after the write; null for deletes and non-record operations.",
    }),
    bytesDelta: t.expose('bytesDelta', { type: 'SafeInt', description: 'Stored bytes added (negative when freed).' }),
  }),
});

const AuditEventConnectionRef = connectionType('AuditEvent', AuditEventRef);

export const InstallRef = builder.objectRef<InstallScope>('Install').implement({
  description:
    'One extension installed in one tenant: the unit that owns namespaces and records, with its capabilities, usage and quotas.',
  interfaces: [NodeRef],
  fields: (t) => ({
    id: t.id({ description: "The install's UUID.", resolve: (s) => s.installId }),
    tenantId: t.id({ description: "The UUID of the tenant the install belongs to (forever).", resolve: (s) => s.tenantId }),
    extensionId: t.string({ description: 'Which extension this is an install of, as the host platform named it.', resolve: (s) => s.install.extensionId }),
    enabled: t.boolean({
      description: 'False: the extension and the Runner get FORBIDDEN for this install; its data is kept and admins still reach it.',
      resolve: (s) => s.install.enabled,
    }),
    capabilities: t.field({ type: CapabilitiesRef, description: 'What this install may do with storage.', resolve: (s) => s }),
    namespaces: t.field({
      type: [NamespaceRef],
      description:
        'Namespaces that hold at least one live record, ordered by name. Needs read capability; an extension sees only the namespaces it may access.',
      resolve: async (scope, _a, ctx) =>
        (await ctx.work.read(() => ctx.storage.listNamespaces(ctx.caller, scope))).map((usage) => ({ scope, name: usage.namespace, usage })),
    }),
    namespace: t.field({
      type: NamespaceRef,
      description:
        'A namespace by name; one that holds nothing yet comes back empty. Needs read capability and an allowed namespace (FORBIDDEN otherwise).',
      args: {
        name: t.arg.string({
          required: true,
          description: 'The namespace name, ^[a-z0-9][a-z0-9._-]{0,63}$ (LimitExceeded "namespaceFormat" otherwise, a GraphQL error).',
        }),
      },
      resolve: (scope, args, ctx) => namespaceOf(ctx, scope, args.name),
    }),
    usage: t.field({
      type: UsageRef,
      description: 'What the install stores now, live records only. Needs read capability.',
      resolve: (scope, _a, ctx) => ctx.work.read(() => ctx.storage.usage(ctx.caller, scope)) }),
    quota: t.field({ type: QuotaRef, description: 'The quotas and size limits in force for this install.', resolve: (scope) => scope.quota }),
    auditLog: t.field({
      type: AuditEventConnectionRef,
      description: 'Admin only: this install\'s storage mutations, newest first.',
      args: {
        first: t.arg.int({ defaultValue: 25, description: 'Page size, 1 to 100 (LimitExceeded "pageSize" otherwise, a GraphQL error).' }),
        after: t.arg.string({ description: "The previous page's endCursor; omitted: the newest events." }),
      },
      resolve: (scope, args, ctx) => ctx.work.read(() => ctx.storage.auditLog(ctx.caller, scope, args.first, args.after)),
    }),
  }),
});

export const InstallConnectionRef = connectionType('Install', InstallRef);
