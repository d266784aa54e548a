/**
 * The Change type and ChangeOperation enum of contract/schema.graphql. PLACEHOLDER for
 * Subscription.changes (branch wt-subs) until the change-feed branch (wt-feed: Query.changes,
 * ChangeConnection) lands its own: the two are reconciled on merge (keep one definition; the
 * subscription needs only ChangeShape's fields, and a `record` it may have preloaded).
 */
import type { InstallScope } from '../../storage/installs.js';
import type { StoredRecord } from '../../storage/records.js';
import type { FeedChange } from '../../storage/storage.js';
import { builder } from '../builder.js';
import { loadRecords, RecordRef } from './records.js';

/** A change as the GraphQL doors return it: the feed's change, the install it belongs to, and (subscriptions) its record read with its page. */
export type ChangeShape = FeedChange & { scope: InstallScope; record?: StoredRecord | null };

export const ChangeOperationEnum = builder.enumType('ChangeOperation', {
  description: 'What a change did to its key.',
  values: {
    PUT: { value: 'put', description: 'A write (put, bulk, commit, increment, import) stored a revision.' },
    DELETE: { value: 'delete', description: 'A delete removed the live record.' },
    EXPIRE: { value: 'expire', description: 'The record expired and was physically removed.' },
  } as const,
});

export const ChangeRef = builder.objectRef<ChangeShape>('Change').implement({
  description: "One committed change of an install's feed, in commit order.",
  fields: (t) => ({
    cursor: t.exposeString('cursor', { description: 'Resume after this change by passing it as `after`.' }),
    at: t.expose('at', { type: 'DateTime', description: 'When the change committed.' }),
    operation: t.field({ type: ChangeOperationEnum, description: 'What the change did.', resolve: (c) => c.operation }),
    namespace: t.exposeString('namespace', { description: 'The namespace of the changed record.' }),
    key: t.exposeString('key', { description: 'The key of the changed record.' }),
    revision: t.exposeInt('revision', { description: 'After a PUT the revision written; after a DELETE or EXPIRE the revision removed.' }),
    actor: t.exposeString('actor', { description: 'Who: the token\'s subject, "runner", or "system" for expiry.' }),
    record: t.field({
      type: RecordRef,
      nullable: true,
      description: 'The record as it is now (null when it no longer exists), so a consumer converges on the current state.',
      resolve: async (c, _a, ctx) => {
        if (c.record !== undefined) {
          ctx.work.returned([c.record]);
          return c.record;
        }
        return (await loadRecords(ctx, c.scope, c.namespace, [c.key]))[0] ?? null;
      },
    }),
  }),
});
