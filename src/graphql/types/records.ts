import type { GraphQLResolveInfo } from 'graphql';
import { checkNamespace } from '../../storage/limits.js';
import type { InstallScope } from '../../storage/installs.js';
import type { StoredRecord } from '../../storage/records.js';
import type { NamespaceUsage } from '../../storage/usage.js';
import type { NamespaceSchema } from '../../storage/schemas.js';
import type { Page } from '../../storage/storage.js';
import { builder } from '../builder.js';
import type { GraphQLContext } from '../context.js';
import { selectsRecordData } from '../selection.js';
import { connectionType } from './connections.js';
import { nodeId, NodeRef, type NamespaceShape } from './node.js';

export type { NamespaceShape } from './node.js';

export const RecordRef = builder.objectRef<StoredRecord>('Record').implement({
  description:
    'One stored JSON value under a key of a namespace, with its revision and metadata. Only live records are returned: an expired one reads as missing.',
  interfaces: [NodeRef],
  fields: (t) => ({
    id: t.id({ description: 'Stable for the key across revisions, so client caches update in place.', resolve: nodeId }),
    installId: t.id({ description: "The install's UUID.", resolve: (r) => r.installId }),
    namespace: t.exposeString('namespace', { description: 'The namespace the record lives in.' }),
    key: t.exposeString('key', { description: 'The key: 1 to 256 Unicode code points, no control characters; `/` is allowed.' }),
    value: t.expose('value', { type: 'JSON', description: 'The stored JSON value (never null), as written; object key order is not preserved.' }),
    metadata: t.expose('metadata', { type: 'JSON', description: 'A JSON object of caller-defined metadata; {} when none was given.' }),
    revision: t.exposeInt('revision', { description: 'Starts at 1 on creation; every successful write adds 1.' }),
    schemaVersion: t.exposeInt('schemaVersion', {
      nullable: true,
      description: 'The schema version the value was validated against, if any.',
    }),
    ttlExpiresAt: t.expose('ttlExpiresAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When the record expires (set by the last write\'s ttlSeconds); null means it never expires.',
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When the key was created (kept across updates).' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime', description: 'When the record was last written.' }),
  }),
});

/** A page of records, and what totalCount counts (read only when selected). */
export interface RecordPage extends Page<StoredRecord> {
  count(): Promise<number>;
}

export const RecordConnectionRef = connectionType<StoredRecord, RecordPage>('Record', RecordRef);

builder.objectField(RecordConnectionRef, 'totalCount', (t) =>
  t.int({
    description: 'Live records matching the prefix (the whole namespace without one), not just this page.',
    resolve: (page) => page.count(),
  }),
);

export const NamespaceSchemaRef = builder.objectRef<NamespaceSchema>('NamespaceSchema').implement({
  description: "One version of a namespace's JSON Schema; writes to the namespace are validated against the active one.",
  fields: (t) => ({
    version: t.exposeInt('version', {
      description: 'The version number: 1 for the first schema of the namespace, then one more for each setNamespaceSchema.',
    }),
    schema: t.expose('schema', { type: 'JSON', description: 'A JSON Schema (draft 2020-12) document.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When this version was set.' }),
  }),
});

/** Reads through the request's DataLoader, after access and key checks. */
export async function loadRecords(ctx: GraphQLContext, scope: InstallScope, namespace: string, keys: readonly string[]) {
  ctx.storage.checkAccess(ctx.caller, scope, 'read', namespace);
  ctx.storage.checkReadKeys(namespace, keys);
  const results = await ctx.recordLoader(scope, namespace).loadMany(keys);
  for (const r of results) if (r instanceof Error) throw r;
  const records = results as Array<StoredRecord | null>;
  ctx.work.returned(records);
  return records;
}

/** A recordList page, after access checks; values and metadata are read only when the query shows them. */
export async function loadRecordList(
  ctx: GraphQLContext,
  scope: InstallScope,
  namespace: string,
  args: { prefix?: string | null; first?: number | null; after?: string | null },
  info: GraphQLResolveInfo,
): Promise<RecordPage> {
  ctx.storage.checkAccess(ctx.caller, scope, 'read', namespace);
  const columns = selectsRecordData(info) ? 'all' : 'keysOnly';
  const page = await ctx.work.read(() => ctx.storage.listRecords(scope, namespace, { ...args, columns }));
  ctx.work.returned(page.items);
  return { ...page, count: () => ctx.work.read(() => ctx.storage.countRecords(scope, namespace, args.prefix)) };
}

/** A namespace by name of an install already resolved (Install.namespace, and node() for a namespace id). */
export function namespaceOf(ctx: GraphQLContext, scope: InstallScope, name: string): NamespaceShape {
  ctx.storage.checkAccess(ctx.caller, scope, 'read', name);
  checkNamespace(name);
  return { scope, name };
}

/** One usage read per Namespace object, shared by keyCount and bytesUsed (the cost model prices it once). */
const usageReads = new WeakMap<NamespaceShape, Promise<NamespaceUsage | undefined>>();

function usageOf(ctx: GraphQLContext, ns: NamespaceShape): Promise<NamespaceUsage | undefined> {
  if (ns.usage) return Promise.resolve(ns.usage);
  let pending = usageReads.get(ns);
  if (!pending) {
    pending = ctx.work.read(() => ctx.storage.namespaceUsage(ns.scope, ns.name)).then((u) => u[0]);
    usageReads.set(ns, pending);
  }
  return pending;
}

export const NamespaceRef = builder.objectRef<NamespaceShape>('Namespace').implement({
  description:
    "A named group of records of one install, created by its first write; it exists while it holds a live record. Name: ^[a-z0-9][a-z0-9._-]{0,63}$.",
  interfaces: [NodeRef],
  fields: (t) => ({
    id: t.id({ description: 'Opaque; names the install and the namespace. Query.node(id) returns the namespace again.', resolve: nodeId }),
    name: t.exposeString('name', { description: "The namespace's name." }),
    keyCount: t.int({
      description: 'Live records in the namespace (expired ones never count); the quota is Quota.maxKeysPerNamespace.',
      resolve: async (ns, _a, ctx) => (await usageOf(ctx, ns))?.keyCount ?? 0 }),
    bytesUsed: t.field({
      type: 'SafeInt',
      description: 'Stored bytes of its live records: the UTF-8 bytes of each value and metadata as compact JSON.',
      resolve: async (ns, _a, ctx) => (await usageOf(ctx, ns))?.bytes ?? 0 }),
    schema: t.field({
      type: NamespaceSchemaRef,
      nullable: true,
      description: 'The active JSON Schema of this namespace, if one is set.',
      resolve: (ns, _a, ctx) => ctx.work.read(() => ctx.storage.activeSchema(ns.scope, ns.name)),
    }),
    record: t.field({
      type: RecordRef,
      nullable: true,
      description: 'The record under `key`; null when it does not exist or has expired. Needs read capability.',
      args: { key: t.arg.string({ required: true, description: 'The key to read.' }) },
      resolve: async (ns, args, ctx) => (await loadRecords(ctx, ns.scope, ns.name, [args.key]))[0] ?? null,
    }),
    records: t.field({
      type: [RecordRef],
      nullable: { list: false, items: true },
      description: 'Several keys in one round trip, in the order given, null where a key is missing or expired. Needs read capability.',
      args: {
        keys: t.arg.stringList({
          required: true,
          description: 'The keys to read: at most 100 by default (LimitExceeded "keysPerRead", a GraphQL error).',
        }),
      },
      resolve: (ns, args, ctx) => loadRecords(ctx, ns.scope, ns.name, args.keys),
    }),
    recordList: t.field({
      type: RecordConnectionRef,
      description: 'Records ordered by key; `after` is the endCursor of the previous page.',
      args: {
        prefix: t.arg.string({ description: 'Only keys that start with this; omitted or empty: every key.' }),
        first: t.arg.int({ defaultValue: 25, description: 'Page size, 1 to 100 (LimitExceeded "pageSize" otherwise, a GraphQL error).' }),
        after: t.arg.string({ description: "The previous page's endCursor; omitted: the first page." }),
      },
      resolve: (ns, args, ctx, info) => loadRecordList(ctx, ns.scope, ns.name, args, info),
    }),
  }),
});
