/**
 * Issue 16: the gateway behind PgBouncer in transaction pooling mode (DATABASE_POOL_MODE=transaction,
 * docs/operations.md "Deployment"). A real PgBouncer (Debian package pgbouncer, .ci/run installs it)
 * runs on a free port with 5 server connections; two gateways reach a fresh database through it
 * (DATABASE_URL) and PostgreSQL directly only for LISTEN and migrations (DATABASE_DIRECT_URL), and
 * the whole write path runs: puts, bulk puts, deletes, commits with checks, increments (one into a
 * namespace with a schema), racing writers, quotas at their edge, reads, the change feed across the
 * two gateways, setNamespaceSchema. The control: the same gateway without the setting fails through
 * the same PgBouncer, so these tests do go through transaction pooling.
 *
 * PostgreSQL project only. With CI=true a missing pgbouncer fails this file; elsewhere it is skipped, loudly.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openMigratedDatabase } from '../../src/bootstrap.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { openDatabase, type DatabaseHandle } from '../../src/db/database.js';
import { createApp } from '../../src/http/server.js';
import { createLogger } from '../../src/logger.js';
import { check, commitClient, del, inc, put, setSchema, storedBytes, type CommitClient } from '../commit/client.js';
import { subscribe } from '../feed/sse.js';
import { extensionClient, PUT } from '../records/client.js';
import { dataOf, startTestApp, type TestApp } from '../support/app.js';
import { adminUrl, assertCountersConsistent, backend, createPostgresDatabase } from '../support/db.js';
import { PGBOUNCER_BIN, pgbouncerAvailable, startPgBouncer, type PgBouncer } from '../support/pgbouncer.js';

const inCI = process.env.CI === 'true';
const POOL_SIZE = 5;
if (backend === 'postgres' && !pgbouncerAvailable && !inCI) {
  console.warn(
    `\n!!!!!!!! ${PGBOUNCER_BIN} not found: test/scale/pgbouncer.test.ts is SKIPPED. ` +
      'Install it (apt-get install -y --no-install-recommends pgbouncer); CI fails without it. !!!!!!!!\n',
  );
}

describe('DATABASE_POOL_MODE and DATABASE_DIRECT_URL', () => {
  it('transaction mode needs both URLs; other modes are refused', () => {
    const pooler = 'postgres://root@127.0.0.1:6432/db';
    expect(() => loadConfig({ DATABASE_URL: pooler, DATABASE_POOL_MODE: 'transaction' })).toThrow(ConfigError);
    expect(() => loadConfig({ DATABASE_DIRECT_URL: pooler, DATABASE_POOL_MODE: 'transaction' })).toThrow(ConfigError);
    expect(() => loadConfig({ DATABASE_URL: pooler, DATABASE_POOL_MODE: 'statement' })).toThrow(ConfigError);
    const config = loadConfig({ DATABASE_URL: pooler, DATABASE_DIRECT_URL: 'postgres://root@127.0.0.1:5432/db', DATABASE_POOL_MODE: 'transaction' });
    expect(config.db.poolMode).toBe('transaction');
    expect(loadConfig({ DATABASE_URL: pooler }).db.poolMode).toBe('session');
  });

  it.runIf(backend === 'postgres')('in transaction mode the pool prepares no named statement and sets no session timeout', async () => {
    const created = await createPostgresDatabase();
    const handle = await openDatabase({
      databaseUrl: created.url,
      databaseDirectUrl: created.url,
      pgliteDir: '',
      // One connection: pg_prepared_statements and SHOW are per session.
      db: { poolMax: 1, statementTimeoutMs: 5000, connectionTimeoutMs: 5000, poolMode: 'transaction' },
    });
    try {
      expect((await sql<{ v: number }>`SELECT ${41}::int + 1 AS v`.execute(handle.db)).rows).toEqual([{ v: 42 }]);
      expect((await sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_prepared_statements WHERE ${1}::int = 1`.execute(handle.db)).rows).toEqual([{ n: 0 }]);
      expect((await sql<{ statement_timeout: string }>`SHOW statement_timeout`.execute(handle.db)).rows).toEqual([{ statement_timeout: '0' }]);
      expect(handle.connectionString).toBe(created.url);
    } finally {
      await handle.close();
      await created.drop();
    }
  });
});

describe.runIf(backend === 'postgres')('behind PgBouncer in transaction pooling mode', () => {
  it.runIf(inCI)('pgbouncer is installed (CI never skips this file)', () => {
    expect(pgbouncerAvailable, `${PGBOUNCER_BIN} is missing: .ci/run installs the Debian package pgbouncer`).toBe(true);
  });

  describe.runIf(pgbouncerAvailable)('with a real PgBouncer', () => {
    let bouncer: PgBouncer;
    let database: { name: string; url: string; drop(): Promise<void> };
    let env: Record<string, string>;
    let t: TestApp;
    /** A second gateway on the same database through the same PgBouncer, sharing t's token secret. */
    let second: { url: string; gql: TestApp['gql']; close(): Promise<void> };

    beforeAll(async () => {
      const server = new URL(adminUrl);
      bouncer = await startPgBouncer({ host: server.hostname, port: Number(server.port || 5432) }, { defaultPoolSize: POOL_SIZE, maxClientConn: 400 });
      database = await createPostgresDatabase();
      env = { DATABASE_URL: bouncer.url(database.name), DATABASE_DIRECT_URL: database.url, DATABASE_POOL_MODE: 'transaction' };
      // Two instances start as production starts them (config → openMigratedDatabase), at once: both
      // migrate, over the direct URL, under Kysely's session lock.
      const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', STORAGE_RATE_LIMIT_PER_SECOND: '0', ...env });
      const [first, other] = await Promise.all([openMigratedDatabase(config), openMigratedDatabase(config)]);
      t = await startTestApp(env, [], {
        openDatabase: async () => ({ handle: first, url: database.url, assertCountersConsistent: () => assertCountersConsistent(first), dispose: () => first.close() }),
      });
      const app = createApp({ config, database: other, logger: createLogger('silent'), jwtSecret: t.secret });
      const url = await app.listen(0, '127.0.0.1');
      second = {
        url,
        async gql(query, variables, auth) {
          const res = await fetch(`${url}/graphql`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...(auth?.token ? { authorization: `Bearer ${auth.token}` } : {}) },
            body: JSON.stringify({ query, variables }),
          });
          return { status: res.status, headers: res.headers, body: await res.json() };
        },
        async close() {
          await app.close(2000);
          await other.close();
        },
      };
    });

    afterAll(async () => {
      // close() recounts every counter against the stored records (usage = recount) through PgBouncer.
      await second?.close();
      await t?.close();
      await bouncer?.stop();
      await database?.drop();
    });

    it('the pool really goes through PgBouncer: 12 clients share at most 5 server connections', async () => {
      const db = t.database.handle.db;
      let done = false;
      const sleeps = Promise.all(Array.from({ length: 12 }, () => sql`SELECT pg_sleep(1)`.execute(db))).finally(() => (done = true));
      let maxWaiting = 0;
      let maxServers = 0;
      while (!done) {
        const pool = (await bouncer.show('POOLS')).find((p) => p.database === database.name)!;
        maxWaiting = Math.max(maxWaiting, Number(pool.cl_waiting));
        maxServers = Math.max(maxServers, ['sv_active', 'sv_idle', 'sv_used', 'sv_tested', 'sv_login'].reduce((n, k) => n + Number(pool[k]), 0));
        await new Promise((r) => setTimeout(r, 50));
      }
      await sleeps;
      expect(maxServers).toBeGreaterThan(0);
      expect(maxServers).toBeLessThanOrEqual(POOL_SIZE);
      // Clients queue for a server connection: PgBouncer, not the gateway's pool, decides.
      expect(maxWaiting).toBeGreaterThanOrEqual(12 - POOL_SIZE);
    });

    it('puts, bulk puts, reads, deletes', async () => {
      const c = await extensionClient(t);
      expect(await c.put({ namespace: 'ns', key: 'a', value: { n: 1 } })).toMatchObject({ __typename: 'PutRecordSuccess', record: { revision: 1 } });
      expect(await c.put({ namespace: 'ns', key: 'a', value: { n: 2 }, ifRevision: 1 })).toMatchObject({ record: { revision: 2, value: { n: 2 } } });
      expect(await c.put({ namespace: 'ns', key: 'a', value: { n: 3 }, ifRevision: 1 })).toMatchObject({ __typename: 'RevisionMismatch', currentRevision: 2 });
      const bulk = await c.bulk('ns', Array.from({ length: 30 }, (_, i) => ({ key: `b${i}`, value: i })));
      expect(bulk.__typename).toBe('BulkPutRecordsSuccess');
      expect(bulk.records).toHaveLength(30);
      expect((await c.getMany('ns', ['a', 'b7', 'missing'])).map((r) => r?.value ?? null)).toEqual([{ n: 2 }, 7, null]);
      const page = await c.list('ns', { prefix: 'b', first: 10 });
      expect(page.edges).toHaveLength(10);
      expect(page.pageInfo.hasNextPage).toBe(true);
      expect(await c.del({ namespace: 'ns', key: 'b0' })).toMatchObject({ __typename: 'DeleteRecordSuccess', deleted: true });
      expect(await c.get('ns', 'b0')).toBeNull();
      expect((await c.usage('ns')).usage.keys).toBe(30);
    });

    it('commits with checks, and increments (one into a namespace with a schema: an explicit transaction)', async () => {
      const c: CommitClient = await commitClient(t);
      const first = await c.commit({ operations: [put('ns', 'x', 1), put('ns', 'y', 2), inc('ns', 'count', 5)] });
      expect(first).toMatchObject({ __typename: 'CommitSuccess', committed: true });
      const conflict = await c.commit({ checks: [check('ns', 'x', 7)], operations: [del('ns', 'y')] });
      expect(conflict).toMatchObject({ __typename: 'CommitConflict', conflicts: [{ key: 'x', expectedRevision: 7, currentRevision: 1 }] });
      expect(await c.commit({ checks: [check('ns', 'x', 1)], operations: [del('ns', 'y'), put('ns', 'x', 10)] })).toMatchObject({ __typename: 'CommitSuccess' });
      expect((await c.all('ns')).map((r) => [r.key, r.value, r.revision])).toEqual([
        ['count', 5, 1],
        ['x', 10, 2],
      ]);

      const version = await setSchema(t, c.install, 'capped', { type: 'number', maximum: 10 });
      expect(await c.increment({ namespace: 'capped', key: 'k', by: 4 })).toMatchObject({ record: { value: 4, revision: 1, schemaVersion: version } });
      expect(await c.increment({ namespace: 'capped', key: 'k', by: 7 })).toMatchObject({ __typename: 'ValidationFailed', schemaVersion: version });
      // Concurrent increments through 5 server connections: none lost, revisions exact.
      const racing = await Promise.all(Array.from({ length: 6 }, () => c.increment({ namespace: 'capped', key: 'k', by: 1 })));
      expect(racing.map((r) => r.record.revision).sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7]);
      expect((await c.get('capped', 'k'))?.value).toBe(10);
      const plain = await Promise.all(Array.from({ length: 25 }, () => c.increment({ namespace: 'ns', key: 'count', by: 2 })));
      expect(plain.every((r) => r.__typename === 'PutRecordSuccess')).toBe(true);
      expect(await c.get('ns', 'count')).toMatchObject({ value: 55, revision: 26 });
    });

    it('racing writers on one key, through both gateways: every revision exactly once', async () => {
      const c = await extensionClient(t);
      const token = c.token;
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? t : second).gql(PUT, { input: { namespace: 'race', key: 'k', value: i } }, { token })),
      );
      const revisions = results.map((r) => dataOf(r).putRecord.record.revision as number).sort((a, b) => a - b);
      expect(revisions).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      // Compare-and-set: of 10 writers expecting the same revision exactly one wins.
      const cas = await Promise.all(
        Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? t : second).gql(PUT, { input: { namespace: 'race', key: 'k', value: -i, ifRevision: 40 } }, { token })),
      );
      const outcomes = cas.map((r) => dataOf(r).putRecord.__typename as string);
      expect(outcomes.filter((o) => o === 'PutRecordSuccess')).toHaveLength(1);
      expect(outcomes.filter((o) => o === 'RevisionMismatch')).toHaveLength(9);
      expect(await c.get('race', 'k')).toMatchObject({ revision: 41 });
    });

    it('quotas at their edge under many concurrent writers on many installs: never exceeded, usage = recount', async () => {
      const value = 'v'.repeat(100);
      // Room for 4 of the large records and the 7 small ones, never a 5th large one.
      const maxBytes = 4 * storedBytes(value) + 50;
      const clients = await Promise.all(Array.from({ length: 6 }, () => extensionClient(t, { quota: { maxKeysPerNamespace: 7, maxBytes } })));
      const results = await Promise.all(
        clients.flatMap((c, n) => [
          ...Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? t : second).gql(PUT, { input: { namespace: 'keys', key: `k${i}`, value: i } }, { token: c.token })),
          ...Array.from({ length: 10 }, (_, i) => c.bulk('bytes', [{ key: `b${n}-${i}`, value }])).map((p) => p.then((r) => ({ bulk: r }))),
        ]),
      );
      for (const [n, c] of clients.entries()) {
        const mine = results.slice(n * 40, n * 40 + 40);
        const puts = mine.slice(0, 30).map((r) => dataOf((r as any)).putRecord.__typename);
        expect(puts.filter((x) => x === 'PutRecordSuccess')).toHaveLength(7);
        expect(puts.filter((x) => x === 'QuotaExceeded')).toHaveLength(23);
        const bulks = mine.slice(30).map((r) => (r as any).bulk.__typename);
        expect(bulks.filter((x) => x === 'BulkPutRecordsSuccess')).toHaveLength(4);
        expect(bulks.filter((x) => x === 'QuotaExceeded')).toHaveLength(6);
        const state = await c.usage('bytes');
        expect(state.usage.bytes).toBeLessThanOrEqual(maxBytes);
        expect(state.usage.keys).toBe(11);
        expect(state.namespace).toEqual({ keyCount: 4, bytesUsed: 4 * storedBytes(value) });
      }
      await t.database.assertCountersConsistent();
    });

    it('setNamespaceSchema, then writes validated against it', async () => {
      const c = await extensionClient(t);
      const version = await setSchema(t, c.install, 'typed', { type: 'object', required: ['name'] });
      expect(await c.put({ namespace: 'typed', key: 'ok', value: { name: 'x' } })).toMatchObject({ record: { schemaVersion: version } });
      expect(await c.put({ namespace: 'typed', key: 'bad', value: { other: 1 } })).toMatchObject({ __typename: 'ValidationFailed' });
    });

    it('the change feed: a write through one gateway reaches a subscriber of the other within 1 s (LISTEN on the direct URL)', async () => {
      const c = await extensionClient(t);
      const sub = await subscribe(second.url, 'subscription { changes { cursor operation key revision } }', {}, c.token);
      try {
        expect(sub.status).toBe(200);
        // The subscription is open and the second gateway's LISTEN connection in place.
        await new Promise((r) => setTimeout(r, 500));
        for (let i = 0; i < 3; i++) {
          const started = performance.now();
          await c.put({ namespace: 'feed', key: `k${i}`, value: i });
          const [e] = await sub.take(1, 5000);
          expect(e!.data.changes).toMatchObject({ operation: 'PUT', key: `k${i}`, revision: 1 });
          // Contract: within 1 s (the safety-net poll alone would take up to 5 s).
          expect(performance.now() - started).toBeLessThan(1000);
        }
      } finally {
        sub.close();
      }
    });

    describe('control: the same gateway without DATABASE_POOL_MODE=transaction, through the same PgBouncer', () => {
      it('its statement_timeout startup parameter is refused by PgBouncer', async () => {
        const handle = await openDatabase({ databaseUrl: bouncer.url(database.name), pgliteDir: '', db: { poolMax: 2, statementTimeoutMs: 5000, connectionTimeoutMs: 5000 } });
        try {
          await expect(handle.ping()).rejects.toThrow(/unsupported startup parameter: statement_timeout/);
        } finally {
          await handle.close();
        }
      });

      it('without a statement timeout, its named prepared statements break under concurrency', async () => {
        const errors: string[] = [];
        const config = loadConfig({ NODE_ENV: 'test', STORAGE_JWT_SECRET: t.secret, STORAGE_RATE_LIMIT_PER_SECOND: '0', LOG_LEVEL: 'silent', DATABASE_URL: bouncer.url(database.name) });
        // Already migrated: migrating through the pooler would leave Kysely's session lock behind.
        const handle: DatabaseHandle = await openDatabase({ ...config, db: { ...config.db, statementTimeoutMs: 0 } }, [
          (e) => {
            if (e.level === 'error') errors.push(String((e.error as Error)?.message));
          },
        ]);
        const control = createApp({ config, database: handle, logger: createLogger('silent'), jwtSecret: t.secret });
        const url = await control.listen(0, '127.0.0.1');
        try {
          const clients = await Promise.all(Array.from({ length: 6 }, () => extensionClient(t)));
          const responses = await Promise.all(
            clients.flatMap((c) =>
              Array.from({ length: 10 }, (_, i) =>
                fetch(`${url}/graphql`, {
                  method: 'POST',
                  headers: { 'content-type': 'application/json', authorization: `Bearer ${c.token}` },
                  body: JSON.stringify({ query: PUT, variables: { input: { namespace: 'control', key: `k${i}`, value: i } } }),
                }).then((r) => r.json() as Promise<{ errors?: unknown[] }>),
              ),
            ),
          );
          expect(errors.some((m) => /prepared statement "ext_storage_[^"]+" (does not exist|already exists)/.test(m)), errors.slice(0, 3).join('\n')).toBe(true);
          expect(responses.some((r) => r.errors !== undefined)).toBe(true);
        } finally {
          await control.close(2000);
        }
      });
    });
  });
});
