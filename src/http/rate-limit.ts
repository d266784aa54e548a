/**
 * Per-install fairness, in this gateway instance's memory (contract, "Cost, fairness and
 * availability"): a token bucket charged by each request's priced cost (src/graphql/cost.ts), and a
 * bound on requests in flight, beyond which requests wait in arrival order.
 */
import { RateLimitedError } from '../storage/errors.js';

/**
 * Units a request pays when it is let in, before it is priced: a flood of requests (even ones that
 * never parse) is refused before any parsing. The price pays the rest once it is known.
 */
export const ADMISSION_UNITS = 1;

/**
 * The per-install rate limit as the request paths use it: this instance's own token bucket
 * (RateLimiter) or, with REDIS_URL, the one every instance shares (src/http/shared-rate-limit.ts).
 * `take` may answer later (a Redis round trip): callers await it.
 */
export interface InstallRateLimit {
  readonly enabled: boolean;
  /** 0 when allowed, else the seconds to wait; throws UnavailableError when it cannot decide (Redis down, fail closed). */
  take(installId: string, units?: number, paid?: number): number | Promise<number>;
  /** Charges work measured after it was done (bytes returned); never refuses, never throws. */
  debit(installId: string, units: number): void;
  /** Null when the limiter can decide, else why not (for /readyz). */
  health(): Promise<{ redis: 'ok' | 'unreachable'; failure: 'open' | 'closed' } | null>;
  close(): Promise<void>;
}

/** A token bucket per install, in this instance's memory. */
export class RateLimiter implements InstallRateLimit {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get enabled(): boolean {
    return this.perSecond > 0;
  }

  /**
   * Takes a request's `units` tokens, less the `paid` ones it took before (at admission); a price
   * above the burst counts as the whole burst, so any request can pass with a full bucket. Returns
   * 0 when allowed, else the seconds to wait, taking nothing.
   */
  take(installId: string, units = 1, paid = 0): number {
    if (!this.enabled) return 0;
    const capacity = Math.max(this.burst, 1);
    const need = Math.min(units, capacity) - paid;
    if (need <= 0) return 0;
    const t = this.now();
    const bucket = this.buckets.get(installId) ?? { tokens: capacity, at: t };
    bucket.tokens = Math.min(capacity, bucket.tokens + ((t - bucket.at) / 1000) * this.perSecond);
    bucket.at = t;
    this.buckets.set(installId, bucket);
    if (this.buckets.size > 100_000) this.prune(t);
    if (bucket.tokens >= need) {
      bucket.tokens -= need;
      return 0;
    }
    return Math.max(1, Math.ceil((need - bucket.tokens) / this.perSecond));
  }

  /**
   * Charges work measured after it was done (bytes returned): the bucket may go below zero, down to
   * minus one burst, and the install's next requests wait until it has refilled.
   */
  debit(installId: string, units: number): void {
    if (!this.enabled || units <= 0) return;
    const capacity = Math.max(this.burst, 1);
    const t = this.now();
    const bucket = this.buckets.get(installId) ?? { tokens: capacity, at: t };
    bucket.tokens = Math.max(-capacity, Math.min(capacity, bucket.tokens + ((t - bucket.at) / 1000) * this.perSecond) - units);
    bucket.at = t;
    this.buckets.set(installId, bucket);
  }

  async health(): Promise<null> {
    return null;
  }

  async close(): Promise<void> {}

  /** Forgets buckets that have refilled completely (they behave exactly like new ones). */
  private prune(t: number): void {
    for (const [id, b] of this.buckets) {
      if (b.tokens + ((t - b.at) / 1000) * this.perSecond >= this.burst) this.buckets.delete(id);
    }
  }
}

/** Gives a slot back (idempotent). */
export type Release = () => void;

interface Waiter {
  grant(release: Release): void;
  /** Unset for a request coming back from aside (InflightSlot.aside): it waits without a bound. */
  timer?: NodeJS.Timeout;
}

interface Lane {
  active: number;
  queue: Waiter[];
}

/**
 * At most `max` requests of one install in flight (0: no bound); the others wait in arrival order
 * for up to `waitMs`, then are refused (RateLimitedError), so a burst is slowed rather than refused.
 */
export class InflightLimiter {
  private readonly lanes = new Map<string, Lane>();

  constructor(
    private readonly max: number,
    private readonly waitMs: number,
  ) {}

  get enabled(): boolean {
    return this.max > 0;
  }

  /** Requests of the install running now and waiting (for tests and metrics). */
  load(installId: string): { active: number; waiting: number } {
    const lane = this.lanes.get(installId);
    return { active: lane?.active ?? 0, waiting: lane?.queue.length ?? 0 };
  }

  /**
   * A slot for one request of the install: at once when one is free and nobody waits, else after
   * the requests ahead of it. `cancelled` (the client went away) leaves the queue.
   */
  acquire(installId: string, cancelled?: (onCancel: () => void) => void): Release | Promise<Release> {
    return this.take(installId, cancelled, false);
  }

  /**
   * A slot for a request coming back from waiting aside (InflightSlot.aside): at once when one is
   * free, else ahead of every request still waiting to start, and without a time bound (what it
   * waited for may have been a committed write, which must not then be refused).
   */
  reenter(installId: string, cancelled?: (onCancel: () => void) => void): Release | Promise<Release> {
    return this.take(installId, cancelled, true);
  }

  private take(installId: string, cancelled: ((onCancel: () => void) => void) | undefined, comingBack: boolean): Release | Promise<Release> {
    if (!this.enabled) return noop;
    let lane = this.lanes.get(installId);
    if (!lane) this.lanes.set(installId, (lane = { active: 0, queue: [] }));
    // Nobody waits while a slot is free: a released slot passes straight to the head of the queue.
    if (lane.active < this.max && lane.queue.length === 0) {
      lane.active++;
      return this.releaser(installId, lane);
    }
    const queued = lane;
    return new Promise<Release>((resolve, reject) => {
      const waiter: Waiter = { grant: resolve };
      if (comingBack) {
        queued.queue.unshift(waiter);
      } else {
        waiter.timer = setTimeout(() => {
          if (!this.leave(queued, waiter)) return;
          reject(new RateLimitedError(Math.max(1, Math.ceil(this.waitMs / 1000))));
        }, this.waitMs);
        queued.queue.push(waiter);
      }
      cancelled?.(() => {
        if (this.leave(queued, waiter)) reject(new RateLimitedError(1));
      });
    });
  }

  /** Removes a waiter that was not granted yet; false when it already was. */
  private leave(lane: Lane, waiter: Waiter): boolean {
    const i = lane.queue.indexOf(waiter);
    if (i < 0) return false;
    lane.queue.splice(i, 1);
    clearTimeout(waiter.timer);
    return true;
  }

  private releaser(installId: string, lane: Lane): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = lane.queue.shift();
      if (next) {
        // The slot passes straight to the next in line: arrival order, never more than max.
        clearTimeout(next.timer);
        next.grant(this.releaser(installId, lane));
        return;
      }
      lane.active--;
      if (lane.active === 0 && this.lanes.get(installId) === lane) this.lanes.delete(installId);
    };
  }
}

const noop: Release = () => {};

/**
 * One request's place among its install's requests in flight, from admission to its end. While
 * the request waits for something that holds no database connection (its write queued behind its
 * install's call in the write combiner), it can stand aside: the place passes to the next request
 * in line, and the request takes one back, ahead of newcomers, once the wait is over. The bound
 * holds throughout: it counts requests that may be using the database.
 */
export class InflightSlot {
  private release: Release | null;
  private ended = false;

  constructor(
    private readonly limiter: InflightLimiter,
    private readonly installId: string,
    release: Release,
    /** Registers a callback for when the client goes away (the response closes). */
    private readonly cancelled?: (onCancel: () => void) => void,
  ) {
    this.release = release;
  }

  /** Gives the place back for good (idempotent): the response finished or was abandoned. */
  end(): void {
    this.ended = true;
    const release = this.release;
    this.release = null;
    release?.();
  }

  /** Waits for `wait` without holding the place (see the class comment); settles as `wait` does. */
  async aside<T>(wait: Promise<T>): Promise<T> {
    const release = this.release;
    if (!release) return wait;
    this.release = null;
    release();
    try {
      return await wait;
    } finally {
      if (!this.ended) {
        const back = await this.limiter.reenter(this.installId, this.cancelled);
        if (this.ended) back();
        else this.release = back;
      }
    }
  }
}

interface PoolWaiter {
  amount: number;
  grant(release: Release): void;
  timer: NodeJS.Timeout;
}

/**
 * A process-wide pool of `capacity` units (bytes of response a request may hold), shared fairly: a
 * request that cannot have its share at once waits in its install's line, and installs are served
 * in turn (round robin), so one install's many large requests delay another's by at most one turn.
 * Waiting longer than `waitMs` is refused (RateLimitedError).
 */
export class FairPool {
  private free: number;
  /** Installs with someone waiting, in the order they will be served. */
  private readonly lines = new Map<string, PoolWaiter[]>();

  constructor(
    readonly capacity: number,
    private readonly waitMs: number,
  ) {
    this.free = capacity;
  }

  /** Units held now (for tests and metrics). */
  get held(): number {
    return this.capacity - this.free;
  }

  acquire(key: string, wanted: number): Release | Promise<Release> {
    const amount = Math.min(Math.max(0, wanted), this.capacity);
    if (this.lines.size === 0 && amount <= this.free) {
      this.free -= amount;
      return this.releaser(amount);
    }
    return new Promise<Release>((resolve, reject) => {
      const waiter: PoolWaiter = {
        amount,
        grant: resolve,
        timer: setTimeout(() => {
          const line = this.lines.get(key);
          const i = line?.indexOf(waiter) ?? -1;
          if (!line || i < 0) return;
          line.splice(i, 1);
          if (line.length === 0) this.lines.delete(key);
          reject(new RateLimitedError(1));
          // The head of the next line may fit now that this one left.
          this.grantWaiting();
        }, this.waitMs),
      };
      const line = this.lines.get(key);
      if (line) line.push(waiter);
      else this.lines.set(key, [waiter]);
    });
  }

  private releaser(amount: number): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.free += amount;
      this.grantWaiting();
    };
  }

  /** Serves the installs in turn while the next one's first request fits. */
  private grantWaiting(): void {
    for (const [key, line] of this.lines) {
      const next = line[0]!;
      // Never skip a large request for a smaller one behind it: it would wait for ever.
      if (next.amount > this.free) return;
      line.shift();
      this.lines.delete(key);
      // Served: the install goes to the back of the turn (a Map keeps insertion order).
      if (line.length > 0) this.lines.set(key, line);
      clearTimeout(next.timer);
      this.free -= next.amount;
      next.grant(this.releaser(next.amount));
    }
  }
}
