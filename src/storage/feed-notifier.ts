/**
 * Wake-ups for change-feed subscribers (contract, "Change feed": a change committed through any
 * gateway instance reaches subscribers on every other within 1 s, with nothing beyond PostgreSQL).
 *
 * After a successful write the writing gateway sends `NOTIFY ext_storage_changes, '<tenant>/<install>'`
 * (off the write's path: a failed notification never fails or delays the write). Wake-ups are
 * coalesced per install and sent in one statement, at most one statement per `notifyIntervalMs`
 * (50 ms) per gateway: the first after a quiet spell goes at the next tick, the ones after it wait
 * for the interval's end. A busy install (thousands of writes a second) then costs 20 statements a
 * second, not one per write call, each a round trip, a commit through PostgreSQL's one NOTIFY queue
 * and a wake-up of every listening backend and gateway (issue 12); the contract allows 1 s.
 *
 * Every gateway holds one dedicated LISTEN connection (reconnecting with backoff) and wakes the
 * subscribers of that install, which then page Storage.changes from their own cursor:
 * the durable log is the truth, a notification is only a wake-up (subscribers also poll, in case
 * one was lost). PGlite is one process: its wake-ups stay in process.
 *
 * The same LISTEN connection carries other channels (`channels`: the install cache's invalidations,
 * src/storage/install-directory.ts): one LISTEN connection per gateway, whatever listens on it.
 */
import { sql } from 'kysely';
import pg from 'pg';
import type { Db } from '../db/database.js';

export const FEED_CHANNEL = 'ext_storage_changes';

/** Sends wake-ups (`<tenant>/<install>` payloads) on the feed's channel, in one statement (PostgreSQL). */
export async function sendFeedWakeups(db: Db, payloads: string[]): Promise<void> {
  if (payloads.length === 0) return;
  await sql`SELECT pg_notify(${FEED_CHANNEL}, p) FROM unnest(${payloads}::text[]) AS p`.execute(db);
}

export interface FeedNotifier {
  /** A write of this install committed: wake its subscribers here and on every other instance. */
  notify(tenantId: string, installId: string): void;
  /** Calls `wake` whenever the install may have new changes (or the notifier reconnected); returns the unsubscribe. */
  watch(tenantId: string, installId: string, wake: () => void): () => void;
  /** Subscribers currently watching (metrics, tests). */
  readonly watchers: number;
  close(): Promise<void>;
}

type Log = { warn(obj: object, msg: string): void };

/** Another channel on the gateway's LISTEN connection. */
export interface ChannelListener {
  channel: string;
  /** A notification on the channel (its payload, '' when it has none). */
  onNotify(payload: string): void;
  /** The connection listens (again): whatever was sent while it was down was not received. */
  onListening?(): void;
  /** The connection is lost (or not yet in place): notifications may be missed until onListening. */
  onLost?(): void;
}

const keyOf = (tenantId: string, installId: string) => `${tenantId}/${installId}`;

/** The in-process part every notifier shares: who watches which install. */
class Watchers {
  private readonly byInstall = new Map<string, Set<() => void>>();
  count = 0;

  watch(key: string, wake: () => void): () => void {
    let set = this.byInstall.get(key);
    if (!set) this.byInstall.set(key, (set = new Set()));
    set.add(wake);
    this.count++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.count--;
      set.delete(wake);
      if (set.size === 0 && this.byInstall.get(key) === set) this.byInstall.delete(key);
    };
  }

  wake(key: string): void {
    for (const wake of this.byInstall.get(key) ?? []) wake();
  }

  wakeAll(): void {
    for (const set of this.byInstall.values()) for (const wake of set) wake();
  }
}

/** PGlite (one process): wake-ups go straight to this process's subscribers. */
export function createLocalFeedNotifier(): FeedNotifier {
  const watchers = new Watchers();
  return {
    notify: (tenantId, installId) => queueMicrotask(() => watchers.wake(keyOf(tenantId, installId))),
    watch: (tenantId, installId, wake) => watchers.watch(keyOf(tenantId, installId), wake),
    get watchers() {
      return watchers.count;
    },
    async close() {},
  };
}

export interface PgNotifierOptions {
  connectionString: string;
  /** Runs `SELECT pg_notify(...)` on the shared pool. */
  send(payloads: string[]): Promise<void>;
  log: Log;
  /** Channels besides the feed's, on the same LISTEN connection. */
  channels?: ChannelListener[];
  /** Least time between two NOTIFY statements of this gateway (default 50 ms; 0: one per tick). */
  notifyIntervalMs?: number;
  /** Backoff bounds of the LISTEN connection's reconnects. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** PostgreSQL: NOTIFY through the pool, one LISTEN connection per gateway. */
export function createPgFeedNotifier(opts: PgNotifierOptions): FeedNotifier {
  const watchers = new Watchers();
  const minBackoff = opts.minBackoffMs ?? 100;
  const maxBackoff = opts.maxBackoffMs ?? 5_000;
  const interval = opts.notifyIntervalMs ?? 50;
  let pending = new Set<string>();
  let flushing = false;
  /** When the last NOTIFY statement was sent (performance.now()). */
  let sentAt = -Infinity;
  let closed = false;
  let client: pg.Client | null = null;
  let retryTimer: NodeJS.Timeout | null = null;
  let backoff = minBackoff;
  const others = new Map((opts.channels ?? []).map((l) => [l.channel, l]));
  const listenSql = [FEED_CHANNEL, ...others.keys()].map((channel) => `LISTEN ${channel}`).join('; ');

  const flush = () => {
    flushing = false;
    if (pending.size === 0 || closed) return;
    const payloads = [...pending];
    pending = new Set();
    sentAt = performance.now();
    opts.send(payloads).catch((error: unknown) => opts.log.warn({ err: { message: (error as Error)?.message } }, 'change-feed NOTIFY failed (subscribers catch up by polling)'));
  };

  const connect = () => {
    retryTimer = null;
    if (closed) return;
    const c = new pg.Client({ connectionString: opts.connectionString });
    client = c;
    let failed = false;
    const fail = (error?: unknown) => {
      if (failed) return;
      failed = true;
      if (client === c) client = null;
      c.removeAllListeners('notification');
      c.end().catch(() => undefined);
      for (const l of others.values()) l.onLost?.();
      if (closed) return;
      if (error) opts.log.warn({ err: { message: (error as Error)?.message } }, 'LISTEN connection lost; reconnecting');
      retryTimer = setTimeout(connect, backoff);
      backoff = Math.min(maxBackoff, backoff * 2);
    };
    c.on('error', fail);
    c.on('end', () => fail());
    c.on('notification', (msg) => {
      if (msg.channel === FEED_CHANNEL) {
        if (msg.payload) watchers.wake(msg.payload);
      } else others.get(msg.channel)?.onNotify(msg.payload ?? '');
    });
    c.connect()
      .then(() => c.query(listenSql))
      .then(() => {
        backoff = minBackoff;
        for (const l of others.values()) l.onListening?.();
        // Whatever was committed while this connection was down was not announced to it.
        watchers.wakeAll();
      })
      .catch(fail);
  };
  connect();

  return {
    notify(tenantId, installId) {
      const key = keyOf(tenantId, installId);
      // This process's subscribers need no round trip.
      queueMicrotask(() => watchers.wake(key));
      pending.add(key);
      if (!flushing) {
        flushing = true;
        const wait = sentAt + interval - performance.now();
        if (wait > 0) setTimeout(flush, wait).unref();
        else setImmediate(flush);
      }
    },
    watch: (tenantId, installId, wake) => watchers.watch(keyOf(tenantId, installId), wake),
    get watchers() {
      return watchers.count;
    },
    async close() {
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      const c = client;
      client = null;
      if (c) {
        c.removeAllListeners('end');
        c.on('error', () => undefined);
        await c.end().catch(() => undefined);
      }
    },
  };
}

/**
 * The LISTEN connection's URL: the database URL with `/listen` appended to its application_name,
 * so operators (and the pool's tests) tell it apart from the pool's connections.
 */
export function listenConnectionString(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    url.searchParams.set('application_name', `${url.searchParams.get('application_name') ?? 'ext-storage-gateway'}/listen`);
    return url.toString();
  } catch {
    return connectionString;
  }
}
