/**
 * The write path's invariants (I1–I4 in migrations/005_write_function.ts, ext_storage_write_v1)
 * and the bugs a review of the earlier write path found (issue 10), each as the behaviour a caller
 * sees. Each test here failed on the code before the write function.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backend } from '../support/db.js';
import { startTestApp, type TestApp, type TestInstall } from '../support/app.js';
import { auditEvents, dataOf, extensionClient, sleep } from './client.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ STORAGE_MIN_TTL_SECONDS: '1' });
});
afterAll(async () => {
  await t?.close();
});

async function runner(install: TestInstall, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${t.url}/api/internal/ext-storage/install/${install.id}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-runner-auth': t.runnerToken },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function rowCount(table: 'ext_storage_namespaces' | 'ext_storage_expiries' | 'ext_storage_records', install: TestInstall): Promise<number> {
  const rows = await t.database.handle.db
    .selectFrom(table)
    .select('install_id')
    .where('tenant_id', '=', install.tenantId)
    .where('install_id', '=', install.id)
    .execute();
  return rows.length;
}

describe('an unknown schemaVersion is a schema-stage error', () => {
  it('an empty key with schemaVersion 0 is LimitExceeded keyLength', async () => {
    const c = await extensionClient(t);
    const r = await c.put({ namespace: 'ns', key: '', value: 1, schemaVersion: 0 });
    expect(r).toMatchObject({ __typename: 'LimitExceeded', limit: 'keyLength' });
  });

  it('a stale ifRevision with schemaVersion 0 or -1 is RevisionMismatch', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'k', value: 1 });
    for (const schemaVersion of [0, -1]) {
      const r = await c.put({ namespace: 'ns', key: 'k', value: 2, ifRevision: 7, schemaVersion });
      expect(r).toMatchObject({ __typename: 'RevisionMismatch', currentRevision: 1 });
    }
  });

  it('schemaVersion 0 on an otherwise good write is ValidationFailed, and writes nothing', async () => {
    const c = await extensionClient(t);
    const r = await c.put({ namespace: 'ns', key: 'fresh', value: 1, schemaVersion: 0 });
    expect(r).toMatchObject({ __typename: 'ValidationFailed' });
    expect(dataOf(await c.gql('{ record(namespace: "ns", key: "fresh") { key } }')).record).toBeNull();
  });
});

describe('numbers beyond 32 bits on the Runner REST door', () => {
  it('ifRevision 3000000000 is a revision mismatch (409), on a new namespace and on an existing record', async () => {
    const install = await t.createInstall();
    const fresh = await runner(install, { operation: 'put', namespace: 'new-ns', key: 'k', value: 1, ifRevision: 3_000_000_000 });
    expect(fresh.status, JSON.stringify(fresh.body)).toBe(409);
    expect(fresh.body.code).toBe('REVISION_MISMATCH');
    await runner(install, { operation: 'put', namespace: 'ns', key: 'k', value: 1 });
    for (const ifRevision of [3_000_000_000, 2_147_483_648, Number.MAX_SAFE_INTEGER]) {
      const r = await runner(install, { operation: 'put', namespace: 'ns', key: 'k', value: 2, ifRevision });
      expect(r.status, JSON.stringify(r.body)).toBe(409);
    }
    const del = await runner(install, { operation: 'delete', namespace: 'ns', key: 'k', ifRevision: 3_000_000_000 });
    expect(del.status, JSON.stringify(del.body)).toBe(409);
    const bulk = await runner(install, { operation: 'bulkPut', namespace: 'ns', items: [{ key: 'k', value: 3, ifRevision: 3_000_000_000 }] });
    expect(bulk.status, JSON.stringify(bulk.body)).toBe(409);
  });

  it('schemaVersion 3000000000 is an unknown schema version (400 VALIDATION_FAILED)', async () => {
    const install = await t.createInstall();
    for (const schemaVersion of [3_000_000_000, 2_147_483_648, -3_000_000_000]) {
      const r = await runner(install, { operation: 'put', namespace: 'ns', key: 'k', value: 1, schemaVersion });
      expect(r.status, JSON.stringify(r.body)).toBe(400);
      expect(r.body.code).toBe('VALIDATION_FAILED');
    }
  });

  it('quotas beyond 32 bits are honoured, not an SQL error', async () => {
    const install = await t.createInstall({ quota: { maxKeysPerNamespace: 5_000_000_000, maxNamespaces: 4_000_000_000, maxBytes: 9_000_000_000_000 } });
    const r = await runner(install, { operation: 'put', namespace: 'ns', key: 'k', value: 1 });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
  });
});

describe('I1: a write decides under its install lock', () => {
  it('at a quota edge, of 30 racing creates exactly the quota gets in, and usage equals what is stored', async () => {
    const c = await extensionClient(t, { quota: { maxKeysPerNamespace: 7 } });
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => c.put({ namespace: 'edge', key: `k${i}`, value: i })));
    expect(results.filter((r) => r.__typename === 'PutRecordSuccess')).toHaveLength(7);
    expect(results.filter((r) => r.__typename === 'QuotaExceeded')).toHaveLength(23);
    expect((await c.usage('edge')).usage.keys).toBe(7);
  });
});

describe('I2: "now" is taken after the lock is held', () => {
  // PGlite has one connection: nothing else can hold the lock while a write waits.
  it.skipIf(backend !== 'postgres')('a record that expired while the write waited for the lock is treated as gone', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'brief', value: 'old', ttlSeconds: 1 });
    await c.put({ namespace: 'ns', key: 'doomed', value: 'old', ttlSeconds: 1 });
    const holder = new pg.Client({ connectionString: t.database.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM ext_storage_install_locks WHERE tenant_id = $1 AND install_id = $2 FOR UPDATE', [c.install.tenantId, c.install.id]);
      // Both writes start while the records are live, then wait for the lock until after they expired.
      const create = c.put({ namespace: 'ns', key: 'brief', value: 'new', ifRevision: 0 });
      const del = c.gql('mutation { deleteRecord(input: {namespace: "ns", key: "doomed"}) { ... on DeleteRecordSuccess { deleted } } }');
      await sleep(1500);
      await holder.query('COMMIT');
      expect(await create).toMatchObject({ __typename: 'PutRecordSuccess', record: { revision: 1, value: 'new' } });
      expect(dataOf(await del).deleteRecord.deleted).toBe(false);
    } finally {
      await holder.end();
    }
  });

  it('a new record is never born expired: its TTL counts from after the lock', async () => {
    const c = await extensionClient(t);
    const r = await c.put({ namespace: 'ns', key: 'k', value: 1, ttlSeconds: 2 });
    expect(r.__typename).toBe('PutRecordSuccess');
    const { ttlExpiresAt, updatedAt } = r.record;
    expect(Date.parse(ttlExpiresAt) - Date.parse(updatedAt)).toBe(2000);
  });
});

describe('I3: nothing is modified until every check passed', () => {
  it('a refused write does not sweep: the expired record and its usage stay untouched, no ttlExpire event', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'stays', value: 1 });
    await c.put({ namespace: 'ns', key: 'expired', value: 'x', ttlSeconds: 1 });
    await sleep(1300);
    const r = await c.put({ namespace: 'ns', key: 'stays', value: 2, ifRevision: 5 });
    expect(r.__typename).toBe('RevisionMismatch');
    expect(await rowCount('ext_storage_records', c.install)).toBe(2);
    expect((await auditEvents(t, c.install)).map((e) => e.operation)).not.toContain('ttlExpire');
    const ok = await c.put({ namespace: 'ns', key: 'stays', value: 2, ifRevision: 1 });
    expect(ok.__typename).toBe('PutRecordSuccess');
    expect(await rowCount('ext_storage_records', c.install)).toBe(1);
  });
});

describe('I4: counters and expiry buckets move with every stored change; empty rows go', () => {
  it('a namespace emptied by deletes leaves no counter row and no expiry row', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'tmp', key: 'a', value: 1, ttlSeconds: 60 });
    await c.put({ namespace: 'tmp', key: 'b', value: 1 });
    expect(await rowCount('ext_storage_namespaces', c.install)).toBe(1);
    expect(await rowCount('ext_storage_expiries', c.install)).toBe(2); // its minute and its second
    await c.put({ namespace: 'tmp', key: 'a', value: 2, ttlSeconds: 600 });
    await c.put({ namespace: 'tmp', key: 'a', value: 3 });
    expect(await rowCount('ext_storage_expiries', c.install)).toBe(0);
    await c.del({ namespace: 'tmp', key: 'a' });
    await c.del({ namespace: 'tmp', key: 'b' });
    expect(await rowCount('ext_storage_namespaces', c.install)).toBe(0);
    await t.database.assertCountersConsistent();
  });

  it('usage excludes records expired in earlier minutes, earlier seconds and the current second alike', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'live', value: 'x' });
    await c.put({ namespace: 'ns', key: 'short', value: 'x', ttlSeconds: 1 });
    // Moved an hour back directly, as if it had expired long ago (its buckets move with it).
    await t.database.handle.db
      .updateTable('ext_storage_records')
      .set({ ttl_expires_at: new Date(Date.now() - 3_600_000) })
      .where('tenant_id', '=', c.install.tenantId)
      .where('install_id', '=', c.install.id)
      .where('key', '=', 'short')
      .execute();
    const past = (await t.database.handle.db
      .selectFrom('ext_storage_records')
      .select('ttl_expires_at')
      .where('tenant_id', '=', c.install.tenantId)
      .where('install_id', '=', c.install.id)
      .where('key', '=', 'short')
      .executeTakeFirstOrThrow()).ttl_expires_at!.getTime();
    for (const width of [60, 1]) {
      await t.database.handle.db
        .updateTable('ext_storage_expiries')
        .set({ bucket: new Date(Math.floor(past / (width * 1000)) * width * 1000) })
        .where('tenant_id', '=', c.install.tenantId)
        .where('install_id', '=', c.install.id)
        .where('width', '=', width)
        .execute();
    }
    await c.put({ namespace: 'ns', key: 'now', value: 'x', ttlSeconds: 1 });
    await sleep(1300);
    expect((await c.usage('ns')).usage).toMatchObject({ namespaces: 1, keys: 1 });
    await t.database.assertCountersConsistent();
  });
});
