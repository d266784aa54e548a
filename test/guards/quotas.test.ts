import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { PUT, UPSERT_INSTALL, dataOf, extension, sleep, storedBytes, type Extension, type Result } from './support.js';

let t: TestApp;
beforeAll(async () => {
  // A 1 s minimum TTL lets the expiry tests wait about a second instead of a minute.
  t = await startTestApp({ STORAGE_MIN_TTL_SECONDS: '1' });
});
afterAll(async () => {
  await t?.close();
});

/** Rows physically stored for an install (expired ones included), read straight from the database. */
async function storedRows(installId: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM ext_storage_records
     WHERE tenant_id = ${t.tenantId}::uuid AND install_id = ${installId}::uuid`.execute(t.database.handle.db);
  return Number(rows[0]!.n);
}

/** The sum of stored sizes of every live record of a namespace, computed from what reads return. */
async function sizeOfNamespace(ext: Extension, namespace: string): Promise<number> {
  return (await ext.all(namespace)).reduce((sum, r) => sum + storedBytes(r.value, r.metadata), 0);
}

async function adminUpsert(installId: string, quota?: Record<string, number> | null) {
  const input: Record<string, unknown> = { id: installId, extensionId: 'test-extension', enabled: true, canRead: true, canWrite: true };
  if (quota !== undefined) input.quota = quota;
  return dataOf(await t.gql(UPSERT_INSTALL, { input }, { token: await t.adminToken() })).upsertInstall;
}

describe('keys per namespace under racing creates', () => {
  it('lets exactly 20 of 60 concurrent creates into a namespace capped at 20 keys', async () => {
    const ext = await extension(t, { quota: { maxKeysPerNamespace: 20 } });
    const keys = Array.from({ length: 60 }, (_, i) => `race-${i}`);
    const responses = await Promise.all(keys.map((key, i) => ext.gql(PUT, { input: { namespace: 'race', key, value: { i } } })));
    const results: Result[] = responses.map((r) => dataOf(r).putRecord);

    const won = keys.filter((_, i) => results[i]!.__typename === 'PutRecordSuccess');
    const refused = results.filter((r) => r.__typename !== 'PutRecordSuccess');
    expect(won).toHaveLength(20);
    expect(refused).toHaveLength(40);
    for (const r of refused) {
      expect(r).toEqual({ __typename: 'QuotaExceeded', code: 'QUOTA_EXCEEDED', quota: 'keysPerNamespace', allowed: 20, used: 20, itemIndex: null });
    }

    const usage = await ext.usage('race');
    expect(usage.usage.keys).toBe(20);
    expect(usage.namespace.keyCount).toBe(20);
    const stored = await ext.records('race', keys);
    expect(keys.filter((_, i) => stored[i] !== null)).toEqual(won);
    expect(stored.filter((r) => r !== null).every((r) => r!.revision === 1)).toBe(true);
  });
});

describe('bytes per install under racing writes', () => {
  it('never lets 12 concurrent 30 KB writes push usage past a 200 KB quota, and usage equals what is stored', async () => {
    const maxBytes = 204_800;
    const ext = await extension(t, { quota: { maxBytes } });
    const inputs = Array.from({ length: 12 }, (_, i) => ({
      namespace: 'blobs',
      key: `blob-${i}`,
      value: { blob: 'x'.repeat(30_000 - 7 * i), i },
      metadata: { writer: i },
    }));
    const sizes = inputs.map((input) => storedBytes(input.value, input.metadata));
    // Usage is read while the writers race, too: it must never show more than the quota.
    const [writes, readings] = await Promise.all([
      Promise.all(inputs.map((input) => ext.gql(PUT, { input }))),
      Promise.all(inputs.map(() => ext.usage('blobs'))),
    ]);
    const results: Result[] = writes.map((r) => dataOf(r).putRecord);
    for (const reading of readings) expect(reading.usage.bytes).toBeLessThanOrEqual(maxBytes);

    const wonSizes = sizes.filter((_, i) => results[i]!.__typename === 'PutRecordSuccess');
    // Every size lies between 29,900 and 30,100 bytes: any 6 fit in 204,800, no 7 do.
    expect(wonSizes).toHaveLength(6);
    results.forEach((r, i) => {
      if (r.__typename === 'PutRecordSuccess') return;
      expect(r).toMatchObject({ __typename: 'QuotaExceeded', quota: 'bytes', allowed: maxBytes, itemIndex: null });
      expect(r.used).toBeLessThanOrEqual(maxBytes);
      expect(r.used + sizes[i]!).toBeGreaterThan(maxBytes);
    });

    const usage = await ext.usage('blobs');
    const stored = await sizeOfNamespace(ext, 'blobs');
    expect(usage.usage.bytes).toBeLessThanOrEqual(maxBytes);
    expect(usage.usage.bytes).toBe(stored);
    expect(usage.namespace.bytesUsed).toBe(stored);
    expect(stored).toBe(wonSizes.reduce((a, b) => a + b, 0));
  });
});

describe('namespaces per install', () => {
  it('refuses a third namespace when the cap is 2, and frees the slot when a namespace empties', async () => {
    const ext = await extension(t, { quota: { maxNamespaces: 2 } });
    expect((await ext.put({ namespace: 'one', key: 'k', value: 1 })).__typename).toBe('PutRecordSuccess');
    expect((await ext.put({ namespace: 'two', key: 'k', value: 2 })).__typename).toBe('PutRecordSuccess');

    const third = await ext.put({ namespace: 'three', key: 'k', value: 3 });
    expect(third).toEqual({ __typename: 'QuotaExceeded', code: 'QUOTA_EXCEEDED', quota: 'namespaces', allowed: 2, used: 2, itemIndex: null });
    expect(await ext.records('three', ['k'])).toEqual([null]);
    expect((await ext.put({ namespace: 'one', key: 'more', value: 4 })).__typename).toBe('PutRecordSuccess');

    expect((await ext.del('two', 'k')).deleted).toBe(true);
    expect((await ext.usage('one')).usage.namespaces).toBe(1);
    expect((await ext.put({ namespace: 'three', key: 'k', value: 3 })).__typename).toBe('PutRecordSuccess');
    expect((await ext.usage('three')).usage.namespaces).toBe(2);
  });
});

describe('updates and deletes at a quota', () => {
  it('accepts an update of an existing key at the key cap: it is not a new key', async () => {
    const ext = await extension(t, { quota: { maxKeysPerNamespace: 3 } });
    for (const key of ['a', 'b', 'c']) expect((await ext.put({ namespace: 'full', key, value: key })).__typename).toBe('PutRecordSuccess');
    expect((await ext.put({ namespace: 'full', key: 'd', value: 'd' })).quota).toBe('keysPerNamespace');

    const update = await ext.put({ namespace: 'full', key: 'b', value: { bigger: 'b'.repeat(100) } });
    expect(update.__typename).toBe('PutRecordSuccess');
    expect(update.record.revision).toBe(2);
    expect((await ext.usage('full')).usage.keys).toBe(3);
  });

  it('gives a deleted record\'s key and bytes back', async () => {
    const ext = await extension(t, { quota: { maxKeysPerNamespace: 3, maxBytes: 150 } });
    const value = 'v'.repeat(40);
    for (const key of ['a', 'b', 'c']) expect((await ext.put({ namespace: 'full', key, value })).__typename).toBe('PutRecordSuccess');
    const before = await ext.usage('full');
    expect(before.usage).toEqual({ namespaces: 1, keys: 3, bytes: 3 * storedBytes(value) });
    expect((await ext.put({ namespace: 'full', key: 'd', value: 1 })).quota).toBe('keysPerNamespace');

    expect((await ext.del('full', 'a')).deleted).toBe(true);
    const after = await ext.usage('full');
    expect(after.usage).toEqual({ namespaces: 1, keys: 2, bytes: 2 * storedBytes(value) });
    expect(after.namespace).toEqual({ keyCount: 2, bytesUsed: 2 * storedBytes(value) });

    expect((await ext.put({ namespace: 'full', key: 'd', value })).__typename).toBe('PutRecordSuccess');
    // 3 × 44 bytes stored; one more byte-heavy update would pass 150.
    const grow = await ext.put({ namespace: 'full', key: 'd', value: 'v'.repeat(70) });
    expect(grow).toMatchObject({ __typename: 'QuotaExceeded', quota: 'bytes', allowed: 150, used: 3 * storedBytes(value) });
  });
});

describe('expired records give quota back', () => {
  it('counts expired records nowhere, even before any sweep, and lets a blocked write through', async () => {
    const ext = await extension(t, { quota: { maxKeysPerNamespace: 3 } });
    for (const key of ['a', 'b', 'c']) {
      expect((await ext.put({ namespace: 'temp', key, value: key, ttlSeconds: 1 })).__typename).toBe('PutRecordSuccess');
    }
    const blocked = await ext.put({ namespace: 'temp', key: 'd', value: 'd' });
    expect(blocked).toMatchObject({ __typename: 'QuotaExceeded', quota: 'keysPerNamespace', used: 3 });

    await sleep(1300);
    // Nothing has swept yet: the rows are still there, but usage no longer counts them.
    expect(await storedRows(ext.install.id)).toBe(3);
    const usage = await ext.usage('temp');
    expect(usage.usage).toEqual({ namespaces: 0, keys: 0, bytes: 0 });
    expect(usage.namespace).toEqual({ keyCount: 0, bytesUsed: 0 });

    const retried = await ext.put({ namespace: 'temp', key: 'd', value: 'd' });
    expect(retried.__typename).toBe('PutRecordSuccess');
    for (const key of ['e', 'f']) expect((await ext.put({ namespace: 'temp', key, value: key })).__typename).toBe('PutRecordSuccess');
    expect((await ext.put({ namespace: 'temp', key: 'g', value: 'g' })).quota).toBe('keysPerNamespace');
    // The writes swept the expired rows in passing.
    expect(await storedRows(ext.install.id)).toBe(3);
    expect((await ext.usage('temp')).usage.keys).toBe(3);
  });

  it('gives expired bytes back to the byte quota', async () => {
    const ext = await extension(t, { quota: { maxBytes: 100 } });
    const value = 'w'.repeat(60);
    expect((await ext.put({ namespace: 'temp', key: 'old', value, ttlSeconds: 1 })).__typename).toBe('PutRecordSuccess');
    expect((await ext.put({ namespace: 'temp', key: 'new', value })).quota).toBe('bytes');
    await sleep(1300);
    expect((await ext.usage('temp')).usage.bytes).toBe(0);
    expect((await ext.put({ namespace: 'temp', key: 'new', value })).__typename).toBe('PutRecordSuccess');
    expect((await ext.usage('temp')).usage.bytes).toBe(storedBytes(value));
  });
});

describe('bulk writes against quotas', () => {
  it('writes nothing when the batch passes the key cap, and names the first item that does not fit', async () => {
    const ext = await extension(t, { quota: { maxKeysPerNamespace: 5 } });
    for (const key of ['k0', 'k1', 'k2']) expect((await ext.put({ namespace: 'bulk', key, value: key })).__typename).toBe('PutRecordSuccess');
    const before = await ext.usage('bulk');

    // k1 exists (no new key); n0 → 4 keys, n1 → 5, n2 → 6: item 3 does not fit.
    const result = await ext.bulk('bulk', [
      { key: 'k1', value: 'updated' },
      { key: 'n0', value: 0 },
      { key: 'n1', value: 1 },
      { key: 'n2', value: 2 },
    ]);
    expect(result).toEqual({ __typename: 'QuotaExceeded', code: 'QUOTA_EXCEEDED', quota: 'keysPerNamespace', allowed: 5, used: 3, itemIndex: 3 });
    const stored = await ext.records('bulk', ['k1', 'n0', 'n1', 'n2']);
    expect(stored.map((r) => r && { value: r.value, revision: r.revision })).toEqual([{ value: 'k1', revision: 1 }, null, null, null]);
    expect(await ext.usage('bulk')).toEqual(before);

    const fits = await ext.bulk('bulk', [{ key: 'k1', value: 'updated' }, { key: 'n0', value: 0 }, { key: 'n1', value: 1 }]);
    expect(fits.__typename).toBe('BulkPutRecordsSuccess');
    expect((await ext.usage('bulk')).usage.keys).toBe(5);
  });

  it('writes nothing when the batch passes the byte quota, and names the first item that does not fit', async () => {
    const value = 'b'.repeat(48);
    const size = storedBytes(value);
    const ext = await extension(t, { quota: { maxBytes: 4 * size - 1 } });
    expect((await ext.put({ namespace: 'bulk', key: 'first', value })).__typename).toBe('PutRecordSuccess');

    const result = await ext.bulk('bulk', ['x', 'y', 'z'].map((key) => ({ key, value })));
    expect(result).toEqual({ __typename: 'QuotaExceeded', code: 'QUOTA_EXCEEDED', quota: 'bytes', allowed: 4 * size - 1, used: size, itemIndex: 2 });
    expect(await ext.records('bulk', ['x', 'y', 'z'])).toEqual([null, null, null]);
    expect((await ext.usage('bulk')).usage).toEqual({ namespaces: 1, keys: 1, bytes: size });
  });
});

describe('lowering a quota below current usage', () => {
  it('keeps the data, refuses growth, and allows shrinking updates and deletes', async () => {
    const ext = await extension(t);
    const keys = ['a', 'b', 'c', 'd', 'e', 'f'];
    for (const key of keys) expect((await ext.put({ namespace: 'low', key, value: { text: 't'.repeat(30) } })).__typename).toBe('PutRecordSuccess');
    const used = (await ext.usage('low')).usage;
    expect(used.keys).toBe(6);

    const install = await adminUpsert(ext.install.id, { maxKeysPerNamespace: 3, maxBytes: used.bytes - 10 });
    expect(install.quota).toMatchObject({ maxKeysPerNamespace: 3, maxBytes: used.bytes - 10 });

    expect((await ext.records('low', keys)).every((r) => r !== null)).toBe(true);
    expect((await ext.usage('low')).usage).toEqual(used);

    const newKey = await ext.put({ namespace: 'low', key: 'g', value: 1 });
    expect(newKey).toEqual({ __typename: 'QuotaExceeded', code: 'QUOTA_EXCEEDED', quota: 'keysPerNamespace', allowed: 3, used: 6, itemIndex: null });
    const growing = await ext.put({ namespace: 'low', key: 'a', value: { text: 't'.repeat(31) } });
    expect(growing).toEqual({ __typename: 'QuotaExceeded', code: 'QUOTA_EXCEEDED', quota: 'bytes', allowed: used.bytes - 10, used: used.bytes, itemIndex: null });

    const shrinking = await ext.put({ namespace: 'low', key: 'a', value: { text: 't' } });
    expect(shrinking.__typename).toBe('PutRecordSuccess');
    expect((await ext.del('low', 'b')).deleted).toBe(true);
    const after = (await ext.usage('low')).usage;
    expect(after.keys).toBe(5);
    expect(after.bytes).toBe(await sizeOfNamespace(ext, 'low'));
    expect((await ext.put({ namespace: 'low', key: 'g', value: 1 })).quota).toBe('keysPerNamespace');
  });
});

describe('quota overrides through upsertInstall', () => {
  it('shows overrides in Install.quota, keeps them when quota is omitted, and resets them with quota: null', async () => {
    const ext = await extension(t);
    const defaults = t.config.quotaDefaults;
    const quotaOf = async () => dataOf(await ext.gql('{ install { quota { maxNamespaces maxKeysPerNamespace maxBytes maxValueBytes maxMetadataBytes } } }')).install.quota;
    expect(await quotaOf()).toEqual(defaults);

    const set = await adminUpsert(ext.install.id, { maxKeysPerNamespace: 7, maxBytes: 1000 });
    expect(set.quota).toEqual({ ...defaults, maxKeysPerNamespace: 7, maxBytes: 1000 });
    expect(await quotaOf()).toEqual({ ...defaults, maxKeysPerNamespace: 7, maxBytes: 1000 });

    const kept = await adminUpsert(ext.install.id);
    expect(kept.quota).toEqual({ ...defaults, maxKeysPerNamespace: 7, maxBytes: 1000 });
    const big = await ext.put({ namespace: 'q', key: 'big', value: 'x'.repeat(1000) });
    expect(big).toMatchObject({ __typename: 'QuotaExceeded', quota: 'bytes', allowed: 1000 });

    const replaced = await adminUpsert(ext.install.id, { maxNamespaces: 4 });
    expect(replaced.quota).toEqual({ ...defaults, maxNamespaces: 4 });

    const reset = await adminUpsert(ext.install.id, null);
    expect(reset.quota).toEqual(defaults);
    expect(await quotaOf()).toEqual(defaults);
    expect((await ext.put({ namespace: 'q', key: 'big', value: 'x'.repeat(1000) })).__typename).toBe('PutRecordSuccess');
  });
});
