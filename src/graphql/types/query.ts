import { builder } from '../builder.js';
import type { GraphQLContext } from '../context.js';
import { InstallConnectionRef, InstallRef } from './installs.js';
import { NodeRef } from './node.js';
import { loadRecordList, loadRecords, namespaceOf, RecordConnectionRef, RecordRef } from './records.js';

/** Query.record: the install checked for reading the namespace, then the key through the request's DataLoader. */
async function recordOf(ctx: GraphQLContext, installId: string | null | undefined, namespace: string, key: string) {
  const scope = await ctx.storage.resolveInstall(ctx.caller, installId, 'read', namespace);
  return (await loadRecords(ctx, scope, namespace, [key]))[0] ?? null;
}

/** Query.install. */
const installOf = (ctx: GraphQLContext, id: string | null | undefined) => ctx.storage.resolveInstall(ctx.caller, id, 'inspect');

builder.queryFields((t) => ({
  install: t.field({
    type: InstallRef,
    nullable: true,
    args: { id: t.arg.id() },
    resolve: (_r, args, ctx) => installOf(ctx, args.id),
  }),
  installs: t.field({
    type: InstallConnectionRef,
    description: "Installs of the admin's tenant, ordered by id. Admin only.",
    args: { first: t.arg.int({ defaultValue: 25 }), after: t.arg.string() },
    resolve: async (_r, args, ctx) => {
      const page = await ctx.work.read(() => ctx.storage.listInstalls(ctx.caller, args.first, args.after));
      const scopes = page.items.map((i) => ctx.storage.scopeOf(i));
      return { ...page, items: scopes, cursorOf: (s) => page.cursorOf(s.install) };
    },
  }),
  record: t.field({
    type: RecordRef,
    nullable: true,
    args: { namespace: t.arg.string({ required: true }), key: t.arg.string({ required: true }), installId: t.arg.id() },
    resolve: (_r, args, ctx) => recordOf(ctx, args.installId, args.namespace, args.key),
  }),
  records: t.field({
    type: [RecordRef],
    nullable: { list: false, items: true },
    args: { namespace: t.arg.string({ required: true }), keys: t.arg.stringList({ required: true }), installId: t.arg.id() },
    resolve: async (_r, args, ctx) => {
      const scope = await ctx.storage.resolveInstall(ctx.caller, args.installId, 'read', args.namespace);
      return loadRecords(ctx, scope, args.namespace, args.keys);
    },
  }),
  recordList: t.field({
    type: RecordConnectionRef,
    args: {
      namespace: t.arg.string({ required: true }),
      prefix: t.arg.string(),
      first: t.arg.int({ defaultValue: 25 }),
      after: t.arg.string(),
      installId: t.arg.id(),
    },
    resolve: async (_r, args, ctx, info) => {
      const scope = await ctx.storage.resolveInstall(ctx.caller, args.installId, 'read', args.namespace);
      return loadRecordList(ctx, scope, args.namespace, args, info);
    },
  }),
  node: t.field({
    type: NodeRef,
    nullable: true,
    description: 'Any Install, Namespace or Record by its id, under the same access rules as the field that returned it.',
    args: { id: t.arg.id({ required: true, description: 'An id exactly as the API returned it.' }) },
    resolve: async (_r, args, ctx) => {
      const ref = ctx.storage.decodeGlobalId(args.id);
      switch (ref.type) {
        case 'Install':
          return installOf(ctx, ref.installId);
        case 'Namespace':
          // As install(id).namespace(name).
          return namespaceOf(ctx, await installOf(ctx, ref.installId), ref.namespace);
        case 'Record':
          return recordOf(ctx, ref.installId, ref.namespace, ref.key);
      }
    },
  }),
}));
