/**
 * Statement timeout and pool limits: configurable, and when the database is slow or the pool is
 * exhausted a request queues briefly, then fails cleanly; it never hangs. The slowness is real:
 * a side connection holds an ACCESS EXCLUSIVE lock on ext_storage_records, so the gateway's own
 * statements block inside PostgreSQL until its statement timeout cancels them.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { backend, createPostgresDatabase } from '../support/db.js';
import { call, classifyPut, leaks, PUT, sleep, startGateway, UNAVAILABLE_MESSAGE, type Gateway } from './gateway.js';

const STATEMENT_TIMEOUT_MS = 2000;
const CONNECTION_TIMEOUT_MS = 800;
const POOL_MAX = 2;
const APP_NAME = 'reliability-pool-gateway';

describe('database settings come from the environment', () => {
  it('reads the pool size, statement timeout and connection timeout', () => {
    const config = loadConfig({
      STORAGE_DB_POOL_MAX: '3',
      STORAGE_DB_STATEMENT_TIMEOUT_MS: '1234',
      STORAGE_DB_CONNECTION_TIMEOUT_MS: '567',
    });
    expect(config.db).toEqual({ poolMax: 3, statementTimeoutMs: 1234, connectionTimeoutMs: 567, poolMode: 'session' });
  });

  it('refuses values that are not whole numbers in range', () => {
    expect(() => loadConfig({ STORAGE_DB_POOL_MAX: '0' })).toThrow(ConfigError);
    expect(() => loadConfig({ STORAGE_DB_STATEMENT_TIMEOUT_MS: '-1' })).toThrow(ConfigError);
    expect(() => loadConfig({ STORAGE_DB_CONNECTION_TIMEOUT_MS: 'soon' })).toThrow(ConfigError);
  });
});

describe.skipIf(backend !== 'postgres')('a slow database and an exhausted pool', () => {
  let database: Awaited<ReturnType<typeof createPostgresDatabase>>;
  let gateway: Gateway;
  let side: pg.Client;
  let ext: { tenantId: string; installId: string; token: string };
  const runnerToken = 'reliability-runner-token';

  beforeAll(async () => {
    database = await createPostgresDatabase();
    const url = new URL(database.url);
    url.searchParams.set('application_name', APP_NAME);
    gateway = await startGateway({
      DATABASE_URL: url.toString(),
      STORAGE_DB_POOL_MAX: String(POOL_MAX),
      STORAGE_DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
      STORAGE_DB_CONNECTION_TIMEOUT_MS: String(CONNECTION_TIMEOUT_MS),
      RUNNER_AUTH_TOKENS: runnerToken,
    });
    ext = await gateway.createInstall();
    side = new pg.Client({ connectionString: database.url });
    await side.connect();
  });

  afterAll(async () => {
    await side?.end().catch(() => undefined);
    await gateway?.stop();
    await database?.drop();
  });

  /** Holds ACCESS EXCLUSIVE on the records table until the returned function is called. */
  async function lockRecords(): Promise<() => Promise<void>> {
    await side.query('BEGIN');
    await side.query('LOCK TABLE ext_storage_records IN ACCESS EXCLUSIVE MODE');
    return async () => {
      await side.query('ROLLBACK');
    };
  }

  const put = (key: string, requestId?: string) =>
    call(gateway.url, { token: ext.token, query: PUT, variables: { input: { namespace: 'pool', key, value: { key } } }, requestId });

  async function storedKeys(): Promise<string[]> {
    const r = await side.query('SELECT key FROM ext_storage_records WHERE tenant_id = $1 AND install_id = $2 ORDER BY key', [ext.tenantId, ext.installId]);
    return r.rows.map((row) => row.key as string);
  }

  async function gatewayConnections(): Promise<number> {
    const r = await side.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [APP_NAME]);
    return r.rows[0].n as number;
  }

  it('a statement that exceeds the statement timeout is cancelled and answered cleanly (GraphQL and Runner)', async () => {
    const release = await lockRecords();
    let graphql, runner;
    try {
      [graphql, runner] = await Promise.all([
        put('timeout/graphql'),
        (async () => {
          const started = performance.now();
          const res = await fetch(`${gateway.url}/api/internal/ext-storage/install/${ext.installId}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-runner-auth': runnerToken },
            body: JSON.stringify({ operation: 'get', namespace: 'pool', key: 'timeout/runner' }),
            signal: AbortSignal.timeout(15_000),
          });
          return { status: res.status, text: await res.text(), ms: performance.now() - started };
        })(),
      ]);
    } finally {
      await release();
    }
    expect(classifyPut(graphql), graphql.text).toEqual({ kind: 'unavailable' });
    expect(graphql.ms, 'the put waited for the statement timeout, not for the lock').toBeGreaterThanOrEqual(STATEMENT_TIMEOUT_MS - 50);
    expect(graphql.ms).toBeLessThan(STATEMENT_TIMEOUT_MS + 1500);

    expect(runner.status, runner.text).toBe(503);
    expect(JSON.parse(runner.text)).toMatchObject({ code: 'INTERNAL_ERROR', error: UNAVAILABLE_MESSAGE });
    expect(leaks(runner.text), runner.text).toEqual([]);
    expect(runner.ms).toBeGreaterThanOrEqual(STATEMENT_TIMEOUT_MS - 50);
    expect(runner.ms).toBeLessThan(STATEMENT_TIMEOUT_MS + 1500);

    // The cancelled write left no trace, and the gateway works again once the lock is gone.
    expect(await storedKeys()).toEqual([]);
    const after = await put('timeout/after');
    expect(classifyPut(after), after.text).toEqual({ kind: 'ack', revision: 1 });
  });

  it(`requests beyond the pool (max ${POOL_MAX}) queue while the database is briefly busy, and all succeed`, async () => {
    const release = await lockRecords();
    const pending = Array.from({ length: 6 }, (_, i) => put(`brief/${i}`));
    await sleep(200);
    const held = await gatewayConnections();
    await release();
    const results = await Promise.all(pending);
    expect(held, 'the pool never opens more than STORAGE_DB_POOL_MAX connections').toBeLessThanOrEqual(POOL_MAX);
    expect(held).toBeGreaterThanOrEqual(1);
    expect(results.map((r) => classifyPut(r).kind)).toEqual(Array(6).fill('ack'));
  });

  it('an exhausted pool fails queued requests cleanly after the connection timeout, and never hangs', async () => {
    // Writes of one install share one call at a time (the write combiner), so the pool is exhausted
    // by writes of several installs.
    const installs = await Promise.all(Array.from({ length: 8 }, () => gateway.createInstall()));
    const release = await lockRecords();
    let results;
    let held = 0;
    try {
      const pending = installs.map((install, i) =>
        call(gateway.url, { token: install.token, query: PUT, variables: { input: { namespace: 'pool', key: `exhausted/${i}`, value: { i } } } }),
      );
      await sleep(300);
      held = await gatewayConnections();
      results = await Promise.all(pending);
    } finally {
      await release();
    }
    expect(held, 'the pool is full, and never opens more than STORAGE_DB_POOL_MAX connections').toBe(POOL_MAX);
    const outcomes = results.map((r) => ({ kind: classifyPut(r).kind, ms: Math.round(r.ms) }));
    for (const r of results) expect(classifyPut(r), r.text).toEqual({ kind: 'unavailable' });
    console.info(`exhausted pool: ${JSON.stringify(outcomes)}`);
    // Waiting for a connection is bounded by the connection timeout (twice at most: the credential
    // check and the write each take one), holding one by the statement timeout.
    const bound = STATEMENT_TIMEOUT_MS + 2 * CONNECTION_TIMEOUT_MS + 1000;
    for (const o of outcomes) expect(o.ms, JSON.stringify(outcomes)).toBeLessThan(bound);
    expect(outcomes.some((o) => o.ms < STATEMENT_TIMEOUT_MS - 300), `some requests gave up waiting for a connection: ${JSON.stringify(outcomes)}`).toBe(true);
    expect(outcomes.some((o) => o.ms >= STATEMENT_TIMEOUT_MS - 50), `some requests held a connection until the statement timeout: ${JSON.stringify(outcomes)}`).toBe(true);

    // Nothing of the refused writes was stored; the pool is whole again afterwards.
    for (const install of installs) {
      const r = await side.query('SELECT count(*)::int AS n FROM ext_storage_records WHERE tenant_id = $1 AND install_id = $2', [install.tenantId, install.installId]);
      expect(r.rows[0].n).toBe(0);
    }
    const after = await Promise.all(Array.from({ length: 4 }, (_, i) => put(`exhausted/after/${i}`)));
    expect(after.map((r) => classifyPut(r).kind)).toEqual(Array(4).fill('ack'));
    const ready = await fetch(`${gateway.url}/readyz`);
    expect(ready.status).toBe(200);
  });

  it('writes queued behind a busy install give up after the connection timeout too, and the call in flight at the statement timeout', async () => {
    const release = await lockRecords();
    let results;
    try {
      results = await Promise.all(Array.from({ length: 8 }, (_, i) => put(`busy/${i}`)));
    } finally {
      await release();
    }
    const outcomes = results.map((r) => ({ kind: classifyPut(r).kind, ms: Math.round(r.ms) }));
    for (const r of results) expect(classifyPut(r), r.text).toEqual({ kind: 'unavailable' });
    const bound = STATEMENT_TIMEOUT_MS + CONNECTION_TIMEOUT_MS + 1000;
    for (const o of outcomes) expect(o.ms, JSON.stringify(outcomes)).toBeLessThan(bound);
    expect(outcomes.filter((o) => o.ms < STATEMENT_TIMEOUT_MS - 300).length, `the queued ones gave up waiting: ${JSON.stringify(outcomes)}`).toBeGreaterThan(0);
    expect((await storedKeys()).filter((k) => k.startsWith('busy/'))).toEqual([]);
    const after = await Promise.all(Array.from({ length: 4 }, (_, i) => put(`busy/after/${i}`)));
    expect(after.map((r) => classifyPut(r).kind)).toEqual(Array(4).fill('ack'));
  });
});
