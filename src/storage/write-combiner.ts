/**
 * The per-install write combiner (issue 12; docs/write-combining.md). Every write of an install
 * takes that install's lock row until it commits (I1 in migrations/005_write_function.ts), so
 * concurrent writes of one install queue in the database, one commit each. Here they queue in the
 * process instead: while a call for an install is in flight, the writes that arrive for it wait,
 * and when it returns they go together as one call of ext_storage_write_batch_v1 (one round trip,
 * one lock acquisition, one commit). Each still gets its own answer: the batch function runs each
 * request exactly as ext_storage_write_v1 would, in arrival order, in one transaction.
 *
 * Nothing waits when an install is idle (the first write goes at once, alone), so a lone write
 * pays no latency; under load a write waits for at most the call before it.
 *
 * When a batch fails as a whole:
 * - the database refused the statement for a fault in a request (an ERROR: the transaction rolled
 *   back, nothing of the batch was applied): each request is sent again alone, so only the request
 *   at fault fails;
 * - a statement timeout, a deadlock or serialization victim: every request gets that error (the
 *   write path retries the retryable ones);
 * - the connection broke, a FATAL: whether the batch committed is unknown, as it is for a lone
 *   write that loses its connection; every request gets that error.
 *
 * A write waits behind its install's call at most `maxWaitMs` (the pool's connection timeout), then
 * fails as unavailable having been sent nowhere.
 *
 * Tracing (src/tracing): a call runs in the trace context of the request that runs it: a lone write
 * in its own; a batch in that of its first request (the one that waited longest), so the batch's
 * SQL span is a child of that request's span only (its GraphQL operation, or its Runner request),
 * and the other requests of the batch have no SQL span of their own. A batch refused and sent again
 * one request at a time: each in its own request's context. Tracing off, no context is captured.
 */
import { CompiledQuery } from 'kysely';
import type { Db } from '../db/database.js';
import { tracing, type Tracing } from '../tracing/index.js';
import { mapDatabaseError, StorageError, UnavailableError } from './errors.js';

const SINGLE = 'SELECT ext_storage_write_v1($1::uuid, $2::uuid, $3::jsonb) AS result';
const BATCH = 'SELECT ext_storage_write_batch_v1($1::uuid, $2::uuid, $3::jsonb) AS result';

export interface CombinerSettings {
  /** Most requests in one call; 1 turns combining off. */
  maxRequests: number;
  /** Most bytes of request JSON in one call (a batch of one may exceed it). */
  maxBytes: number;
  /** Longest a write waits behind its install's call before it fails as unavailable (0: no bound). */
  maxWaitMs: number;
}

interface Waiting {
  request: string;
  resolve(answer: unknown): void;
  reject(error: unknown): void;
  timer?: NodeJS.Timeout;
  /** Runs a function in the waiting request's trace context; set only when tracing is on. */
  inContext?: ReturnType<Tracing['captureContext']>;
}

export class WriteCombiner {
  /** An install is here while a call of it is in flight, with the writes waiting for it (its lane). */
  private readonly lanes = new Map<string, Waiting[]>();
  private readonly tracing = tracing();

  constructor(
    private readonly db: Db,
    private readonly settings: CombinerSettings,
    /** After each call of a lane (metrics): how many requests it carried, and how many of them were answered merged. */
    private readonly onCall?: (requests: number, merged: number) => void,
  ) {}

  /**
   * Runs one request (ext_storage_write_v1's JSON) for an install; resolves to that function's
   * answer. `whileQueued` (Caller.whileQueued) wraps the wait of a write queued behind its install's
   * call, which holds no database connection, but only while what waits in the lane (this write
   * included) fits in one call (`maxRequests`, `maxBytes`): standing aside is there to fill the next
   * call, and a write beyond it keeps its place among the install's requests in flight. So an
   * install's lane holds at most one call's requests and bytes beyond that bound (a lane of bodies
   * read in full, which the bound would otherwise no longer limit).
   */
  write(tenantId: string, installId: string, request: string, whileQueued?: <T>(wait: Promise<T>) => Promise<T>): Promise<unknown> {
    if (this.settings.maxRequests <= 1) return this.counted(this.single(tenantId, installId, request));
    const id = `${tenantId}/${installId}`;
    const lane = this.lanes.get(id);
    if (lane) {
      const waiting = this.wait(lane, request);
      return whileQueued && this.fitsOneCall(lane) ? whileQueued(waiting) : waiting;
    }
    this.lanes.set(id, []);
    return this.counted(this.single(tenantId, installId, request)).finally(() => this.next(id, tenantId, installId));
  }

  private wait(lane: Waiting[], request: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const waiting: Waiting = { request, resolve, reject, inContext: this.tracing?.captureContext() };
      if (this.settings.maxWaitMs > 0) {
        waiting.timer = setTimeout(() => {
          const at = lane.indexOf(waiting);
          if (at < 0) return;
          lane.splice(at, 1);
          reject(new UnavailableError());
        }, this.settings.maxWaitMs);
      }
      lane.push(waiting);
    });
  }

  /** Whether the lane's requests, all of them, would go in one call. */
  private fitsOneCall(lane: Waiting[]): boolean {
    return this.fitting(lane) === lane.length;
  }

  /** How many of the lane's first requests one call holds: at most `maxRequests`, together at most `maxBytes`. */
  private fitting(lane: Waiting[]): number {
    let bytes = 0;
    let n = 0;
    while (n < lane.length && n < this.settings.maxRequests) {
      bytes += lane[n]!.request.length;
      if (bytes > this.settings.maxBytes) break;
      n++;
    }
    return n;
  }

  /** After a call of an install returns: sends what waited for it, or frees the lane. */
  private next(id: string, tenantId: string, installId: string): void {
    const lane = this.lanes.get(id)!;
    if (lane.length === 0) {
      this.lanes.delete(id);
      return;
    }
    const batch = this.take(lane);
    // Else it would run in the context of the request whose call just returned (see the top comment).
    const inContext = batch[0]!.inContext;
    void (inContext ? inContext(() => this.send(tenantId, installId, batch)) : this.send(tenantId, installId, batch)).finally(() =>
      this.next(id, tenantId, installId),
    );
  }

  private take(lane: Waiting[]): Waiting[] {
    // A request larger than maxBytes on its own still goes, alone.
    const batch = lane.splice(0, Math.max(1, this.fitting(lane)));
    for (const w of batch) clearTimeout(w.timer);
    return batch;
  }

  private async send(tenantId: string, installId: string, batch: Waiting[]): Promise<void> {
    if (batch.length === 1) {
      const [only] = batch;
      await this.counted(this.single(tenantId, installId, only!.request)).then(only!.resolve, only!.reject);
      return;
    }
    let answers: unknown[];
    try {
      const query = CompiledQuery.raw(BATCH, [tenantId, installId, `[${batch.map((w) => w.request).join(',')}]`]);
      const { rows } = await this.db.executeQuery<{ result: unknown[] }>(query);
      answers = rows[0]!.result;
      this.onCall?.(batch.length, answers.filter((a) => (a as { merged?: unknown } | null)?.merged === true).length);
    } catch (error) {
      if (!refusedAsFaulty(error)) {
        for (const w of batch) w.reject(error);
        return;
      }
      // Nothing of the batch was applied, and the fault is in a request: each alone, so only that one fails.
      for (const w of batch) {
        const alone = this.counted(w.inContext ? w.inContext(() => this.single(tenantId, installId, w.request)) : this.single(tenantId, installId, w.request));
        await alone.then(w.resolve, w.reject);
      }
      return;
    }
    batch.forEach((w, i) => w.resolve(answers[i]));
  }

  /**
   * Several calls of ext_storage_write_v1 for one install in one transaction (one tenant: one
   * worker on Citus), outside the lanes: the first call takes the install's lock and the others
   * run under it. For a write that must look at what the function computed before it applies
   * (RecordWriter: increments into a namespace with a schema; an import, which also reads and
   * writes the install's schemas through `trx`, every statement filtered on the tenant).
   */
  transaction<T>(tenantId: string, installId: string, run: (call: (request: string) => Promise<unknown>, trx: Db) => Promise<T>): Promise<T> {
    return this.db.transaction().execute((trx) =>
      run(async (request) => {
        const { rows } = await trx.executeQuery<{ result: unknown }>(CompiledQuery.raw(SINGLE, [tenantId, installId, request]));
        return rows[0]!.result;
      }, trx),
    );
  }

  /** A lone request's call, counted once it answered. */
  private counted(call: Promise<unknown>): Promise<unknown> {
    return this.onCall ? call.then((answer) => (this.onCall!(1, 0), answer)) : call;
  }

  private async single(tenantId: string, installId: string, request: string): Promise<unknown> {
    const { rows } = await this.db.executeQuery<{ result: unknown }>(CompiledQuery.raw(SINGLE, [tenantId, installId, request]));
    return rows[0]!.result;
  }
}

/**
 * True when the database refused the statement with an ERROR (a statement outside a transaction
 * block that fails is rolled back whole) that is not an unavailability: a statement timeout, a
 * deadlock or serialization victim would meet each request again, and is answered to all of them
 * (RecordWriter retries the retryable ones). A lost connection or a FATAL leaves the outcome unknown.
 */
function refusedAsFaulty(error: unknown): boolean {
  const e = error as { severity?: unknown; code?: unknown };
  return e?.severity === 'ERROR' && typeof e.code === 'string' && !(mapDatabaseError(error) instanceof StorageError);
}
