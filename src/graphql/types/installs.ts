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
    read: t.boolean({ resolve: (s) => s.install.canRead }),
    write: t.boolean({ resolve: (s) => s.install.canWrite }),
    namespaces: t.stringList({
      nullable: true,
      description: 'Namespaces the install may touch; null means any.',
      resolve: (s) => s.install.namespaces,
    }),
  }),
});

const UsageRef = builder.objectRef<Usage>('Usage').implement({
  fields: (t) => ({
    namespaces: t.exposeInt('namespaces'),
    keys: t.exposeInt('keys'),
    bytes: t.expose('bytes', { type: 'SafeInt' }),
  }),
});

const QuotaRef = builder.objectRef<QuotaSettings>('Quota').implement({
  fields: (t) => ({
    maxNamespaces: t.exposeInt('maxNamespaces'),
    maxKeysPerNamespace: t.exposeInt('maxKeysPerNamespace'),
    maxBytes: t.expose('maxBytes', { type: 'SafeInt' }),
    maxValueBytes: t.exposeInt('maxValueBytes'),
    maxMetadataBytes: t.exposeInt('maxMetadataBytes'),
  }),
});

const AuditEventRef = builder.objectRef<AuditEvent>('AuditEvent').implement({
  fields: (t) => ({
    id: t.id({ resolve: (e) => String(e.id) }),
    at: t.expose('at', { type: 'DateTime' }),
    actor: t.exposeString('actor', { description: 'Who wrote: the token\'s subject, "runner", or "system" for TTL expiry.' }),
    operation: t.exposeString('operation'),
    namespace: t.exposeString('namespace', { nullable: true }),
    key: t.exposeString('key', { nullable: true }),
    revision: t.exposeInt('revision', { nullable: true }),
    bytesDelta: t.expose('bytesDelta', { type: 'SafeInt' }),
  }),
});

const AuditEventConnectionRef = connectionType('AuditEvent', AuditEventRef);

export const InstallRef = builder.objectRef<InstallScope>('Install').implement({
  interfaces: [NodeRef],
  fields: (t) => ({
    id: t.id({ description: "The install's UUID.", resolve: (s) => s.installId }),
    tenantId: t.id({ resolve: (s) => s.tenantId }),
    extensionId: t.string({ resolve: (s) => s.install.extensionId }),
    enabled: t.boolean({ resolve: (s) => s.install.enabled }),
    capabilities: t.field({ type: CapabilitiesRef, resolve: (s) => s }),
    namespaces: t.field({
      type: [NamespaceRef],
      description: 'Namespaces that hold at least one live record, ordered by name.',
      resolve: async (scope, _a, ctx) =>
        (await ctx.work.read(() => ctx.storage.listNamespaces(ctx.caller, scope))).map((usage) => ({ scope, name: usage.namespace, usage })),
    }),
    namespace: t.field({
      type: NamespaceRef,
      description: 'A namespace by name; one that holds nothing yet comes back empty.',
      args: { name: t.arg.string({ required: true }) },
      resolve: (scope, args, ctx) => namespaceOf(ctx, scope, args.name),
    }),
    usage: t.field({ type: UsageRef, resolve: (scope, _a, ctx) => ctx.work.read(() => ctx.storage.usage(ctx.caller, scope)) }),
    quota: t.field({ type: QuotaRef, resolve: (scope) => scope.quota }),
    auditLog: t.field({
      type: AuditEventConnectionRef,
      description: 'Admin only: this install\'s storage mutations, newest first.',
      args: { first: t.arg.int({ defaultValue: 25 }), after: t.arg.string() },
      resolve: (scope, args, ctx) => ctx.work.read(() => ctx.storage.auditLog(ctx.caller, scope, args.first, args.after)),
    }),
  }),
});

export const InstallConnectionRef = connectionType('Install', InstallRef);
