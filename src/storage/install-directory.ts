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

type InstallRow = Parameters<typeof toInstall>[0];

export class InstallDirectory {
  private readonly cache = new Map<string, { install: Install | undefined; fetchedAt: number; refreshing: boolean }>();

  constructor(
    private readonly db: Db,
    private readonly settings: { installCacheMs?: number; quotaDefaults: QuotaSettings },
  ) {}

  /**
   * Install lookups: memoised per request (caller.installs) and cached in this process for
   * `installCacheMs` (0 turns it off). An upsert through this instance refreshes its entry at
   * once; other instances see a change within installCacheMs.
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
    if (ttl <= 0) return (await findInstalls(this.db, [id])).get(id);
    const now = performance.now();
    const cached = this.cache.get(id);
    if (cached && now - cached.fetchedAt < ttl) {
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
    // An upsert through this instance (which stamps the entry) or a newer read wins over this one.
    if (current && current.fetchedAt > fetchedAt) return install;
    if (this.cache.size >= 10_000) this.cache.clear();
    this.cache.set(id, { install, fetchedAt, refreshing: false });
    return install;
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
