/**
 * The per-install rate limit shared by every gateway instance (REDIS_URL): rate-limiter-flexible's
 * RateLimiterRedis (its own atomic INCR + expiry script) over ioredis, keyed by install.
 *
 * The same units and priced costs as the in-process bucket (RateLimiter), counted in fixed windows
 * of `window = max(1, round(burst / perSecond))` whole seconds, each admitting `perSecond × window`
 * units (400 units per 2 s with the defaults, 200/s and burst 400). Over any T seconds an install is
 * admitted at most `perSecond × T + perSecond × window` units across all instances, the in-process
 * bucket's bound (`perSecond × T + burst`) when burst is a multiple of the rate. Differences from the
 * bucket: a refused request's units still count in its window (so a refused large request may hold
 * back smaller ones until the window turns; never more than the window's units are admitted), and
 * a debit (bytes returned) weighs only until its window ends.
 *
 * Redis unreachable (refused, timed out after REDIS_COMMAND_TIMEOUT_MS, not connected yet): counted
 * (ext_storage_rate_limit_backend_errors_total), logged at most once per LOG_EVERY_MS, and then
 * STORAGE_RATE_LIMIT_REDIS_FAILURE decides: `open` (default) lets this instance's own in-process
 * bucket decide (so the limit is per instance, N × the rate over N instances, until Redis is back);
 * `closed` refuses the request with UnavailableError (503 UNAVAILABLE, Retry-After).
 */
import { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { RedisRateLimitSettings } from '../config.js';
import type { Logger } from '../logger.js';
import { UnavailableError } from '../storage/errors.js';
import { RateLimiter, type InstallRateLimit } from './rate-limit.js';

/** A Redis call slower than this counts as Redis being down (the request is not held longer). */
export const REDIS_COMMAND_TIMEOUT_MS = 500;
/** Redis errors are logged at most once per this many ms (with the count since the last line). */
const LOG_EVERY_MS = 10_000;

export interface SharedRateLimitOptions {
  perSecond: number;
  burst: number;
  redis: RedisRateLimitSettings;
  log: Logger;
  /** Called for every Redis error (the metric): a failed take or debit, or the connection's error. */
  onBackendError(during: 'take' | 'debit' | 'connection'): void;
}

export function windowOf(perSecond: number, burst: number): { seconds: number; points: number } {
  const seconds = Math.max(1, Math.round(burst / Math.max(perSecond, 1)));
  return { seconds, points: perSecond * seconds };
}

export class SharedRateLimiter implements InstallRateLimit {
  private readonly client: Redis;
  private readonly limiter: RateLimiterRedis;
  /** This instance's own bucket: decides while Redis cannot (fail open). */
  private readonly local: RateLimiter;
  private readonly points: number;
  private readonly failure: 'open' | 'closed';
  private readonly log: Logger;
  private readonly onBackendError: (during: 'take' | 'debit' | 'connection') => void;
  private errorsSinceLog = 0;
  private lastLogAt = -Infinity;
  private closed = false;

  constructor(opts: SharedRateLimitOptions) {
    const { seconds, points } = windowOf(opts.perSecond, opts.burst);
    this.points = points;
    this.failure = opts.redis.failure;
    this.log = opts.log;
    this.onBackendError = opts.onBackendError;
    this.local = new RateLimiter(opts.perSecond, opts.burst);
    this.client = new Redis(opts.redis.url, {
      // A request never waits for Redis to come back: a command while disconnected fails at once.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
      connectTimeout: 2000,
      // Reconnects for ever, at most every 2 s.
      retryStrategy: (times) => Math.min(times * 100, 2000),
    });
    // ioredis prints unhandled 'error' events itself: they are counted and logged here instead.
    this.client.on('error', (error: Error) => this.backendError(error, 'connection'));
    this.limiter = new RateLimiterRedis({
      storeClient: this.client,
      keyPrefix: opts.redis.keyPrefix,
      points,
      duration: seconds,
      rejectIfRedisNotReady: true,
    });
  }

  get enabled(): boolean {
    return this.points > 0;
  }

  async take(installId: string, units = 1, paid = 0): Promise<number> {
    if (!this.enabled) return 0;
    const need = Math.min(units, this.points) - paid;
    if (need <= 0) return 0;
    try {
      await this.limiter.consume(installId, need);
      return 0;
    } catch (error) {
      if (error instanceof RateLimiterRes) return Math.max(1, Math.ceil(error.msBeforeNext / 1000));
      this.backendError(error, 'take');
      if (this.failure === 'closed') throw new UnavailableError();
      return this.local.take(installId, units, paid);
    }
  }

  debit(installId: string, units: number): void {
    if (!this.enabled || units <= 0) return;
    this.limiter.penalty(installId, Math.min(units, this.points)).catch((error: unknown) => {
      this.backendError(error, 'debit');
      this.local.debit(installId, units);
    });
  }

  async health(): Promise<{ redis: 'ok' | 'unreachable'; failure: 'open' | 'closed' }> {
    try {
      if (this.client.status !== 'ready') throw new Error(`redis connection ${this.client.status}`);
      await this.client.ping();
      return { redis: 'ok', failure: this.failure };
    } catch {
      return { redis: 'unreachable', failure: this.failure };
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.client.disconnect();
  }

  /** Counted always; logged at most once per LOG_EVERY_MS, so an outage does not flood the logs. */
  private backendError(error: unknown, during: 'take' | 'debit' | 'connection'): void {
    if (this.closed) return;
    this.onBackendError(during);
    this.errorsSinceLog++;
    const now = performance.now();
    if (now - this.lastLogAt < LOG_EVERY_MS) return;
    this.lastLogAt = now;
    // Only the message: a connection error may otherwise carry the URL (and its password).
    const message = error instanceof Error ? error.message.replace(/rediss?:\/\/\S+/g, 'redis://…') : String(error);
    this.log.warn(
      { during, error: message, errors: this.errorsSinceLog, failure: this.failure },
      this.failure === 'open'
        ? 'rate limit: Redis unreachable, this instance\'s own bucket decides (fail open)'
        : 'rate limit: Redis unreachable, extension requests refused with 503 (fail closed)',
    );
    this.errorsSinceLog = 0;
  }
}
