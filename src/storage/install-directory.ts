/**
 * The install registry as the core uses it: lookups memoised per request and cached per process,
 * upserts by admins, and pages of a tenant's installs.
 */
import { sql } from 'kysely';
import type { Limits, QuotaSettings } from '../config.js';
import type { Db } from '../db/database.js';
import { appendAuditEvent } from './audit.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { BadInputError, ForbiddenError } from './errors.js';
import { checkUpsertInput, effectiveQuota, findInstalls, mergeQuota, toInstall, type Install, type InstallScope, type UpsertInstallInput } from './installs.js';
import { checkPageSize } from './limits.js';
import { normalizeId, type Caller } from './principal.js';

export interface Page<T> {
  items: T[];
  hasNextPage: boolean;
  endCursor: string | null;
  cursorOf(item: T): string;
}

export function page<T>(items: T[], hasNextPage: boolean, cursorOf: (item: T) => string): Page<T> {
  const last = items[items.length - 1];
  return { items, hasNextPage, endCursor: last === undefined ? null : cursorOf(last), cursorOf };
}

/** A cached install used after this share of installCacheMs is re-read in the background. */
const REFRESH_AFTER = 0.75;

/** The cache is dropped whole when it holds this many installs. */
const MAX_ENTRIES = 10_000;

/**
 * Install changes reach every gateway instance's cache (README, "Install changes"): upsertInstall
 * sends `pg_notify('ext_storage_installs', '<install id>')` inside its transaction (so it is
 * delivered on commit, and only then), and every instance's LISTEN connection (feed-notifier.ts)
 * forgets that install. While that connection is down the cache is not used, and it is dropped
 * when the connection listens again, so an invalidation missed meanwhile is never missed for good.
 */
export const INSTALLS_CHANNEL = 'ext_storage_installs';

/** How the LISTEN connection steers this process's install cache. */
export interface InstallCacheControl {
  /** Another instance (or this one) changed this install: the next lookup reads it. */
  forget(id: string): void;
  /** Invalidations may be missed from now on: lookups read the database until resume(). */
  suspend(): void;
  /** Invalidations arrive again: drop everything cached and cache again. */
  resume(): void;
}

type InstallRow = Parameters<typeof toInstall>[0];

/** A cache entry; `forgotten` marks one invalidated at fetchedAt (a read that started earlier may not replace it). */
type Entry = { install: Install | undefined; fetchedAt: number; refreshing: boolean; forgotten?: true };

export class InstallDirectory implements InstallCacheControl {
  private readonly cache = new Map<string, Entry>();
  /** False while invalidations may be missed (PostgreSQL: the LISTEN connection is not in place). */
  private caching = true;
  /** Reads that started before this were dropped with the whole cache: they are not cached. */
  private clearedAt = -Infinity;

  constructor(
    private readonly db: Db,
    private readonly settings: { installCacheMs?: number; quotaDefaults: QuotaSettings },
  ) {}

  /**
   * Install lookups: memoised per request (caller.installs) and cached in this process for
   * `installCacheMs` (0 turns it off). An upsert through this instance refreshes its entry at
   * once; other instances forget theirs when its notification arrives (INSTALLS_CHANNEL), and
   * never serve one older than installCacheMs in any case.
   */
  load(caller: Caller | null, id: string): Promise<Install | undefined> {
    const memo = caller?.installs;
    const hit = memo?.get(id);
    if (hit) return hit;
    const pending = this.fetch(id);
    memo?.set(id, pending);
    return pending;
  }

  scopeOf(install: Install): InstallScope {
    return { tenantId: install.tenantId, installId: install.id, install, quota: effectiveQuota(install, this.settings.quotaDefaults) };
  }

  private async fetch(id: string): Promise<Install | undefined> {
    const ttl = this.settings.installCacheMs ?? 0;
    if (ttl <= 0 || !this.caching) return (await findInstalls(this.db, [id])).get(id);
    const now = performance.now();
    const cached = this.cache.get(id);
    if (cached && !cached.forgotten && now - cached.fetchedAt < ttl) {
      // A hot entry is re-read in the background before it expires, so its requests never wait
      // for the lookup; an entry is never served older than installCacheMs.
      if (!cached.refreshing && now - cached.fetchedAt > ttl * REFRESH_AFTER) {
        cached.refreshing = true;
        this.readIntoCache(id).catch(() => {
          // The entry expires as usual; the next request reads synchronously and sees the error.
        });
      }
      return cached.install;
    }
    return this.readIntoCache(id);
  }

  private async readIntoCache(id: string): Promise<Install | undefined> {
    const fetchedAt = performance.now();
    const install = (await findInstalls(this.db, [id])).get(id);
    const current = this.cache.get(id);
    // An upsert through this instance (which stamps the entry), an invalidation or a newer read
    // wins over this one.
    if (!this.caching || fetchedAt <= this.clearedAt || (current && current.fetchedAt >= fetchedAt)) return install;
    if (this.cache.size >= MAX_ENTRIES) {
      // Dropped like on a reconnect: the marks of forgotten installs go too, so this read is not kept.
      this.dropAll();
      return install;
    }
    this.cache.set(id, { install, fetchedAt, refreshing: false });
    return install;
  }

  forget(id: string): void {
    // A mark, not a delete: a read of this install already under way may have read the old row.
    if (this.cache.size >= MAX_ENTRIES) this.dropAll();
    this.cache.set(id, { install: undefined, fetchedAt: performance.now(), refreshing: false, forgotten: true });
  }

  suspend(): void {
    this.caching = false;
  }

  resume(): void {
    this.dropAll();
    this.caching = true;
  }

  private dropAll(): void {
    this.clearedAt = performance.now();
    this.cache.clear();
  }

  async upsert(caller: Caller, input: UpsertInstallInput): Promise<Install> {
    const p = caller.principal;
    if (p.kind !== 'admin') throw new ForbiddenError('only admins may register installs');
    const id = normalizeId(input.id);
    if (!id) throw new BadInputError('install id must be a UUID');
    if (input.tenantId !== null && input.tenantId !== undefined && normalizeId(input.tenantId) !== p.tenantId) {
      throw new ForbiddenError('admins may only register installs of their own tenant');
    }
    checkUpsertInput(input);
    const tenantId = p.tenantId;
    const install = await this.db.transaction().execute(async (trx) => {
      const values = (existing: InstallRow | undefined) => {
        const namespaces = input.namespaces === undefined ? (existing?.namespaces ?? null) : input.namespaces;
        return {
          extension_id: input.extensionId,
          enabled: input.enabled,
          can_read: input.canRead,
          can_write: input.canWrite,
          namespaces: namespaces === null ? null : JSON.stringify([...new Set(namespaces)]),
          quota: JSON.stringify(mergeQuota(existing?.quota ?? {}, input.quota)),
        };
      };
      // Insert first: of admins racing to register one new id, one inserts and the others update.
      const created = await trx
        .insertInto('ext_storage_installs')
        .values({ id, tenant_id: tenantId, ...values(undefined) })
        .onConflict((oc) => oc.column('id').doNothing())
        .returningAll()
        .executeTakeFirst();
      let row = created;
      if (!row) {
        const existing = await trx.selectFrom('ext_storage_installs').selectAll().where('id', '=', id).forUpdate().executeTakeFirstOrThrow();
        if (existing.tenant_id !== tenantId) throw new ForbiddenError('this install belongs to another tenant');
        row = await trx.updateTable('ext_storage_installs').set({ ...values(existing as InstallRow), updated_at: sql`now()` }).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
      }
      await trx
        .insertInto('ext_storage_install_locks')
        .values({ tenant_id: tenantId, install_id: id })
        .onConflict((oc) => oc.columns(['tenant_id', 'install_id']).doNothing())
        .execute();
      await appendAuditEvent(trx, { tenantId, installId: id }, { operation: 'upsertInstall', namespace: null, actor: p.actor, requestId: caller.requestId });
      // Delivered when this transaction commits, and only then: every instance forgets its copy.
      await sql`SELECT pg_notify(${INSTALLS_CHANNEL}, ${id})`.execute(trx);
      return toInstall(row as InstallRow);
    });
    caller.installs?.set(id, Promise.resolve(install));
    // Stamped now, so a lookup that started before this commit cannot put the old row back.
    if ((this.settings.installCacheMs ?? 0) > 0) this.cache.set(id, { install, fetchedAt: performance.now(), refreshing: false });
    return install;
  }

  async list(caller: Caller, firstInput: number | null | undefined, after: string | null | undefined, limits: Limits): Promise<Page<Install>> {
    const p = caller.principal;
    if (p.kind !== 'admin') throw new ForbiddenError('only admins may list installs');
    const first = checkPageSize(firstInput, limits);
    const afterId = after ? normalizeId(decodeCursor<string>(after, 'i', p.tenantId, 'string')) : null;
    // A cursor that decodes to something other than an install id was forged.
    if (after && !afterId) throw new BadInputError('malformed or foreign cursor');
    let q = this.db.selectFrom('ext_storage_installs').selectAll().where('tenant_id', '=', p.tenantId);
    if (afterId) q = q.where('id', '>', afterId);
    const rows = await q.orderBy('id').limit(first + 1).execute();
    const items = rows.slice(0, first).map((r) => toInstall(r as InstallRow));
    for (const i of items) caller.installs?.set(i.id, Promise.resolve(i));
    return page(items, rows.length > first, (i) => encodeCursor('i', p.tenantId, i.id));
  }
}
