/**
 * Subscription.changes (contract, "Change feed"): over GraphQL-over-SSE, the retained changes after
 * `after` (omitted: from now on), then live ones. The core's follower (src/storage/follow.ts) does
 * the paging, the access rules and the wake-ups; this door flattens its pages into one event per
 * change, reading the records of a page together when `record` is selected. One page per
 * subscriber is held at most: the next is read when the stream has taken the last change.
 */
import type { GraphQLResolveInfo } from 'graphql';
import { UnavailableError } from '../../storage/errors.js';
import { follow } from '../../storage/follow.js';
import type { InstallScope } from '../../storage/installs.js';
import type { StoredRecord } from '../../storage/records.js';
import type { FeedChange } from '../../storage/storage.js';
import { builder } from '../builder.js';
import type { GraphQLContext } from '../context.js';
import { selectsChild } from '../selection.js';
import { RequestWork } from '../work.js';
import { ChangeRef, type ChangeShape } from './changes.js';

builder.subscriptionType({
  description: 'Live feeds over GraphQL-over-SSE (POST with `Accept: text/event-stream`), with the same credentials as queries.',
});

interface ChangesArgs {
  namespace?: string | null;
  prefix?: string | null;
  after?: string | null;
  installId?: string | null;
}

/** The records of a page's changes as they are now, read per namespace (at most a page of keys). */
async function recordsOf(ctx: GraphQLContext, scope: InstallScope, changes: readonly FeedChange[]): Promise<Map<string, StoredRecord | null>> {
  const byNamespace = new Map<string, Set<string>>();
  for (const c of changes) {
    let keys = byNamespace.get(c.namespace);
    if (!keys) byNamespace.set(c.namespace, (keys = new Set()));
    keys.add(c.key);
  }
  const found = new Map<string, StoredRecord | null>();
  const chunk = Math.max(1, ctx.storage.settings.limits.maxKeysPerRead);
  for (const [namespace, set] of byNamespace) {
    const keys = [...set];
    for (let i = 0; i < keys.length; i += chunk) {
      const part = keys.slice(i, i + chunk);
      const read = await ctx.storage.readRecords(scope, namespace, part);
      for (const k of part) found.set(`${namespace}\u0000${k}`, read.get(k) ?? null);
    }
  }
  return found;
}

async function subscribeChanges(ctx: GraphQLContext, args: ChangesArgs, info: GraphQLResolveInfo): Promise<AsyncIterable<ChangeShape>> {
  const feed = ctx.feed;
  if (!feed || feed.shutdown.aborted) throw new UnavailableError();
  const scope = await ctx.storage.resolveInstall(ctx.caller, args.installId, 'read', args.namespace ?? undefined);
  const stop = new AbortController();
  const onShutdown = () => stop.abort();
  feed.shutdown.addEventListener('abort', onShutdown);
  let pages: AsyncGenerator<FeedChange[], void, undefined>;
  try {
    pages = await follow(ctx.storage, ctx.caller, scope, feed.notifier, {
      namespace: args.namespace,
      prefix: args.prefix,
      after: args.after,
      signal: stop.signal,
    });
  } catch (error) {
    feed.shutdown.removeEventListener('abort', onShutdown);
    throw error;
  }
  const withRecords = selectsChild(info, 'record');

  async function* changes(): AsyncGenerator<ChangeShape, void, undefined> {
    try {
      for await (const page of pages) {
        const records = withRecords ? await recordsOf(ctx, scope, page) : null;
        for (const change of page) {
          const shaped: ChangeShape = { change, scope };
          if (records) shaped.record = records.get(`${change.namespace}\u0000${change.key}`) ?? null;
          yield shaped;
        }
      }
    } finally {
      feed!.shutdown.removeEventListener('abort', onShutdown);
    }
  }
  const inner = changes();
  // return() (the client went away, the stream was cancelled) ends a follower waiting for changes
  // at once: an async generator's own return() would wait for the pending wait to end.
  const iterator: AsyncIterableIterator<ChangeShape> = {
    next: () => inner.next(),
    return: async () => {
      stop.abort();
      await pages.return();
      return inner.return();
    },
    throw: (e?: unknown) => {
      stop.abort();
      return inner.throw(e);
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
  return iterator;
}

builder.subscriptionFields((t) => ({
  changes: t.field({
    type: ChangeRef,
    description:
      'The same feed as Query.changes, pushed as changes commit: first the retained changes after\n`after`, then live ones. `after` omitted means from now on.',
    args: {
      namespace: t.arg.string({ description: 'Only changes of this namespace.' }),
      prefix: t.arg.string({ description: 'Only keys that start with this (needs namespace).' }),
      after: t.arg.string({ description: "A change's cursor (or changesCursor) to resume after; omitted: from now on, nothing replayed." }),
      installId: t.arg.id({ description: 'Admins: the install to follow (required for them). Extensions and the Runner: omit it, or pass their own install id.' }),
    },
    subscribe: (_root, args, ctx, info) => subscribeChanges(ctx, args, info),
    resolve: (change, _args, ctx) => {
      // Each event is its own unit of work: the response budget and statement count start afresh.
      ctx.work = new RequestWork({ maxResponseBytes: ctx.config.cost.maxResponseBytes, maxStatements: ctx.config.cost.maxStatements });
      return change;
    },
  }),
}));
