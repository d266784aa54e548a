import type { InstallScope } from '../../storage/installs.js';
import type { StoredRecord } from '../../storage/records.js';
import type { NamespaceUsage } from '../../storage/usage.js';
import type { NamespaceSchema } from '../../storage/schemas.js';
import { builder } from '../builder.js';
import type { GraphQLContext } from '../context.js';
import { connectionType } from './connections.js';

export const RecordRef = builder.objectRef<StoredRecord>('Record').implement({
  fields: (t) => ({
    namespace: t.exposeString('namespace'),
    key: t.exposeString('key'),
    value: t.expose('value', { type: 'JSON' }),
    metadata: t.expose('metadata', { type: 'JSON', description: 'A JSON object of caller-defined metadata; {} when none was given.' }),
    revision: t.exposeInt('revision', { description: 'Starts at 1 on creation; every successful write adds 1.' }),
    schemaVersion: t.exposeInt('schemaVersion', { nullable: true }),
    ttlExpiresAt: t.expose('ttlExpiresAt', { type: 'DateTime', nullable: true }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
  }),
});

export const RecordConnectionRef = connectionType('Record', RecordRef);

export const NamespaceSchemaRef = builder.objectRef<NamespaceSchema>('NamespaceSchema').implement({
  fields: (t) => ({
    version: t.exposeInt('version'),
    schema: t.expose('schema', { type: 'JSON', description: 'A JSON Schema (draft 2020-12) document.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

export interface NamespaceShape {
  scope: InstallScope;
  name: string;
  usage?: NamespaceUsage;
}

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

export async function loadRecordList(
  ctx: GraphQLContext,
  scope: InstallScope,
  namespace: string,
  args: { prefix?: string | null; first?: number | null; after?: string | null },
) {
  ctx.storage.checkAccess(ctx.caller, scope, 'read', namespace);
  const page = await ctx.work.read(() => ctx.storage.listRecords(scope, namespace, args));
  ctx.work.returned(page.items);
  return page;
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
  fields: (t) => ({
    name: t.exposeString('name'),
    keyCount: t.int({ resolve: async (ns, _a, ctx) => (await usageOf(ctx, ns))?.keyCount ?? 0 }),
    bytesUsed: t.field({ type: 'SafeInt', resolve: async (ns, _a, ctx) => (await usageOf(ctx, ns))?.bytes ?? 0 }),
    schema: t.field({
      type: NamespaceSchemaRef,
      nullable: true,
      description: 'The active JSON Schema of this namespace, if one is set.',
      resolve: (ns, _a, ctx) => ctx.work.read(() => ctx.storage.activeSchema(ns.scope, ns.name)),
    }),
    record: t.field({
      type: RecordRef,
      nullable: true,
      args: { key: t.arg.string({ required: true }) },
      resolve: async (ns, args, ctx) => (await loadRecords(ctx, ns.scope, ns.name, [args.key]))[0] ?? null,
    }),
    records: t.field({
      type: [RecordRef],
      nullable: { list: false, items: true },
      args: { keys: t.arg.stringList({ required: true }) },
      resolve: (ns, args, ctx) => loadRecords(ctx, ns.scope, ns.name, args.keys),
    }),
    recordList: t.field({
      type: RecordConnectionRef,
      description: 'Records ordered by key; `after` is the endCursor of the previous page.',
      args: {
        prefix: t.arg.string(),
        first: t.arg.int({ defaultValue: 25 }),
        after: t.arg.string(),
      },
      resolve: (ns, args, ctx) => loadRecordList(ctx, ns.scope, ns.name, args),
    }),
  }),
});
