/**
 * docs/api.md, "Counters: incrementRecord and increment": exact decimal arithmetic, the 1e15 bound,
 * types, metadata, TTL and schema, no lost increment under concurrency; and the commit's increment
 * operation behaves the same.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { commitClient, inc, PAST_ONE_SECOND, setSchema, sleep, snapshot, storedBytes, withConcurrency, type CommitClient, type Result } from './client.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ STORAGE_MIN_TTL_SECONDS: '1' });
});
afterAll(async () => {
  await t?.close();
});

/**
 * The two ways to increment one key, answering the same shape: incrementRecord's result, or the
 * commit's result with its single record (or its error) in the same place.
 */
type Incrementer = (c: CommitClient, input: { namespace: string; key: string; by: number; ttlSeconds?: number }) => Promise<Result>;
const WAYS: Record<string, Incrementer> = {
  incrementRecord: (c, input) => c.increment(input),
  'commit increment': async (c, input) => {
    const res = await c.commit({ operations: [inc(input.namespace, input.key, input.by, input.ttlSeconds)] });
    if (res.__typename !== 'CommitSuccess') return res;
    expect(res.committed).toBe(true);
    expect(res.records).toHaveLength(1);
    return { __typename: 'PutRecordSuccess', record: res.records[0] };
  },
};

for (const [way, increment] of Object.entries(WAYS)) {
  /** itemIndex of a refused single increment: null for incrementRecord, 0 for a commit's first operation. */
  const index = way === 'incrementRecord' ? null : 0;

  describe(`${way}`, () => {
    let c: CommitClient;
    beforeAll(async () => {
      c = await commitClient(t);
    });

    it('a missing record starts at 0 and is created at revision 1; each increment adds 1 to the revision', async () => {
      expect(await increment(c, { namespace: 'cnt', key: 'new', by: 5 })).toMatchObject({
        __typename: 'PutRecordSuccess',
        record: { namespace: 'cnt', key: 'new', value: 5, metadata: {}, revision: 1, ttlExpiresAt: null },
      });
      expect((await increment(c, { namespace: 'cnt', key: 'new', by: 2 })).record).toMatchObject({ value: 7, revision: 2 });
      expect((await increment(c, { namespace: 'cnt', key: 'new', by: -10 })).record).toMatchObject({ value: -3, revision: 3 });
      expect(await c.get('cnt', 'new')).toMatchObject({ value: -3, revision: 3 });
      expect((await c.usage('cnt')).namespace).toEqual({ keyCount: 1, bytesUsed: storedBytes(-3) });
    });

    it('starts from a stored number', async () => {
      await c.put({ namespace: 'cnt', key: 'stored', value: 40 });
      expect((await increment(c, { namespace: 'cnt', key: 'stored', by: 2 })).record).toMatchObject({ value: 42, revision: 2 });
      await c.put({ namespace: 'cnt', key: 'frac', value: -1.5 });
      expect((await increment(c, { namespace: 'cnt', key: 'frac', by: 0.25 })).record).toMatchObject({ value: -1.25, revision: 2 });
    });

    it('any stored value that is not a number is LimitExceeded valueType, and nothing is written', async () => {
      const values: unknown[] = ['12', 'text', { n: 1 }, [1], true, false];
      for (const [i, value] of values.entries()) await c.put({ namespace: 'types', key: `k${i}`, value });
      const before = await snapshot(t, c, ['types']);
      for (const i of values.keys()) {
        const res = await increment(c, { namespace: 'types', key: `k${i}`, by: 1 });
        expect(res, JSON.stringify(values[i])).toMatchObject({ __typename: 'LimitExceeded', code: 'LIMIT_EXCEEDED', limit: 'valueType', itemIndex: index });
      }
      expect(await snapshot(t, c, ['types'])).toEqual(before);
    });

    it('arithmetic is exact decimal: 0.1 + 0.2 stores 0.3', async () => {
      expect((await increment(c, { namespace: 'dec', key: 'k', by: 0.1 })).record.value).toBe(0.1);
      const sum = await increment(c, { namespace: 'dec', key: 'k', by: 0.2 });
      expect(sum.record.value).toBe(0.3);
      expect((await c.get('dec', 'k'))!.value).toBe(0.3);
      const res = await c.gql('query { record(namespace: "dec", key: "k") { value } }');
      expect(JSON.stringify(res.body.data.record.value)).toBe('0.3');
      expect((await increment(c, { namespace: 'dec', key: 'k', by: -0.3 })).record.value).toBe(0);
      await c.put({ namespace: 'dec', key: 'm', value: 1.1 });
      expect((await increment(c, { namespace: 'dec', key: 'm', by: 2.2 })).record.value).toBe(3.3);
    });

    it('a result of magnitude up to 1e15 is stored; beyond it is LimitExceeded valueType and nothing is written', async () => {
      expect((await increment(c, { namespace: 'bound', key: 'up', by: 1e15 })).record).toMatchObject({ value: 1e15, revision: 1 });
      expect((await increment(c, { namespace: 'bound', key: 'down', by: -1e15 })).record).toMatchObject({ value: -1e15, revision: 1 });
      const before = await snapshot(t, c, ['bound']);
      expect(await increment(c, { namespace: 'bound', key: 'up', by: 1 })).toMatchObject({ __typename: 'LimitExceeded', limit: 'valueType', itemIndex: index });
      expect(await increment(c, { namespace: 'bound', key: 'up', by: 0.5 })).toMatchObject({ __typename: 'LimitExceeded', limit: 'valueType' });
      expect(await increment(c, { namespace: 'bound', key: 'down', by: -1 })).toMatchObject({ __typename: 'LimitExceeded', limit: 'valueType', itemIndex: index });
      expect(await increment(c, { namespace: 'bound', key: 'fresh', by: 1e16 })).toMatchObject({ __typename: 'LimitExceeded', limit: 'valueType' });
      expect(await increment(c, { namespace: 'bound', key: 'fresh', by: -1e15 - 2 })).toMatchObject({ __typename: 'LimitExceeded', limit: 'valueType' });
      expect(await snapshot(t, c, ['bound'])).toEqual(before);
      expect(await c.get('bound', 'fresh')).toBeNull();
      // Coming back inside the bound works.
      expect((await increment(c, { namespace: 'bound', key: 'up', by: -1 })).record).toMatchObject({ value: 1e15 - 1, revision: 2 });
    });

    it('keeps metadata', async () => {
      await c.put({ namespace: 'meta', key: 'k', value: 1, metadata: { unit: 'clicks', tags: ['a'] } });
      const res = await increment(c, { namespace: 'meta', key: 'k', by: 1 });
      expect(res.record).toMatchObject({ value: 2, metadata: { unit: 'clicks', tags: ['a'] }, revision: 2 });
      expect(await c.get('meta', 'k')).toMatchObject({ value: 2, metadata: { unit: 'clicks', tags: ['a'] } });
      expect((await c.usage('meta')).namespace.bytesUsed).toBe(storedBytes(2, { unit: 'clicks', tags: ['a'] }));
    });

    it('sets the TTL like a put: ttlSeconds sets it, omitted clears it', async () => {
      const withTtl = await increment(c, { namespace: 'ttl', key: 'k', by: 1, ttlSeconds: 3600 });
      expect(Date.parse(withTtl.record.ttlExpiresAt) - Date.parse(withTtl.record.updatedAt)).toBe(3_600_000);
      const cleared = await increment(c, { namespace: 'ttl', key: 'k', by: 1 });
      expect(cleared.record).toMatchObject({ value: 2, revision: 2, ttlExpiresAt: null });
      expect(await c.get('ttl', 'k')).toMatchObject({ ttlExpiresAt: null });
      await c.put({ namespace: 'ttl', key: 'p', value: 1, ttlSeconds: 3600 });
      expect((await increment(c, { namespace: 'ttl', key: 'p', by: 1 })).record.ttlExpiresAt).toBeNull();
    });

    it('an out-of-range ttlSeconds is LimitExceeded ttlSeconds', async () => {
      expect(await increment(c, { namespace: 'ttl', key: 'bad', by: 1, ttlSeconds: 0 })).toMatchObject({ __typename: 'LimitExceeded', limit: 'ttlSeconds', itemIndex: index });
      expect(await c.get('ttl', 'bad')).toBeNull();
    });

    it('an expired counter starts again from 0 at revision 1', async () => {
      await c.put({ namespace: 'exp', key: 'k', value: 100, metadata: { old: true } });
      await increment(c, { namespace: 'exp', key: 'k', by: 1, ttlSeconds: 1 });
      await c.put({ namespace: 'exp', key: 's', value: 'not a number', ttlSeconds: 1 });
      await sleep(PAST_ONE_SECOND);
      expect((await increment(c, { namespace: 'exp', key: 'k', by: 3 })).record).toMatchObject({ value: 3, revision: 1, metadata: {}, ttlExpiresAt: null });
      // An expired non-number is absent too.
      expect((await increment(c, { namespace: 'exp', key: 's', by: 1 })).record).toMatchObject({ value: 1, revision: 1 });
    });

    it('the namespace schema validates the resulting number', async () => {
      const d = await commitClient(t);
      const version = await setSchema(t, d.install, 'capped', { type: 'number', maximum: 10 });
      expect((await increment(d, { namespace: 'capped', key: 'k', by: 4 })).record).toMatchObject({ value: 4, revision: 1, schemaVersion: version });
      expect((await increment(d, { namespace: 'capped', key: 'k', by: 4 })).record).toMatchObject({ value: 8, revision: 2 });
      const before = await snapshot(t, d, ['capped']);
      const over = await increment(d, { namespace: 'capped', key: 'k', by: 4 });
      expect(over).toMatchObject({ __typename: 'ValidationFailed', code: 'VALIDATION_FAILED', schemaVersion: version });
      expect(over.issues.map((i: { keyword: string }) => i.keyword)).toContain('maximum');
      expect(await snapshot(t, d, ['capped'])).toEqual(before);
      expect((await increment(d, { namespace: 'capped', key: 'k', by: 2 })).record).toMatchObject({ value: 10, revision: 3 });
      // A fresh counter is validated too: 0 + 11 > 10.
      expect((await increment(d, { namespace: 'capped', key: 'fresh', by: 11 })).__typename).toBe('ValidationFailed');
      expect(await d.get('capped', 'fresh')).toBeNull();
    });

    it('is refused by a quota like a put', async () => {
      const d = await commitClient(t, { quota: { maxKeysPerNamespace: 1 } });
      await increment(d, { namespace: 'q', key: 'a', by: 1 });
      expect(await increment(d, { namespace: 'q', key: 'b', by: 1 })).toMatchObject({
        __typename: 'QuotaExceeded',
        quota: 'keysPerNamespace',
        allowed: 1,
        used: 1,
        itemIndex: null,
      });
      expect((await increment(d, { namespace: 'q', key: 'a', by: 1 })).record).toMatchObject({ value: 2, revision: 2 });
    });

    it('appears in the audit log once per increment', async () => {
      const d = await commitClient(t);
      await increment(d, { namespace: 'au', key: 'k', by: 1 });
      await increment(d, { namespace: 'au', key: 'k', by: 10 });
      const res = await t.gql(`query A($id: ID!) { install(id: $id) { auditLog(first: 10) { edges { node { operation namespace key revision bytesDelta } } } } }`, { id: d.install.id }, {
        token: await t.adminToken(d.install.tenantId),
      });
      const events = res.body.data.install.auditLog.edges.map((e: any) => e.node).filter((e: any) => e.key === 'k');
      const operation = way === 'incrementRecord' ? 'incrementRecord' : 'commit';
      expect(events).toEqual([
        { operation, namespace: 'au', key: 'k', revision: 2, bytesDelta: storedBytes(11) - storedBytes(1) },
        { operation, namespace: 'au', key: 'k', revision: 1, bytesDelta: storedBytes(1) },
      ]);
    });

    it('200 concurrent increments of one key by 1 over 20 connections add exactly 200 to the value and the revision', async () => {
      const d = await commitClient(t);
      await d.put({ namespace: 'hot', key: 'k', value: 7, metadata: { m: 1 } });
      await d.put({ namespace: 'hot', key: 'k', value: 7, metadata: { m: 1 } });
      const results = await withConcurrency(
        20,
        Array.from({ length: 200 }, () => () => increment(d, { namespace: 'hot', key: 'k', by: 1 })),
      );
      for (const r of results) expect(r.__typename).toBe('PutRecordSuccess');
      const records = results.map((r) => r.record);
      expect(records.map((r) => r.revision).sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i + 3));
      for (const r of records) expect(r.value - 7).toBe(r.revision - 2);
      expect(await d.get('hot', 'k')).toMatchObject({ value: 207, revision: 202, metadata: { m: 1 } });
    });
  });
}

describe('a bad by', () => {
  it('a non-finite or missing by is a GraphQL error and writes nothing', async () => {
    const c = await commitClient(t);
    for (const by of ['NaN', null, 'one']) {
      const res = await c.incrementRaw({ namespace: 'n', key: 'k', by });
      expect(res.body.errors?.length ?? 0, JSON.stringify(res.body)).toBeGreaterThan(0);
    }
    expect(await c.get('n', 'k')).toBeNull();
  });
});

describe('increments racing with puts and deletes of the same key', () => {
  it('the final value and every answer are consistent with one serial order', async () => {
    const c = await commitClient(t);
    const BASE = 1_000_000;
    // Each put sets a distinct multiple of BASE; an increment adds 1; a delete resets to absent (0).
    const tasks: Array<() => Promise<{ kind: string; i: number; res: Result }>> = [];
    for (let i = 0; i < 60; i++) tasks.push(async () => ({ kind: 'inc', i, res: await c.increment({ namespace: 'mix', key: 'k', by: 1 }) }));
    for (let i = 1; i <= 5; i++) tasks.push(async () => ({ kind: 'put', i, res: await c.put({ namespace: 'mix', key: 'k', value: i * BASE }) }));
    for (let i = 0; i < 5; i++) tasks.push(async () => ({ kind: 'del', i, res: await c.del({ namespace: 'mix', key: 'k' }) }));
    // Interleave the kinds so they race.
    const order = tasks.map((task, n) => ({ task, sortKey: (n * 37) % tasks.length }));
    order.sort((a, b) => a.sortKey - b.sortKey);
    const outcomes = await withConcurrency(20, order.map((o) => o.task));

    const incs = outcomes.filter((o) => o.kind === 'inc').map((o) => o.res);
    for (const r of incs) expect(r.__typename).toBe('PutRecordSuccess');
    const putRevision = new Map<number, number>();
    for (const o of outcomes.filter((o) => o.kind === 'put')) {
      expect(o.res.__typename).toBe('PutRecordSuccess');
      putRevision.set(o.i * BASE, o.res.record.revision);
    }
    // Group the increments' answers by the epoch they belong to (the put, or a delete/absence, before them).
    const byBase = new Map<number, Array<{ count: number; revision: number }>>();
    for (const r of incs) {
      const value: number = r.record.value;
      const base = Math.floor(value / BASE) * BASE;
      const count = value - base;
      expect(count).toBeGreaterThanOrEqual(1);
      expect(base === 0 || putRevision.has(base), `value ${value}`).toBe(true);
      byBase.set(base, [...(byBase.get(base) ?? []), { count, revision: r.record.revision }]);
    }
    // After a put: the increments that follow it answer base+1..base+m, each once, at the put's revision + count.
    for (const [base, answers] of byBase) {
      if (base === 0) continue;
      const counts = answers.map((a) => a.count).sort((a, b) => a - b);
      expect(counts).toEqual(Array.from({ length: counts.length }, (_, i) => i + 1));
      for (const a of answers) expect(a.revision).toBe(putRevision.get(base)! + a.count);
    }
    // After deletes (or at the start): each run of increments answers 1..m at revisions 1..m, so
    // value k never appears more often than value k - 1.
    const zero = byBase.get(0) ?? [];
    for (const a of zero) expect(a.revision).toBe(a.count);
    const freq = (k: number) => zero.filter((a) => a.count === k).length;
    for (let k = 2; k <= 60; k++) expect(freq(k)).toBeLessThanOrEqual(freq(k - 1));
    const deleted = outcomes.filter((o) => o.kind === 'del' && o.res.deleted === true).length;
    expect(freq(1)).toBeLessThanOrEqual(deleted + 1);

    // The final state is the end of one epoch.
    const final = await c.get('mix', 'k');
    if (final === null) return;
    const value: number = final.value as number;
    const base = Math.floor(value / BASE) * BASE;
    const count = value - base;
    if (base !== 0) {
      const answers = byBase.get(base) ?? [];
      expect(count).toBe(answers.length);
      expect(final.revision).toBe(putRevision.get(base)! + count);
    } else {
      expect(final.revision).toBe(count);
      expect(freq(count)).toBeGreaterThan(freq(count + 1));
    }
  });
});
