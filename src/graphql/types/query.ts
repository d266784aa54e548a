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
    description:
      "The install the caller acts for. Extension callers (iframe SDK, Runner) omit id and get\ntheir own install; giving another install's id is FORBIDDEN. Admins pass any install id\nof their own tenant.",
    args: {
      id: t.arg.id({ description: "The install's UUID; required for admins. An unknown install or one of another tenant is FORBIDDEN." }),
    },
    resolve: (_r, args, ctx) => installOf(ctx, args.id),
  }),
  installs: t.field({
    type: InstallConnectionRef,
    description: "Installs of the admin's tenant, ordered by id. Admin only.",
    args: {
      first: t.arg.int({ defaultValue: 25, description: 'Page size, 1 to 100 (LimitExceeded "pageSize" otherwise, a GraphQL error).' }),
      after: t.arg.string({ description: "The previous page's endCursor; omitted: the first page." }),
    },
    resolve: async (_r, args, ctx) => {
      const page = await ctx.work.read(() => ctx.storage.listInstalls(ctx.caller, args.first, args.after));
      const scopes = page.items.map((i) => ctx.storage.scopeOf(i));
      return { ...page, items: scopes, cursorOf: (s) => page.cursorOf(s.install) };
    },
  }),
  record: t.field({
    type: RecordRef,
    nullable: true,
    description:
      'Shortcut for install(id).namespace(namespace).record(key): the record, or null when it does not exist or has expired. Needs read capability.',
    args: {
      namespace: t.arg.string({ required: true, description: 'The namespace, ^[a-z0-9][a-z0-9._-]{0,63}$.' }),
      key: t.arg.string({ required: true, description: 'The key to read.' }),
      installId: t.arg.id({ description: 'Admins: the install to read (required for them). Extensions and the Runner: omit it, or pass their own install id.' }),
    },
    resolve: (_r, args, ctx) => recordOf(ctx, args.installId, args.namespace, args.key),
  }),
  records: t.field({
    type: [RecordRef],
    nullable: { list: false, items: true },
    description:
      'Shortcut for install(id).namespace(namespace).records(keys): several keys in one\nround trip, in the order given, null where a key is missing or expired.',
    args: {
      namespace: t.arg.string({ required: true, description: 'The namespace, ^[a-z0-9][a-z0-9._-]{0,63}$.' }),
      keys: t.arg.stringList({
        required: true,
        description: 'The keys to read: at most 100 by default (LimitExceeded "keysPerRead", a GraphQL error).',
      }),
      installId: t.arg.id({ description: 'Admins: the install to read (required for them). Extensions and the Runner: omit it, or pass their own install id.' }),
    },
    resolve: async (_r, args, ctx) => {
      const scope = await ctx.storage.resolveInstall(ctx.caller, args.installId, 'read', args.namespace);
      return loadRecords(ctx, scope, args.namespace, args.keys);
    },
  }),
  recordList: t.field({
    type: RecordConnectionRef,
    description: 'Shortcut for install(id).namespace(namespace).recordList(...): records ordered by key, a page at a time.',
    args: {
      namespace: t.arg.string({ required: true, description: 'The namespace, ^[a-z0-9][a-z0-9._-]{0,63}$.' }),
      prefix: t.arg.string({ description: 'Only keys that start with this; omitted or empty: every key.' }),
      first: t.arg.int({ defaultValue: 25, description: 'Page size, 1 to 100 (LimitExceeded "pageSize" otherwise, a GraphQL error).' }),
      after: t.arg.string({ description: "The previous page's endCursor; omitted: the first page." }),
      installId: t.arg.id({ description: 'Admins: the install to read (required for them). Extensions and the Runner: omit it, or pass their own install id.' }),
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
