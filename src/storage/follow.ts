/**
 * Following an install's change feed (contract, "Change feed": Subscription.changes): the retained
 * changes after a cursor (none when it is omitted: from the head now), then live ones as they
 * commit. The durable log is the truth: a wake-up (src/storage/feed-notifier.ts) or the safety-net
 * poll only makes the follower page Storage.changes again from its own cursor, under the same
 * access rules as Query.changes.
 *
 * Memory per follower is one page: the next page is read only when the consumer has taken the
 * previous one (async generator back-pressure), however far behind it is.
 */
import { LimitExceededError, UnauthenticatedError } from './errors.js';
import type { FeedNotifier } from './feed-notifier.js';
import type { InstallScope } from './installs.js';
import type { Caller } from './principal.js';
import type { ChangePage, FeedChange, Storage } from './storage.js';

export interface FollowOptions {
  namespace?: string | null;
  prefix?: string | null;
  /** Resume after this cursor; omitted: from now on. */
  after?: string | null;
  /** Changes per page read. */
  pageSize?: number;
  /** The safety-net poll, in case a wake-up was lost. */
  pollMs?: number;
  /** Ends the follower cleanly (shutdown, client gone). */
  signal?: AbortSignal;
}

export const FOLLOW_PAGE_SIZE = 100;
export const FOLLOW_POLL_MS = 5_000;

/**
 * Checks the request (access, cursor: errors are thrown here, before anything is streamed) and
 * returns the follower: an async generator of non-empty pages of changes, oldest first.
 */
export async function follow(storage: Storage, caller: Caller, scope: InstallScope, notifier: FeedNotifier, opts: FollowOptions): Promise<AsyncGenerator<FeedChange[], void, undefined>> {
  // Each follower holds a connection and polls: an install may hold only so many at once here.
  const key = `${scope.tenantId}/${scope.installId}`;
  const open = storage.followers.get(key) ?? 0;
  const max = storage.settings.limits.maxSubscriptionsPerInstall;
  if (open >= max) {
    throw new LimitExceededError('subscriptions', `this install already holds ${open} change-feed subscriptions on this gateway (at most ${max}); close one first`, max, open + 1);
  }
  storage.followers.set(key, open + 1);
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    const left = (storage.followers.get(key) ?? 1) - 1;
    if (left > 0) storage.followers.set(key, left);
    else storage.followers.delete(key);
  };
  // Ended by the door (client gone, shutdown) even before the first page was taken.
  opts.signal?.addEventListener('abort', release, { once: true });
  const pageSize = opts.pageSize ?? FOLLOW_PAGE_SIZE;
  const pollMs = opts.pollMs ?? FOLLOW_POLL_MS;
  const signal = opts.signal;
  let dirty = false;
  let wakeUp: (() => void) | null = null;
  const wake = () => {
    dirty = true;
    wakeUp?.();
  };
  // Watching before the first read: a change committed meanwhile is read on the next round.
  const unwatch = notifier.watch(scope.tenantId, scope.installId, wake);
  // The credential was checked when the request came in; a follower outliving it ends instead of
  // streaming on (the consumer subscribes again with a fresh token, from its last cursor).
  const expiresAt = caller.principal.expiresAt;
  // Each page also sees the install as it is now (through the install cache, not the request's
  // memo): a follower of an install disabled or narrowed meanwhile ends with FORBIDDEN, as a
  // new Query.changes would.
  const reader: Caller = { principal: caller.principal, requestId: caller.requestId };
  const read = async (after: string): Promise<ChangePage> => {
    if (expiresAt !== undefined && Date.now() >= expiresAt) {
      throw new UnauthenticatedError('the token expired during the subscription: subscribe again with a fresh token, after the last cursor');
    }
    const current = await storage.resolveInstall(reader, scope.installId, 'read', opts.namespace ?? undefined);
    return storage.changes(caller, current, { namespace: opts.namespace, prefix: opts.prefix, after, first: pageSize });
  };
  let first: ChangePage;
  try {
    const after = opts.after ?? (await storage.changesCursor(caller, scope));
    // The first page also checks access, the filter and the cursor (CURSOR_EXPIRED, BAD_USER_INPUT).
    first = await read(after);
  } catch (error) {
    unwatch();
    release();
    throw error;
  }

  const waitForWake = () =>
    new Promise<void>((resolve) => {
      if (dirty || signal?.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        wakeUp = null;
        resolve();
      };
      // Woken at the credential's expiry too, so an idle follower ends on time.
      const timer = setTimeout(done, expiresAt === undefined ? pollMs : Math.max(0, Math.min(pollMs, expiresAt - Date.now())));
      signal?.addEventListener('abort', done);
      wakeUp = done;
    });

  async function* pages(): AsyncGenerator<FeedChange[], void, undefined> {
    try {
      let page = first;
      for (;;) {
        if (page.changes.length > 0) yield page.changes;
        if (signal?.aborted) return;
        if (!page.hasNextPage) {
          await waitForWake();
          if (signal?.aborted) return;
        }
        dirty = false;
        page = await read(page.endCursor);
      }
    } finally {
      unwatch();
      release();
    }
  }
  return pages();
}
