/**
 * A database restart under write load: the gateway answers fast and cleanly while PostgreSQL is
 * gone, says so on /readyz, recovers by itself, and loses or doubles no acknowledged write.
 * Runs against a private PostgreSQL instance (the shared one must never be restarted).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backend } from '../support/db.js';
import { startPostgresInstance, type PostgresInstance } from '../support/pg-instance.js';
import { createCounter, leaks, sleep, waitForAcks, startGateway, startWriteLoad, type Gateway } from './gateway.js';
import { checkLedger, readStoredState } from './ledger.js';

const STATEMENT_TIMEOUT_MS = 3000;
const CONNECTION_TIMEOUT_MS = 1000;
const COUNTER = 'counter';

/** The gateway's own account of an unexpected error (its error-level log lines), for the failure message. */
function unexpectedLogLines(output: string): string {
  return output.split('\n').filter((line) => line.includes('"level":50')).slice(-5).join('\n') || '(nothing at error level)';
}

describe.skipIf(backend !== 'postgres')('a PostgreSQL restart under write load', () => {
  let pg: PostgresInstance;
  let gateway: Gateway;

  beforeAll(async () => {
    pg = await startPostgresInstance();
    gateway = await startGateway({
      DATABASE_URL: pg.url,
      STORAGE_DB_CONNECTION_TIMEOUT_MS: String(CONNECTION_TIMEOUT_MS),
      STORAGE_DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
      STORAGE_DB_POOL_MAX: '8',
    });
  });

  afterAll(async () => {
    await gateway?.stop();
    await pg?.destroy();
  });

  // fast: an ordinary restart (sessions terminated); immediate: a crash, recovered from the WAL.
  it.each(['fast', 'immediate'] as const)('%s stop: fails fast and cleanly during the outage, recovers by itself, keeps every acknowledged write exactly once', async (mode) => {
    const NAMESPACE = `outage-${mode}`;
    const { tenantId, installId, token } = await gateway.createInstall();
    const setupId = await createCounter(gateway.url, token, NAMESPACE, COUNTER);

    const load = startWriteLoad({ url: gateway.url, token, namespace: NAMESPACE, counterKey: COUNTER, uniqueLoops: 3, counterLoops: 3 });
    const readyzDuring: Array<{ status: number; ms: number; text: string }> = [];
    let stopRequestedAt = 0;
    let stoppedAt = 0;
    let startedAt = 0;
    let recoveredAt = 0;
    try {
      expect(await waitForAcks(load.writes, 20), 'the load writes before the outage').toBeGreaterThanOrEqual(20);

      stopRequestedAt = performance.now();
      await pg.stop(mode);
      stoppedAt = performance.now();
      // Requests keep coming for about two seconds while the database is gone.
      while (performance.now() - stoppedAt < 2000) {
        const t = performance.now();
        const res = await fetch(`${gateway.url}/readyz`, { signal: AbortSignal.timeout(10_000) });
        readyzDuring.push({ status: res.status, ms: performance.now() - t, text: await res.text() });
        await sleep(200);
      }
      await pg.start();
      startedAt = performance.now();

      // The gateway finds the database again on its own: /readyz turns 200 and writes succeed.
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        const res = await fetch(`${gateway.url}/readyz`, { signal: AbortSignal.timeout(10_000) }).catch(() => null);
        if (res?.status === 200) {
          recoveredAt = performance.now();
          break;
        }
        await sleep(100);
      }
      expect(recoveredAt, '/readyz turns 200 again after the database is back').toBeGreaterThan(0);
      const ackDeadline = Date.now() + 15_000;
      const acksAfterRecovery = () => load.writes.filter((w) => w.outcome.kind === 'ack' && w.at > recoveredAt).length;
      while (acksAfterRecovery() < 30 && Date.now() < ackDeadline) await sleep(100);
      expect(acksAfterRecovery(), 'writes are acknowledged again after recovery').toBeGreaterThanOrEqual(30);
    } finally {
      await load.stop();
    }
    const writes = load.writes;

    // Readiness during the outage: every probe said 503, fast, without internals.
    expect(readyzDuring.length).toBeGreaterThanOrEqual(3);
    for (const probe of readyzDuring) {
      expect(probe.status, probe.text).toBe(503);
      expect(probe.ms).toBeLessThan(CONNECTION_TIMEOUT_MS + 1000);
      expect(leaks(probe.text), probe.text).toEqual([]);
    }

    // Failures during the outage were clean (HTTP 503 or GraphQL INTERNAL) and fast.
    const unexpected = writes.filter((w) => w.outcome.kind === 'unexpected' || w.outcome.kind === 'network');
    expect(
      unexpected.map((w) => w.outcome),
      `every answer is a success, a mismatch or a clean unavailability; the gateway logged:\n${unexpectedLogLines(gateway.output())}`,
    ).toEqual([]);
    const failed = writes.filter((w) => w.outcome.kind === 'unavailable');
    expect(failed.length, 'requests during the outage fail').toBeGreaterThan(5);
    const slowest = Math.max(...failed.map((w) => w.ms));
    // In flight when the stop began, or sent before /readyz said ready again.
    const outside = failed.filter((w) => w.at + w.ms < stopRequestedAt || w.at > recoveredAt);
    expect(outside.map((w) => ({ key: w.key, at: w.at - stopRequestedAt })), 'failures happen only during the outage').toEqual([]);
    expect(slowest, 'no failing request waits for the statement timeout').toBeLessThan(STATEMENT_TIMEOUT_MS + 1000);
    const hung = writes.filter((w) => w.ms >= STATEMENT_TIMEOUT_MS + 1000);
    expect(hung.map((w) => ({ key: w.key, ms: w.ms, kind: w.outcome.kind })), 'no request hangs, successful or not').toEqual([]);

    // Nothing acknowledged was lost, nothing was applied twice.
    const state = await readStoredState(pg.url, { tenantId, installId, namespace: NAMESPACE });
    const report = checkLedger(writes, state, COUNTER, [setupId]);
    expect(report.problems).toEqual([]);
    expect(report.counterAcks).toBeGreaterThan(5);
    // Logged for the record: how many outcomes were unknown and how many of those committed.
    console.info(
      `outage (${mode} stop): ${writes.length} writes, ${report.acked} acknowledged, ${report.unknown} unknown (${report.unknownCommitted} committed), ` +
        `counter at ${report.counterRevision}, slowest failure ${Math.round(slowest)} ms, recovery ${Math.round(recoveredAt - startedAt)} ms after start`,
    );
  }, 45_000);
});
