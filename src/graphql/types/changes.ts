/**
 * The change feed's query surface (contract, "Change feed"; docs/change-feed.md): Query.changes,
 * Install.changesCursor and the Change types. The core (Storage.changes / changesCursor) owns every
 * rule: order, filters, access, page size, retention and cursors; this door only translates.
 */
import type { InstallScope } from '../../storage/installs.js';
import type { StoredRecord } from '../../storage/records.js';
import type { ChangePage, FeedChange } from '../../storage/storage.js';
import { builder } from '../builder.js';
import type { GraphQLContext } from '../context.js';
import { PageInfoRef } from './connections.js';
import { InstallRef } from './installs.js';
import { loadRecords, RecordRef } from './records.js';

/**
 * A change with the install it belongs to (its `record` is read through the request's DataLoader,
 * unless a subscription read it with its page: src/graphql/types/subscription.ts).
 */
export interface ChangeShape {
  scope: InstallScope;
  change: FeedChange;
  record?: StoredRecord | null;
}

interface ChangePageShape {
  scope: InstallScope;
  page: ChangePage;
}

export const ChangeOperationRef = builder.enumType('ChangeOperation', {
  description: 'What a change did to its record.',
  values: {
    PUT: { value: 'put', description: 'The record was created or replaced (put, bulk put, commit, increment or import).' },
    DELETE: { value: 'delete', description: 'A live record was deleted.' },
    EXPIRE: { value: 'expire', description: 'An expired record was physically removed (actor "system").' },
  } as const,
});

export const ChangeRef = builder.objectRef<ChangeShape>('Change').implement({
  description:
    "One committed write, delete or expiry of a record of the install, in the install's commit order. Delivery is at least once: dedupe by cursor.",
  fields: (t) => ({
    cursor: t.string({ description: 'Resume after this change by passing it as `after`.', resolve: (c) => c.change.cursor }),
    at: t.field({ type: 'DateTime', description: 'When the change committed.', resolve: (c) => c.change.at }),
    operation: t.field({ type: ChangeOperationRef, description: 'What the change did: PUT, DELETE or EXPIRE.', resolve: (c) => c.change.operation }),
    namespace: t.string({ description: 'The namespace of the record changed.', resolve: (c) => c.change.namespace }),
    key: t.string({ description: 'The key of the record changed.', resolve: (c) => c.change.key }),
    revision: t.int({
      description: 'After a PUT the revision written; after a DELETE or EXPIRE the revision removed.',
      resolve: (c) => c.change.revision,
    }),
    actor: t.string({ description: 'Who: the token\'s subject, "runner", or "system" for expiry.', resolve: (c) => c.change.actor }),
    record: t.field({
      type: RecordRef,
      nullable: true,
      description: 'The record as it is now (null when it no longer exists), so a consumer converges on the current state.',
      // Batched per namespace with every other record read of the request (Namespace.record's path).
      resolve: async (c, _a, ctx) => {
        if (c.record !== undefined) {
          ctx.work.returned([c.record]);
          return c.record;
        }
        return (await loadRecords(ctx, c.scope, c.change.namespace, [c.change.key]))[0] ?? null;
      },
    }),
  }),
});

const ChangeEdgeRef = builder.objectRef<ChangeShape>('ChangeEdge').implement({
  description: 'One Change of a page, with its cursor.',
  fields: (t) => ({
    cursor: t.string({
      description: "The change's cursor: pass it as `after` to continue after this change; a cursor of another install is BAD_USER_INPUT.",
      resolve: (e) => e.change.cursor,
    }),
    node: t.field({ type: ChangeRef, description: 'The change.', resolve: (e) => e }),
  }),
});

export const ChangeConnectionRef = builder.objectRef<ChangePageShape>('ChangeConnection').implement({
  description: "One page of the install's change feed, oldest first.",
  fields: (t) => ({
    edges: t.field({
      type: [ChangeEdgeRef],
      description: 'The changes of this page, in commit order; empty when no (more) change matches now.',
      resolve: (p) => p.page.changes.map((change) => ({ scope: p.scope, change })),
    }),
    pageInfo: t.field({
      type: PageInfoRef,
      description: 'endCursor is where to resume, even when a filtered page holds no change.',
      resolve: (p) => ({
        hasNextPage: p.page.hasNextPage,
        startCursor: p.page.changes[0]?.cursor ?? null,
        endCursor: p.page.endCursor,
      }),
    }),
  }),
});

async function changesOf(
  ctx: GraphQLContext,
  args: { namespace?: string | null; prefix?: string | null; after?: string | null; first?: number | null; installId?: string | null },
): Promise<ChangePageShape> {
  const scope = await ctx.storage.resolveInstall(ctx.caller, args.installId, 'read', args.namespace ?? undefined);
  const page = await ctx.work.read(() => ctx.storage.changes(ctx.caller, scope, args));
  return { scope, page };
}

builder.queryField('changes', (t) =>
  t.field({
    type: ChangeConnectionRef,
    description:
      "The install's change feed, oldest first: one Change per committed write, delete or expiry.\n`after` is a cursor from an earlier page, a Change, a commit or Install.changesCursor; omitted\nmeans the oldest retained change. `prefix` needs `namespace`.",
    args: {
      namespace: t.arg.string({
        description: 'Only changes of this namespace; an extension naming a namespace it may not access is FORBIDDEN.',
      }),
      prefix: t.arg.string({ description: 'Only keys that start with this; needs `namespace` (BAD_USER_INPUT otherwise).' }),
      after: t.arg.string({
        description:
          'Continue after this cursor; omitted: from the oldest retained change. A cursor older than the retained changes is CURSOR_EXPIRED; a malformed or foreign one BAD_USER_INPUT.',
      }),
      first: t.arg.int({ defaultValue: 100, description: 'Page size, 1 to 1000 (LimitExceeded "pageSize" otherwise, a GraphQL error).' }),
      installId: t.arg.id({ description: 'Admins: the install to read (required for them). Extensions and the Runner: omit it, or pass their own install id.' }),
    },
    resolve: (_r, args, ctx) => changesOf(ctx, args),
  }),
);

builder.objectField(InstallRef, 'changesCursor', (t) =>
  t.string({
    description: 'The head of the change feed now: Query.changes(after: changesCursor) returns only later changes. Needs read capability.',
    resolve: (scope, _a, ctx) => ctx.work.read(() => ctx.storage.changesCursor(ctx.caller, scope)),
  }),
);
