/**
 * Capability changes reach every gateway instance (README, "Install changes"; docs/operations.md,
 * "Install changes across instances"): an upsertInstall through one instance is honoured by every
 * other within 1 s, by a notification (pg_notify in the upsert's transaction, LISTEN on each
 * instance's one LISTEN connection), not by the cache expiring: the cache here lives 60 s. A change
 * made while an instance's LISTEN connection is down is honoured once it is back (the cache is
 * dropped on reconnect, and not used while it is down).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { openDatabase } from '../../src/db/database.js';
import { createApp, type App } from '../../src/http/server.js';
import { createLogger } from '../../src/logger.js';
import { PUT } from '../records/client.js';
import { adminUrl, backend } from '../support/db.js';
import { startTestApp, type TestApp, type TestInstall } from '../support/app.js';
import { subscribe } from '../feed/sse.js';

/** The bound the gateway promises for an install change on every instance. */
const BOUND_MS = 1000;
/** Far longer than any test here: only the notification can explain a change seen in time. */
const CACHE_ENV = { STORAGE_INSTALL_CACHE_MS: '60000' };

const UPSERT = `mutation($input: UpsertInstallInput!) { upsertInstall(input: $input) { id enabled capabilities { read write namespaces } } }`;

let t: TestApp;
/** The instances' base URLs: A (t's own app), then B and C on the same database (PostgreSQL only). */
const urls: string[] = [];
const others: App[] = [];

beforeAll(async () => {
  t = await startTestApp(CACHE_ENV);
  urls.push(t.url);
  if (backend !== 'postgres') return;
  for (let i = 0; i < 2; i++) {
    const config = loadConfig({ NODE_ENV: 'test', STORAGE_JWT_SECRET: t.secret, STORAGE_RATE_LIMIT_PER_SECOND: '0', LOG_LEVEL: 'silent', DATABASE_URL: t.database.url!, ...CACHE_ENV });
    const database = await openDatabase({ databaseUrl: t.database.url, pgliteDir: '', db: config.db });
    const app = createApp({ config, database, logger: createLogger('silent'), jwtSecret: t.secret });
    others.push(app);
    urls.push(await app.listen(0, '127.0.0.1'));
  }
  // Every instance's LISTEN connection is in place (until then no instance caches installs).
  await listeners(3);
});

afterAll(async () => {
  for (const app of others) await app.close(2000);
  await t?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function post(url: string, query: string, variables: Record<string, unknown>, token: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query, variables }) });
  return { status: res.status, body: await res.json() };
}

/** A write through one instance: 'ok', or the error code it was refused with. */
async function write(url: string, token: string, namespace = 'notes'): Promise<string> {
  const res = await post(url, PUT, { input: { namespace, key: 'k', value: Date.now() } }, token);
  if (res.body.data?.putRecord?.__typename === 'PutRecordSuccess') return 'ok';
  return res.body.errors?.[0]?.extensions?.code ?? JSON.stringify(res.body);
}

/** An upsertInstall through instance `url` (as the tenant's admin), everything else as created. */
async function upsert(url: string, install: TestInstall, change: Record<string, unknown>): Promise<void> {
  const input = { id: install.id, extensionId: 'test-extension', enabled: true, canRead: true, canWrite: true, namespaces: null, ...change };
  const res = await post(url, UPSERT, { input }, await t.adminToken());
  expect(res.body.errors, JSON.stringify(res.body)).toBeUndefined();
}

/** Polls every instance until a write there answers `expected`; each must within BOUND_MS of `since`. */
async function honouredEverywhere(token: string, expected: string, since: number, namespace?: string): Promise<void> {
  await Promise.all(
    urls.map(async (url, i) => {
      let got = await write(url, token, namespace);
      while (got !== expected && performance.now() - since < BOUND_MS) {
        await sleep(20);
        got = await write(url, token, namespace);
      }
      expect(got, `instance ${'ABC'[i]} after ${Math.round(performance.now() - since)} ms`).toBe(expected);
    }),
  );
}

/** The database's LISTEN connections (one per instance): waits until there are `n` of them. */
async function listeners(n: number, timeoutMs = 15_000): Promise<number[]> {
  // Through the server's own database: the test's may refuse new connections.
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const { rows } = await c.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN %'`, [dbName()]);
      if (rows.length === n || performance.now() > deadline) {
        expect(rows.length).toBe(n);
        return rows.map((r) => r.pid);
      }
      await sleep(25);
    }
  } finally {
    await c.end();
  }
}

const dbName = () => new URL(t.database.url!).pathname.slice(1);

/** A fresh install whose token every instance has used (each instance's cache holds it). */
async function warmInstall(): Promise<{ install: TestInstall; token: string }> {
  const install = await t.createInstall();
  const token = await install.token();
  for (const url of urls) expect(await write(url, token)).toBe('ok');
  return { install, token };
}

describe.runIf(backend === 'postgres')('three gateway instances on one database, install cache of 60 s', () => {
  it('the cache is in use: a change behind the gateway’s back (no notification) is not seen', async () => {
    const { install, token } = await warmInstall();
    const c = new pg.Client({ connectionString: t.database.url });
    await c.connect();
    try {
      await c.query('UPDATE ext_storage_installs SET can_write = false WHERE id = $1', [install.id]);
      await sleep(300);
      // Without a notification, every instance still serves its cached copy.
      for (const url of urls) expect(await write(url, token)).toBe('ok');
    } finally {
      await c.end();
    }
    // The same change through upsertInstall is honoured everywhere.
    const since = performance.now();
    await upsert(urls[0]!, install, { canWrite: false });
    await honouredEverywhere(token, 'FORBIDDEN', since);
  });

  it('revoking write through A is refused by B and C within 1 s, and granting it back is honoured too', async () => {
    const { install, token } = await warmInstall();
    let since = performance.now();
    await upsert(urls[0]!, install, { canWrite: false });
    await honouredEverywhere(token, 'FORBIDDEN', since);
    since = performance.now();
    // Through another instance this time.
    await upsert(urls[2]!, install, { canWrite: true });
    await honouredEverywhere(token, 'ok', since);
  });

  it('disabling the install through A is refused by B and C within 1 s', async () => {
    const { install, token } = await warmInstall();
    const since = performance.now();
    await upsert(urls[0]!, install, { enabled: false });
    await honouredEverywhere(token, 'FORBIDDEN', since);
    // Refused before execution (403), on every instance.
    for (const url of urls) expect((await post(url, PUT, { input: { namespace: 'notes', key: 'k', value: 1 } }, token)).status).toBe(403);
  });

  it('restricting the namespaces through B is refused by A and C within 1 s', async () => {
    const { install, token } = await warmInstall();
    for (const url of urls) expect(await write(url, token, 'kept')).toBe('ok');
    const since = performance.now();
    await upsert(urls[1]!, install, { namespaces: ['kept'] });
    await honouredEverywhere(token, 'FORBIDDEN', since, 'notes');
    for (const url of urls) expect(await write(url, token, 'kept')).toBe('ok');
  });

  it('a change made while the LISTEN connections are down is honoured: not cached meanwhile, dropped on reconnect', async () => {
    const { install, token } = await warmInstall();
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      // No new connection to the database (the instances' pools keep their open ones): the LISTEN
      // connections cannot come back until this is undone.
      await admin.query(`ALTER DATABASE "${dbName()}" ALLOW_CONNECTIONS false`);
      const pids = await listeners(3);
      await admin.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [pids]);
      await listeners(0);
      // Nobody hears this one.
      await upsert(urls[0]!, install, { canWrite: false });
      // While their LISTEN connection is down the instances read installs from the database.
      for (const url of urls) expect(await write(url, token)).toBe('FORBIDDEN');
      await sleep(200);
    } finally {
      await admin.query(`ALTER DATABASE "${dbName()}" ALLOW_CONNECTIONS true`);
      await admin.end();
    }
    await listeners(3);
    for (const url of urls) expect(await write(url, token)).toBe('FORBIDDEN');
    // Notifications flow again on the new connections.
    const since = performance.now();
    await upsert(urls[1]!, install, { canWrite: true });
    await honouredEverywhere(token, 'ok', since);
  });

  it('subscriptions deliver across instances: a write through A reaches subscribers on B and C within 1 s', async () => {
    // (test/feed/subscriptions.test.ts covers two instances in depth.)
    const { token } = await warmInstall();
    const subs = await Promise.all(urls.slice(1).map((url) => subscribe(url, `subscription { changes { key } }`, {}, token)));
    try {
      await sleep(300);
      for (let i = 0; i < 3; i++) {
        const started = performance.now();
        const res = await post(urls[0]!, PUT, { input: { namespace: 'live', key: `k${i}`, value: i } }, token);
        expect(res.body.data.putRecord.__typename).toBe('PutRecordSuccess');
        for (const sub of subs) {
          const [e] = await sub.take(1, 5000);
          expect(e!.data.changes.key).toBe(`k${i}`);
        }
        expect(performance.now() - started).toBeLessThan(BOUND_MS);
      }
    } finally {
      for (const sub of subs) sub.close();
    }
  });
});

describe('one instance (every backend), install cache of 60 s', () => {
  it('an upsertInstall through the instance is honoured by it at once', async () => {
    const { install, token } = await warmInstall();
    await upsert(urls[0]!, install, { canWrite: false });
    expect(await write(urls[0]!, token)).toBe('FORBIDDEN');
    await upsert(urls[0]!, install, { enabled: false });
    expect(await write(urls[0]!, token)).toBe('FORBIDDEN');
    await upsert(urls[0]!, install, { namespaces: ['kept'] });
    expect(await write(urls[0]!, token)).toBe('FORBIDDEN');
    expect(await write(urls[0]!, token, 'kept')).toBe('ok');
  });
});
