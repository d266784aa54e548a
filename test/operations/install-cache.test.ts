/**
 * The per-process install cache (STORAGE_INSTALL_CACHE_MS): two Storage instances on one database
 * stand for two gateway instances.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { LogEvent } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { Storage } from '../../src/storage/storage.js';
import { openTestDatabase, type TestDatabase } from '../support/db.js';

const TTL = 300;
const tenantId = '5b0e3c9a-7d21-4c5e-9f3a-2b8d6e1f4a70';
const admin = { principal: { kind: 'admin' as const, tenantId, actor: 'cache-test' }, requestId: null };

let t: TestDatabase;
const lookups: string[] = [];
beforeAll(async () => {
  t = await openTestDatabase([(e: LogEvent) => {
    if (e.query.sql.includes('ext_storage_installs') && /^\s*select/i.test(e.query.sql)) lookups.push(e.query.sql);
  }]);
});
afterAll(async () => {
  await t?.dispose();
});

const instance = () => new Storage(t.handle.db, { ...loadConfig({ NODE_ENV: 'test' }), installCacheMs: TTL });
const register = (s: Storage, id: string, enabled: boolean) => s.upsertInstall(admin, { id, extensionId: 'x', enabled, canRead: true, canWrite: true });

describe('the install cache', () => {
  it('another instance sees a change no later than installCacheMs after it commits', async () => {
    const a = instance();
    const b = instance();
    const id = 'a1b2c3d4-0000-4000-8000-000000000001';
    await register(a, id, true);
    expect((await b.loadInstall(null, id))?.enabled).toBe(true);
    await register(a, id, false);
    expect((await a.loadInstall(null, id))?.enabled).toBe(false); // the instance that wrote: at once
    await sleep(TTL + 20);
    expect((await b.loadInstall(null, id))?.enabled).toBe(false);
  });

  it('re-reads a hot entry in the background before it expires, so a later request does not wait for a lookup', async () => {
    const a = instance();
    const id = 'a1b2c3d4-0000-4000-8000-000000000002';
    await register(instance(), id, true);
    await a.loadInstall(null, id); // cached at t0
    await sleep(TTL * 0.8);
    lookups.length = 0;
    expect((await a.loadInstall(null, id))?.enabled).toBe(true); // served from cache, refresh started
    await sleep(TTL * 0.3); // t0 + 1.1 TTL: the first entry would have expired
    const before = lookups.length;
    expect(before).toBe(1); // the background refresh
    expect((await a.loadInstall(null, id))?.enabled).toBe(true);
    expect(lookups.length).toBe(before); // a hit on the refreshed entry: no lookup
  });

  // Usually the refresh finishes before the upsert commits; when it finishes after, the upsert's
  // newer stamp makes the cache drop it (readInstallIntoCache). Either way the writer sees its write.
  it('an upsert through this instance wins over a background refresh that started before it', async () => {
    const a = instance();
    const id = 'a1b2c3d4-0000-4000-8000-000000000003';
    await register(a, id, true);
    await a.loadInstall(null, id);
    await sleep(TTL * 0.8);
    await a.loadInstall(null, id); // starts a background refresh reading enabled = true
    await register(a, id, false);
    await sleep(50); // the refresh has finished by now
    expect((await a.loadInstall(null, id))?.enabled).toBe(false);
  });
});
