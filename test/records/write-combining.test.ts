/**
 * The per-install write combiner (src/storage/write-combiner.ts, migrations/006_write_batch.ts):
 * concurrent writes of one install share calls and commits, and each still gets its own answer.
 * The race tests in revisions.test.ts, ttl.test.ts and test/properties run through it as well.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WriteCombiner } from '../../src/storage/write-combiner.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { backend } from '../support/db.js';
import { delta, scrape } from '../observability/prometheus.js';
import { extensionClient, type Result } from './client.js';

const statements: string[] = [];
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({}, [(e) => statements.push(e.query.sql)]);
});
afterAll(async () => {
  await t?.close();
});

function writeCalls(since: number): { single: number; batch: number } {
  const sqls = statements.slice(since);
  return {
    single: sqls.filter((s) => s.includes('ext_storage_write_v1(')).length,
    batch: sqls.filter((s) => s.includes('ext_storage_write_batch_v1(')).length,
  };
}

describe('concurrent writes of one install', () => {
  it('share calls: 40 racing puts take fewer calls than writes, each answered with its own revision and value', async () => {
    const c = await extensionClient(t);
    const since = statements.length;
    const before = await scrape(t.url);
    const results = await Promise.all(Array.from({ length: 40 }, (_, writer) => c.put({ namespace: 'shared', key: 'k', value: { writer } })));
    const after = await scrape(t.url);
    expect(results.every((r) => r.__typename === 'PutRecordSuccess')).toBe(true);
    expect(results.map((r) => r.record.revision as number).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    results.forEach((r: Result, writer) => expect(r.record.value).toEqual({ writer }));
    // PGlite runs a call on the event loop's own thread: no other request reaches the combiner while
    // it runs, so there is nothing to combine (the combiner's own tests below batch on both backends).
    if (backend === 'postgres') {
      const calls = writeCalls(since);
      expect(calls.batch, 'some writes went together').toBeGreaterThan(0);
      expect(calls.single + calls.batch, 'fewer calls than writes').toBeLessThan(40);
      // The metrics see the same calls: 40 requests over that many calls.
      expect(delta(before, after, 'ext_storage_write_call_requests_sum')).toBe(40);
      expect(delta(before, after, 'ext_storage_write_call_requests_count')).toBe(calls.single + calls.batch);
    }
  });

  it('merge independent writes: 40 racing puts of distinct keys, fewer calls, each answered and numbered on its own', async () => {
    const c = await extensionClient(t);
    const before = await scrape(t.url);
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => c.put({ namespace: 'spread', key: `k${i}`, value: i })));
    const after = await scrape(t.url);
    results.forEach((r, i) => expect(r).toMatchObject({ __typename: 'PutRecordSuccess', record: { key: `k${i}`, revision: 1, value: i } }));
    expect(delta(before, after, 'ext_storage_write_call_requests_sum')).toBe(40);
    if (backend === 'postgres') expect(delta(before, after, 'ext_storage_write_merged_requests_total'), 'some went merged').toBeGreaterThan(0);
    expect((await c.usage('spread')).namespace.keyCount).toBe(40);
  });

  it('answer each on its own: of 30 racing writes of new keys under a quota of 10 keys, exactly 10 succeed and the rest are QuotaExceeded', async () => {
    const c = await extensionClient(t, { quota: { maxKeysPerNamespace: 10 } });
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => c.put({ namespace: 'q', key: `k${i}`, value: i })));
    const ok = results.filter((r) => r.__typename === 'PutRecordSuccess');
    expect(ok).toHaveLength(10);
    for (const r of results.filter((r) => r.__typename !== 'PutRecordSuccess')) {
      expect(r).toMatchObject({ __typename: 'QuotaExceeded', quota: 'keysPerNamespace' });
    }
    expect((await c.usage('q')).namespace.keyCount).toBe(10);
  });

  it('a stale revision in the middle of a batch fails alone; the writes around it are applied', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'mix', key: 'base', value: 0 });
    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        i % 3 === 1 ? c.put({ namespace: 'mix', key: 'base', value: i, ifRevision: 99 }) : c.put({ namespace: 'mix', key: `own-${i}`, value: i }),
      ),
    );
    results.forEach((r, i) => {
      if (i % 3 === 1) expect(r).toMatchObject({ __typename: 'RevisionMismatch', currentRevision: 1 });
      else expect(r).toMatchObject({ __typename: 'PutRecordSuccess', record: { key: `own-${i}`, revision: 1, value: i } });
    });
    expect(await c.get('mix', 'base')).toMatchObject({ revision: 1, value: 0 });
  });
});

describe('the combiner on its own, against the real database', () => {
  function request(key: string, valueBytes: number | string) {
    return JSON.stringify({
      operation: 'put',
      actor: 'combiner-test',
      requestId: null,
      sweep: 0,
      auditRetentionSeconds: 86_400,
      quota: { namespaces: 10, keys: 100, bytes: 1_000_000 },
      schemas: [],
      invalid: false,
      ops: [{ kind: 'put', namespace: 'direct', key, ifRevision: null, value: 1, metadata: {}, valueBytes, metadataBytes: 2, ttlSeconds: null, schemaVersion: null }],
    });
  }

  it('a batch the database refuses as a whole is retried one request at a time: only the faulty request fails', async () => {
    const install = await t.createInstall();
    const counted: Array<[number, number]> = [];
    const combiner = new WriteCombiner(t.database.handle.db, { maxRequests: 32, maxBytes: 1 << 20, maxWaitMs: 0 }, (requests, merged) =>
      counted.push([requests, merged]),
    );
    const since = statements.length;
    // The first goes alone at once; the next three wait for it and go as one batch, which the
    // database refuses (a byte count that is not a number), so each is then sent alone.
    const answers = await Promise.allSettled([
      combiner.write(install.tenantId, install.id, request('a', 1)),
      combiner.write(install.tenantId, install.id, request('b', 1)),
      combiner.write(install.tenantId, install.id, request('bad', 'not a number')),
      combiner.write(install.tenantId, install.id, request('c', 1)),
    ]);
    expect(answers.map((a) => a.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    for (const a of answers) if (a.status === 'fulfilled') expect(a.value).toMatchObject({ ok: true, results: [{ revision: 1 }] });
    expect(writeCalls(since)).toEqual({ single: 1 + 3, batch: 1 });
    // The metrics count answered calls: the first, and the two sent alone again that succeeded (not the refused batch, nor the faulty request).
    expect(counted).toEqual([
      [1, 0],
      [1, 0],
      [1, 0],
    ]);
    const keys = await t.database.handle.db
      .selectFrom('ext_storage_records')
      .select('key')
      .where('tenant_id', '=', install.tenantId)
      .where('install_id', '=', install.id)
      .orderBy('key')
      .execute();
    expect(keys.map((k) => k.key)).toEqual(['a', 'b', 'c']);
    await t.database.assertCountersConsistent();
  });

  it('a queued write stands aside (whileQueued) only while the lane fits in one call: by requests and by bytes', async () => {
    const wrapped = (maxRequests: number, maxBytes: number, sizes: number[]) => {
      const combiner = new WriteCombiner(t.database.handle.db, { maxRequests, maxBytes, maxWaitMs: 0 });
      return t.createInstall().then(async (install) => {
        const aside: number[] = [];
        const writes = sizes.map((size, i) =>
          combiner.write(install.tenantId, install.id, request(`k${i}-${'x'.repeat(size)}`, 1), (wait) => {
            aside.push(i);
            return wait;
          }),
        );
        const answers = await Promise.all(writes);
        for (const a of answers) expect(a).toMatchObject({ ok: true, results: [{ revision: 1 }] });
        return aside;
      });
    };
    // The first goes alone at once (not queued); the next three fill a call of 3; the rest keep their place.
    expect(await wrapped(3, 1 << 20, [0, 0, 0, 0, 0, 0])).toEqual([1, 2, 3]);
    // By bytes: each request is some 400 bytes, the lane holds two of them at most.
    const one = request('k0-' + 'x'.repeat(100), 1).length;
    expect(await wrapped(32, 2 * one + 10, [100, 100, 100, 100])).toEqual([1, 2]);
  });

  it('keeps installs apart, and with maxRequests 1 never combines', async () => {
    const [one, two] = [await t.createInstall(), await t.createInstall()];
    const combiner = new WriteCombiner(t.database.handle.db, { maxRequests: 1, maxBytes: 1 << 20, maxWaitMs: 0 });
    const since = statements.length;
    await Promise.all([one, two, one, two].map((install, i) => combiner.write(install.tenantId, install.id, request(`k${i}-${randomUUID()}`, 1))));
    expect(writeCalls(since)).toEqual({ single: 4, batch: 0 });
  });
});
