/**
 * Change-feed reads (contract, "Change feed"; docs/change-feed.md). The write function numbers an
 * install's changes in commit order (migration 009); a page is the changes after a position, read
 * in one statement together with the install's head and retention point, so the page, its end and
 * the expiry decision come from one snapshot. Every statement filters on tenant_id first
 * (docs/citus.md) and runs on the tenant's worker on Citus.
 */
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import type { Scope } from './records.js';

export type ChangeOperation = 'put' | 'delete' | 'expire';

export interface StoredChange {
  seq: number;
  at: Date;
  operation: ChangeOperation;
  namespace: string;
  key: string;
  revision: number;
  actor: string;
}

export interface ChangeFilter {
  /** Only this namespace. */
  namespace?: string | null;
  /** Only keys starting with this (with `namespace`). */
  prefix?: string | null;
  /** Only these namespaces (an extension's allow-list); null = all. */
  namespaces?: readonly string[] | null;
}

/** The install's feed now: the number of its last change, and how far retention has removed. */
export interface FeedHead {
  head: number;
  pruned: number;
}

export interface ChangeScan extends FeedHead {
  changes: StoredChange[];
  /** The last position the page covered: its last change when full, else the end of what it scanned. */
  end: number;
  /** More changes may match after `end`. */
  hasNextPage: boolean;
}

type Row = {
  head: string | number | null;
  pruned: string | number | null;
  seq: string | number | null;
  at: Date | string | null;
  operation: ChangeOperation | null;
  namespace: string | null;
  key: string | null;
  revision: number | null;
  actor: string | null;
};

export async function feedHead(db: Db, scope: Scope): Promise<FeedHead> {
  const { rows } = await sql<{ head: string; pruned: string }>`
    SELECT l.change_seq AS head, l.changes_pruned_seq AS pruned FROM ext_storage_install_locks l
     WHERE l.tenant_id = ${scope.tenantId} AND l.install_id = ${scope.installId}`.execute(db);
  return { head: Number(rows[0]?.head ?? 0), pruned: Number(rows[0]?.pruned ?? 0) };
}

/**
 * Up to `first` changes after `after` (null: after the retention point, i.e. from the oldest
 * retained change, decided in the same snapshot) that match the filter, scanning at most `window` changes
 * (positions are dense, so the window is a range of the primary key and the work is bounded
 * whatever the filter matches). Without a lock row the install has no change yet.
 */
export async function scanChanges(db: Db, scope: Scope, after: number | null, first: number, window: number, filter: ChangeFilter): Promise<ChangeScan> {
  const from = after === null ? sql`h.pruned` : sql`${after}::bigint`;
  const conditions = [sql`c.seq > ${from}`, sql`c.seq <= ${from} + ${window}`];
  if (filter.namespace) conditions.push(sql`c.namespace = ${filter.namespace}`);
  if (filter.prefix) conditions.push(sql`starts_with(c.key, ${filter.prefix})`);
  if (filter.namespaces) conditions.push(sql`c.namespace = ANY(${[...filter.namespaces]}::text[])`);
  const { rows } = await sql<Row>`
    SELECT h.head, h.pruned, c.seq, c.at, c.operation, c.namespace, c.key, c.revision, c.actor
      FROM (SELECT l.change_seq AS head, l.changes_pruned_seq AS pruned FROM ext_storage_install_locks l
             WHERE l.tenant_id = ${scope.tenantId} AND l.install_id = ${scope.installId}) h
      LEFT JOIN LATERAL (
        SELECT c.seq, c.at, c.operation, c.namespace, c.key, c.revision, c.actor FROM ext_storage_changes c
         WHERE c.tenant_id = ${scope.tenantId} AND c.install_id = ${scope.installId} AND ${sql.join(conditions, sql` AND `)}
         ORDER BY c.seq LIMIT ${first + 1}) c ON true`.execute(db);
  const head = Number(rows[0]?.head ?? 0);
  const pruned = Number(rows[0]?.pruned ?? 0);
  const found = rows.filter((r) => r.seq !== null);
  const changes = found.slice(0, first).map(
    (r): StoredChange => ({
      seq: Number(r.seq),
      at: new Date(r.at!),
      operation: r.operation!,
      namespace: r.namespace!,
      key: r.key!,
      revision: Number(r.revision),
      actor: r.actor!,
    }),
  );
  if (found.length > first) return { head, pruned, changes, end: changes[changes.length - 1]!.seq, hasNextPage: true };
  // The page holds every match up to the end of its window, or of the feed.
  const start = after ?? pruned;
  const end = Math.max(start, Math.min(start + window, head));
  return { head, pruned, changes, end, hasNextPage: end < head };
}
