import { builder } from '../builder.js';
import { InstallConnectionRef, InstallRef } from './installs.js';
import { loadRecordList, loadRecords, RecordConnectionRef, RecordRef } from './records.js';

builder.queryFields((t) => ({
  install: t.field({
    type: InstallRef,
    nullable: true,
    args: { id: t.arg.id() },
    resolve: (_r, args, ctx) => ctx.storage.resolveInstall(ctx.caller, args.id, 'inspect'),
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
    resolve: async (_r, args, ctx) => {
      const scope = await ctx.storage.resolveInstall(ctx.caller, args.installId, 'read', args.namespace);
      return (await loadRecords(ctx, scope, args.namespace, [args.key]))[0] ?? null;
    },
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
    resolve: async (_r, args, ctx) => {
      const scope = await ctx.storage.resolveInstall(ctx.caller, args.installId, 'read', args.namespace);
      return loadRecordList(ctx, scope, args.namespace, args);
    },
  }),
}));
