/**
 * Checks a recorded write load against what the database holds: no acknowledged write lost, none
 * applied twice, and every write whose outcome was unknown either fully there or fully absent.
 * The audit log (same transaction as the write, carrying the request's x-request-id) tells which
 * unknown-outcome writes committed, so the accounting is exact rather than a bound.
 */
import { isDeepStrictEqual } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import type { WriteRecord } from './gateway.js';

export interface StoredState {
  records: Map<string, { revision: number; value: unknown }>;
  audit: Array<{ key: string | null; revision: number | null; requestId: string | null; operation: string }>;
}

type Query = (text: string, params: unknown[]) => Promise<{ rows: Array<Record<string, any>> }>;
type Scope = { tenantId: string; installId: string; namespace: string };

async function readWith(query: Query, scope: Scope): Promise<StoredState> {
  const params = [scope.tenantId, scope.installId, scope.namespace];
  const records = await query('SELECT key, revision, value FROM ext_storage_records WHERE tenant_id = $1 AND install_id = $2 AND namespace = $3', params);
  const audit = await query(
    'SELECT key, revision, request_id, operation FROM ext_storage_audit WHERE tenant_id = $1 AND install_id = $2 AND namespace = $3 ORDER BY id',
    params,
  );
  return {
    records: new Map(records.rows.map((r) => [r.key as string, { revision: r.revision as number, value: r.value }])),
    audit: audit.rows.map((r) => ({ key: r.key, revision: r.revision, requestId: r.request_id, operation: r.operation })),
  };
}

/** Reads one install's namespace and its audit trail straight from PostgreSQL. */
export async function readStoredState(url: string, scope: Scope): Promise<StoredState> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await readWith((text, params) => client.query(text, params), scope);
  } finally {
    await client.end();
  }
}

/** The same from an embedded PGlite directory (no gateway may have it open). */
export async function readStoredStateFromPglite(dir: string, scope: Scope): Promise<StoredState> {
  const db = await PGlite.create(dir);
  try {
    return await readWith((text, params) => db.query<Record<string, any>>(text, params), scope);
  } finally {
    await db.close();
  }
}

export interface LedgerReport {
  problems: string[];
  acked: number;
  unknown: number;
  unknownCommitted: number;
  counterRevision: number;
  counterAcks: number;
}

/**
 * `writes` are the load's outcomes; `setupRequestIds` the requests that wrote before the load
 * (the counter's creation at revision 1).
 */
export function checkLedger(writes: WriteRecord[], state: StoredState, counterKey: string, setupRequestIds: string[]): LedgerReport {
  const problems: string[] = [];
  const eventsByRequest = new Map<string, StoredState['audit']>();
  for (const event of state.audit) {
    if (event.operation !== 'putRecord') continue;
    const id = event.requestId ?? '(none)';
    eventsByRequest.set(id, [...(eventsByRequest.get(id) ?? []), event]);
  }
  const known = new Set([...writes.map((w) => w.requestId), ...setupRequestIds]);
  for (const [id, events] of eventsByRequest) {
    if (!known.has(id)) problems.push(`audit has a write from a request nobody sent: ${id}`);
    if (events.length > 1) problems.push(`request ${id} was applied ${events.length} times`);
  }

  let acked = 0;
  let unknown = 0;
  let unknownCommitted = 0;
  let counterAcks = 0;
  let counterUnknownCommitted = 0;
  const ackedCounterRevisions = new Set<number>();
  const writeByRequest = new Map(writes.map((w) => [w.requestId, w]));

  for (const w of writes) {
    const event = eventsByRequest.get(w.requestId)?.[0];
    const stored = state.records.get(w.key);
    const isCounter = w.key === counterKey;
    switch (w.outcome.kind) {
      case 'ack': {
        acked++;
        const rev = w.outcome.revision;
        if (!event) problems.push(`acknowledged ${w.key} (revision ${rev}, ${w.requestId}) is not in the audit log: lost`);
        else if (event.revision !== rev) problems.push(`acknowledged ${w.key} at revision ${rev} but committed revision ${event.revision}`);
        if (!stored) problems.push(`acknowledged ${w.key} (revision ${rev}) is missing`);
        if (isCounter) {
          counterAcks++;
          if (w.ifRevision !== undefined && rev !== w.ifRevision + 1) problems.push(`counter write with ifRevision ${w.ifRevision} acknowledged revision ${rev}`);
          if (ackedCounterRevisions.has(rev)) problems.push(`counter revision ${rev} acknowledged twice`);
          ackedCounterRevisions.add(rev);
        } else {
          if (rev !== 1) problems.push(`first write of ${w.key} acknowledged revision ${rev}`);
          if (stored && (stored.revision !== rev || !isDeepStrictEqual(stored.value, w.value))) {
            problems.push(`acknowledged ${w.key}@${rev} ${JSON.stringify(w.value)} but stored ${w.key}@${stored.revision} ${JSON.stringify(stored.value)}`);
          }
        }
        break;
      }
      case 'mismatch':
        if (event) problems.push(`${w.key} answered RevisionMismatch but request ${w.requestId} was written`);
        break;
      case 'unavailable':
      case 'network':
        unknown++;
        if (event) {
          unknownCommitted++;
          if (isCounter) counterUnknownCommitted++;
        }
        if (!isCounter) {
          // All or nothing: the record exists exactly when its audit event does.
          if (Boolean(event) !== Boolean(stored)) problems.push(`unknown-outcome write of ${w.key}: audit ${Boolean(event)}, record ${Boolean(stored)}`);
          if (stored && (stored.revision !== 1 || !isDeepStrictEqual(stored.value, w.value))) problems.push(`unknown-outcome write of ${w.key} stored as ${JSON.stringify(stored)}`);
        }
        break;
      case 'unexpected':
        problems.push(`unexpected answer for ${w.key}: ${w.outcome.detail}`);
        break;
    }
  }

  const attempted = new Set(writes.map((w) => w.key));
  for (const key of state.records.keys()) {
    if (key !== counterKey && !attempted.has(key)) problems.push(`record ${key} exists but was never written`);
  }

  const counter = state.records.get(counterKey);
  const counterRevision = counter?.revision ?? 0;
  if (!counter) problems.push('the counter record is missing');
  else {
    const revisions = state.audit.filter((e) => e.key === counterKey && e.operation === 'putRecord').map((e) => e.revision ?? -1);
    const expected = Array.from({ length: counter.revision }, (_, i) => i + 1);
    if (!isDeepStrictEqual([...revisions].sort((a, b) => a - b), expected)) {
      problems.push(`counter audit revisions are not exactly 1..${counter.revision}: ${revisions.join(',')}`);
    }
    if (counter.revision !== 1 + counterAcks + counterUnknownCommitted) {
      problems.push(
        `counter is at revision ${counter.revision}, expected 1 + ${counterAcks} acknowledged + ${counterUnknownCommitted} committed with unknown outcome`,
      );
    }
    const last = state.audit.filter((e) => e.key === counterKey && e.revision === counter.revision)[0];
    const lastWrite = last?.requestId ? writeByRequest.get(last.requestId) : undefined;
    if (counter.revision > 1 && (!lastWrite || !isDeepStrictEqual(lastWrite.value, counter.value))) {
      problems.push(`counter value ${JSON.stringify(counter.value)} is not the value of the write that made revision ${counter.revision}`);
    }
  }
  return { problems, acked, unknown, unknownCommitted, counterRevision, counterAcks };
}
