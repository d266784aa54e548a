/**
 * Stopping the gateway under write load. PostgreSQL: SIGTERM stops new connections, lets the
 * requests in flight finish (bounded by the 10 s grace period), exits 0, and every acknowledged
 * write is stored. Embedded PGlite: kill -9 mid-load, restart on the same directory, and every
 * acknowledged write is still there with its revision.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backend, createPostgresDatabase } from '../support/db.js';
import { call, createCounter, sleep, startGateway, startWriteLoad, waitForAcks, type Gateway, type WriteRecord } from './gateway.js';
import { checkLedger, readStoredState, readStoredStateFromPglite } from './ledger.js';

const GRACE_MS = 10_000; // src/main.ts: app.close(10_000)
const COUNTER = 'counter';

/** Resolves with the error code of a fresh TCP connection attempt ('connected' if one was accepted). */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([promise, sleep(ms).then(() => Promise.reject(new Error(`${what}: not within ${ms} ms`)))]);
}

const answered = (w: WriteRecord) => w.outcome.kind === 'ack' || w.outcome.kind === 'mismatch';

describe.skipIf(backend !== 'postgres')('SIGTERM under write load (PostgreSQL)', () => {
  let database: Awaited<ReturnType<typeof createPostgresDatabase>>;
  let side: pg.Client;
  let gateway: Gateway | undefined;

  beforeAll(async () => {
    database = await createPostgresDatabase();
    side = new pg.Client({ connectionString: database.url });
    await side.connect();
  });

  afterEach(async () => {
    await side.query('ROLLBACK').catch(() => undefined);
    await gateway?.stop();
  });

  afterAll(async () => {
    await side?.end().catch(() => undefined);
    await database?.drop();
  });

  /** Blocks every statement on the records table (so requests stay in flight) until released. */
  async function lockRecords(): Promise<() => Promise<void>> {
    await side.query('BEGIN');
    await side.query('LOCK TABLE ext_storage_records IN ACCESS EXCLUSIVE MODE');
    return async () => {
      await side.query('ROLLBACK');
    };
  }

  async function startLoaded(namespace: string) {
    gateway = await startGateway({ DATABASE_URL: database.url, STORAGE_DB_STATEMENT_TIMEOUT_MS: '30000' });
    const ext = await gateway.createInstall();
    const setupId = await createCounter(gateway.url, ext.token, namespace, COUNTER);
    const load = startWriteLoad({ url: gateway.url, token: ext.token, namespace, counterKey: COUNTER, uniqueLoops: 3, counterLoops: 2 });
    expect(await waitForAcks(load.writes, 10), 'the load writes before the signal').toBeGreaterThanOrEqual(10);
    return { gw: gateway, ext, setupId, load };
  }

  it('stops accepting connections, finishes the requests in flight, exits 0, and keeps every acknowledged write', async () => {
    const namespace = 'drain';
    const { gw, ext, setupId, load } = await startLoaded(namespace);
    const release = await lockRecords();
    await sleep(300); // the load's next requests are now in flight, blocked in PostgreSQL
    const signalledAt = performance.now();
    gw.child.kill('SIGTERM');
    await sleep(500);

    expect(gw.child.exitCode, 'still draining while requests are in flight').toBeNull();
    expect(await tryConnect(gw.port), 'a new connection is refused').toBe('ECONNREFUSED');
    const refused = await call(gw.url, { token: ext.token, query: '{ __typename }', timeoutMs: 2000 });
    expect(refused.networkError).toBe('ECONNREFUSED');

    const releasedAt = performance.now();
    await release();
    const exit = await within(gw.exited, GRACE_MS, 'exit after the in-flight requests finished');
    const exitedAt = performance.now();
    const writes = await load.stop();
    expect(exit, gw.output()).toEqual({ code: 0, signal: null });
    expect(exitedAt - releasedAt, 'exits as soon as the drained requests are done, not at the end of the grace period').toBeLessThan(3000);

    // Every request the server had accepted before the signal got its real answer.
    const inFlight = writes.filter((w) => w.at < signalledAt && w.at + w.ms > signalledAt);
    expect(inFlight.length, 'requests were in flight at SIGTERM').toBeGreaterThanOrEqual(3);
    expect(inFlight.filter((w) => !answered(w)).map((w) => w.outcome)).toEqual([]);
    expect(inFlight.some((w) => w.outcome.kind === 'ack' && w.at + w.ms > releasedAt), 'in-flight writes completed after the signal').toBe(true);
    // Later requests were refused at the door: connection refused, or a clean 503 for one that
    // raced the shutdown on a kept-alive connection.
    const late = writes.filter((w) => w.at > signalledAt + 100);
    expect(late.filter((w) => w.outcome.kind !== 'network' && w.outcome.kind !== 'unavailable').map((w) => w.outcome)).toEqual([]);

    const state = await readStoredState(database.url, { tenantId: ext.tenantId, installId: ext.installId, namespace });
    const report = checkLedger(writes, state, COUNTER, [setupId]);
    expect(report.problems).toEqual([]);
    expect(report.unknownCommitted, 'no write the client saw fail was committed').toBe(0);
  }, 60_000);

  it('gives up on requests still running after the grace period, and still exits 0 within it', async () => {
    const namespace = 'grace';
    const { gw, ext, setupId, load } = await startLoaded(namespace);
    const release = await lockRecords();
    let writes: WriteRecord[];
    let exit;
    let elapsed;
    try {
      await sleep(300);
      const signalledAt = performance.now();
      gw.child.kill('SIGTERM');
      exit = await within(gw.exited, GRACE_MS + 5000, 'exit after the grace period');
      elapsed = performance.now() - signalledAt;
      writes = await load.stop();
    } finally {
      await release();
    }
    expect(exit, gw.output()).toEqual({ code: 0, signal: null });
    expect(elapsed).toBeGreaterThanOrEqual(GRACE_MS - 500);
    expect(elapsed, 'the grace period bounds the shutdown').toBeLessThan(GRACE_MS + 3000);

    // The requests cut off had an unknown outcome; acknowledged ones are all stored.
    await sleep(200);
    const state = await readStoredState(database.url, { tenantId: ext.tenantId, installId: ext.installId, namespace });
    const report = checkLedger(writes, state, COUNTER, [setupId]);
    expect(report.problems).toEqual([]);
  }, 60_000);
});

describe.skipIf(backend !== 'pglite')('kill -9 under write load (embedded PGlite)', () => {
  let dir: string;
  let gateway: Gateway | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ext-storage-pglite-'));
  });

  afterAll(async () => {
    await gateway?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps every acknowledged write, with its revision, across a kill -9 and a restart on the same directory', async () => {
    const namespace = 'crash';
    const pgliteDir = join(dir, 'data');
    gateway = await startGateway({ PGLITE_DIR: pgliteDir });
    const ext = await gateway.createInstall();
    const setupId = await createCounter(gateway.url, ext.token, namespace, COUNTER);
    const load = startWriteLoad({ url: gateway.url, token: ext.token, namespace, counterKey: COUNTER, uniqueLoops: 3, counterLoops: 2 });
    expect(await waitForAcks(load.writes, 30), 'the load writes before the kill').toBeGreaterThanOrEqual(30);
    await sleep(200); // mid-load, not just after an acknowledgement
    gateway.child.kill('SIGKILL');
    const killed = await gateway.exited;
    const writes = await load.stop();
    expect(killed.signal).toBe('SIGKILL');
    const acked = writes.filter((w) => w.outcome.kind === 'ack');
    expect(writes.filter((w) => w.outcome.kind === 'unexpected').map((w) => w.outcome)).toEqual([]);

    // A new gateway on the same directory sees every acknowledged write at its revision.
    gateway = await startGateway({ PGLITE_DIR: pgliteDir });
    const token = await gateway.extensionToken(ext.tenantId, ext.installId);
    const uniqueAcks = acked.filter((w) => w.key !== COUNTER);
    for (let i = 0; i < uniqueAcks.length; i += 100) {
      const batch = uniqueAcks.slice(i, i + 100);
      const res = await call(gateway.url, {
        token,
        query: 'query Get($ns: String!, $keys: [String!]!) { records(namespace: $ns, keys: $keys) { key revision value } }',
        variables: { ns: namespace, keys: batch.map((w) => w.key) },
      });
      expect(res.status, res.text).toBe(200);
      const got = (res.body as any).data.records as Array<{ key: string; revision: number; value: unknown } | null>;
      expect(got).toEqual(batch.map((w) => ({ key: w.key, revision: (w.outcome as { revision: number }).revision, value: w.value })));
    }
    const counter = await call(gateway.url, { token, query: `{ record(namespace: "${namespace}", key: "${COUNTER}") { revision } }` });
    const counterAcks = acked.filter((w) => w.key === COUNTER).map((w) => (w.outcome as { revision: number }).revision);
    expect((counter.body as any).data.record.revision).toBeGreaterThanOrEqual(Math.max(1, ...counterAcks));

    // A clean stop of the second gateway, then the exact accounting from the audit trail.
    gateway.child.kill('SIGTERM');
    expect(await within(gateway.exited, GRACE_MS + 5000, 'clean exit')).toEqual({ code: 0, signal: null });
    const state = await readStoredStateFromPglite(pgliteDir, { tenantId: ext.tenantId, installId: ext.installId, namespace });
    const report = checkLedger(writes, state, COUNTER, [setupId]);
    expect(report.problems).toEqual([]);
    console.info(`pglite kill -9: ${writes.length} writes, ${report.acked} acknowledged, ${report.unknown} unknown (${report.unknownCommitted} committed)`);
  }, 90_000);
});
