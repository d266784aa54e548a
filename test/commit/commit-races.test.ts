/**
 * docs/api.md, "Transactions: commit" under concurrency: commits are serializable with respect to
 * the keys they check and write, and quotas hold (against each commit's net effect) when many
 * commits race at their edge.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { check, commitClient, del, put, storedBytes, type CommitClient, type Result } from './client.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

/** Counts live records and bytes by reading every namespace through the API, and compares with usage. */
async function expectUsageIsRecount(c: CommitClient): Promise<{ keys: Record<string, number>; bytes: number }> {
  const state = await c.state();
  const keys: Record<string, number> = {};
  let bytes = 0;
  for (const ns of state.namespaces) {
    const records = await c.all(ns.name);
    keys[ns.name] = records.length;
    const nsBytes = records.reduce((sum, r) => sum + storedBytes(r.value, r.metadata), 0);
    bytes += nsBytes;
    expect(ns.keyCount).toBe(records.length);
    expect(ns.bytesUsed).toBe(nsBytes);
  }
  expect(state.usage.namespaces).toBe(Object.values(keys).filter((n) => n > 0).length);
  expect(state.usage.keys).toBe(Object.values(keys).reduce((a, b) => a + b, 0));
  expect(state.usage.bytes).toBe(bytes);
  return { keys, bytes };
}

describe('racing commits with overlapping checks', () => {
  it('of 20 commits that check and write the same key at the same revision exactly one wins', async () => {
    const c = await commitClient(t);
    await c.put({ namespace: 'race', key: 'k', value: 'start' });
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => c.commit({ checks: [check('race', 'k', 1)], operations: [put('race', 'k', { winner: i }), put('race', `own-${i}`, i)] })),
    );
    const winners = results.flatMap((r, i) => (r.__typename === 'CommitSuccess' ? [i] : []));
    expect(winners).toHaveLength(1);
    const w = winners[0]!;
    expect(results[w]!.records[0]).toMatchObject({ value: { winner: w }, revision: 2 });
    results.forEach((r, i) => {
      if (i === w) return;
      expect(r).toMatchObject({ __typename: 'CommitConflict', conflicts: [{ index: 0, key: 'k', expectedRevision: 1, currentRevision: 2 }] });
    });
    expect(await c.get('race', 'k')).toMatchObject({ value: { winner: w }, revision: 2 });
    const own = await c.getMany('race', Array.from({ length: 20 }, (_, i) => `own-${i}`));
    expect(own.flatMap((r, i) => (r ? [i] : []))).toEqual([w]);
  });

  it('of 20 create-if-absent commits of one key (check revision 0) exactly one wins', async () => {
    const c = await commitClient(t);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => c.commit({ checks: [check('race', 'lock', 0)], operations: [put('race', 'lock', { owner: i })] })));
    const winners = results.filter((r) => r.__typename === 'CommitSuccess');
    expect(winners).toHaveLength(1);
    expect(winners[0]!.records[0].revision).toBe(1);
    for (const r of results.filter((r) => r.__typename !== 'CommitSuccess')) {
      expect(r).toMatchObject({ __typename: 'CommitConflict', conflicts: [{ key: 'lock', expectedRevision: 0, currentRevision: 1 }] });
    }
    expect(await c.get('race', 'lock')).toMatchObject({ value: winners[0]!.records[0].value, revision: 1 });
  });
});

describe('write skew', () => {
  it('of two commits that each check the key the other writes, never both win (20 racing pairs, twice)', async () => {
    const c = await commitClient(t);
    for (let round = 0; round < 2; round++) {
      const pairs = Array.from({ length: 20 }, (_, i) => ({ k1: `r${round}-p${i}-k1`, k2: `r${round}-p${i}-k2` }));
      // Both keys of every pair exist at revision 1 (the state both commits read).
      await c.bulk('skew', pairs.flatMap(({ k1, k2 }) => [{ key: k1, value: 'init' }, { key: k2, value: 'init' }]));
      const outcomes = await Promise.all(
        pairs.map(({ k1, k2 }) =>
          Promise.all([
            c.commit({ checks: [check('skew', k1, 1)], operations: [put('skew', k2, 'A')] }),
            c.commit({ checks: [check('skew', k2, 1)], operations: [put('skew', k1, 'B')] }),
          ]),
        ),
      );
      for (const [i, [a, b]] of outcomes.entries()) {
        const won = [a!, b!].filter((r: Result) => r.__typename === 'CommitSuccess');
        expect(won, `pair ${i}: ${a!.__typename} / ${b!.__typename}`).toHaveLength(1);
        const loser = a!.__typename === 'CommitSuccess' ? b! : a!;
        expect(loser).toMatchObject({ __typename: 'CommitConflict', conflicts: [{ index: 0, expectedRevision: 1, currentRevision: 2 }] });
        const [s1, s2] = await c.getMany('skew', [pairs[i]!.k1, pairs[i]!.k2]);
        // Exactly the winner's write is stored.
        if (a!.__typename === 'CommitSuccess') {
          expect([s1, s2]).toMatchObject([{ value: 'init', revision: 1 }, { value: 'A', revision: 2 }]);
        } else {
          expect([s1, s2]).toMatchObject([{ value: 'B', revision: 2 }, { value: 'init', revision: 1 }]);
        }
      }
    }
  });
});

describe('quotas under racing commits that span namespaces', () => {
  it('namespaces and keys per namespace: 40 racing commits never pass the quota, and usage equals a recount', async () => {
    const c = await commitClient(t, { quota: { maxNamespaces: 3, maxKeysPerNamespace: 6 } });
    const namespaces = ['n0', 'n1', 'n2', 'n3', 'n4'];
    const commits = Array.from({ length: 40 }, (_, i) => ({
      a: namespaces[i % 5]!,
      b: namespaces[(i + 1 + (i % 3)) % 5]!,
      i,
    }));
    const results = await Promise.all(commits.map(({ a, b, i }) => c.commit({ operations: [put(a, `c${i}`, { i }), put(b, `c${i}`, { i, twin: true })] })));
    const won = commits.filter((_, i) => results[i]!.__typename === 'CommitSuccess');
    for (const r of results) {
      if (r.__typename === 'CommitSuccess') continue;
      expect(r).toMatchObject({ __typename: 'QuotaExceeded', code: 'QUOTA_EXCEEDED', itemIndex: null });
      expect(['namespaces', 'keysPerNamespace']).toContain(r.quota);
      expect(r.used).toBeLessThanOrEqual(r.allowed);
    }
    expect(won.length).toBeGreaterThan(0);
    const { keys } = await expectUsageIsRecount(c);
    expect(Object.keys(keys).length).toBeLessThanOrEqual(3);
    for (const n of Object.values(keys)) expect(n).toBeLessThanOrEqual(6);
    // All or nothing: each winner's two records are stored, no loser's record is.
    for (const [i, { a, b }] of commits.entries()) {
      const stored = [(await c.get(a, `c${i}`)) !== null, (await c.get(b, `c${i}`)) !== null];
      const isWinner = results[i]!.__typename === 'CommitSuccess';
      expect(stored, `commit ${i}`).toEqual([isWinner, isWinner]);
    }
    expect(Object.values(keys).reduce((x, y) => x + y, 0)).toBe(2 * won.length);
  });

  it('bytes: 30 racing commits of two 3 KB records each never push usage past the quota', async () => {
    const maxBytes = 40_000;
    const c = await commitClient(t, { quota: { maxBytes } });
    const value = (i: number, part: string) => ({ blob: 'z'.repeat(3_000), i, part });
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => c.commit({ operations: [put(`b${i % 4}`, `k${i}`, value(i, 'x')), put(`b${(i + 1) % 4}`, `k${i}`, value(i, 'y'))] })),
    );
    const sizes = results.map((_, i) => storedBytes(value(i, 'x')) + storedBytes(value(i, 'y')));
    let total = 0;
    results.forEach((r, i) => {
      if (r.__typename === 'CommitSuccess') {
        total += sizes[i]!;
        return;
      }
      expect(r).toMatchObject({ __typename: 'QuotaExceeded', quota: 'bytes', allowed: maxBytes, itemIndex: null });
      expect(r.used + sizes[i]!).toBeGreaterThan(maxBytes);
    });
    const { bytes } = await expectUsageIsRecount(c);
    expect(bytes).toBe(total);
    expect(bytes).toBeLessThanOrEqual(maxBytes);
    // Every commit is about 6 KB: six fit in 40,000 bytes, seven do not.
    expect(results.filter((r) => r.__typename === 'CommitSuccess')).toHaveLength(6);
  });

  it('racing commits that each delete one record and create another keep a full namespace full, never over', async () => {
    const c = await commitClient(t, { quota: { maxKeysPerNamespace: 10 } });
    await c.bulk('swap', Array.from({ length: 10 }, (_, i) => ({ key: `old-${i}`, value: i })));
    // 10 swaps (delete one, create one) fit; 10 plain creates do not.
    const swaps = Array.from({ length: 10 }, (_, i) => c.commit({ operations: [put('swap', `new-${i}`, i), del('swap', `old-${i}`)] }));
    const creates = Array.from({ length: 10 }, (_, i) => c.commit({ operations: [put('swap', `extra-${i}`, i)] }));
    const results = await Promise.all([...swaps, ...creates]);
    expect(results.slice(0, 10).map((r) => r.__typename)).toEqual(Array(10).fill('CommitSuccess'));
    for (const r of results.slice(10)) expect(r).toMatchObject({ __typename: 'QuotaExceeded', quota: 'keysPerNamespace', allowed: 10, used: 10, itemIndex: null });
    const records = await c.all('swap');
    expect(records.map((r) => r.key).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `new-${i}`).sort());
    await expectUsageIsRecount(c);
  });
});

describe('deletes free quota for puts in the same commit (the net effect counts)', () => {
  it('keys per namespace: delete then put, and put then delete, both fit a full namespace; a net growth does not', async () => {
    const c = await commitClient(t, { quota: { maxKeysPerNamespace: 3 } });
    await c.bulk('full', [{ key: 'a', value: 1 }, { key: 'b', value: 1 }, { key: 'c', value: 1 }]);
    expect(await c.commit({ operations: [del('full', 'a'), put('full', 'd', 1)] })).toMatchObject({ __typename: 'CommitSuccess' });
    expect(await c.commit({ operations: [put('full', 'e', 1), del('full', 'b')] })).toMatchObject({ __typename: 'CommitSuccess' });
    const grow = await c.commit({ operations: [put('full', 'f', 1), put('full', 'g', 1), del('full', 'c')] });
    expect(grow).toMatchObject({ __typename: 'QuotaExceeded', quota: 'keysPerNamespace', allowed: 3, used: 3, itemIndex: null });
    expect((await c.all('full')).map((r) => r.key).sort()).toEqual(['c', 'd', 'e']);
    await expectUsageIsRecount(c);
  });

  it('bytes: replacing a big record by another big one in one commit fits', async () => {
    const c = await commitClient(t, { quota: { maxBytes: 5_000 } });
    await c.put({ namespace: 'bytes', key: 'old', value: 'o'.repeat(4_000) });
    expect((await c.put({ namespace: 'bytes', key: 'new', value: 'n'.repeat(4_000) })).__typename).toBe('QuotaExceeded');
    const swap = await c.commit({ operations: [put('bytes', 'new', 'n'.repeat(4_000)), del('bytes', 'old')] });
    expect(swap).toMatchObject({ __typename: 'CommitSuccess', records: [{ key: 'new', revision: 1 }, null] });
    expect((await c.state()).usage.bytes).toBe(storedBytes('n'.repeat(4_000)));
  });

  it('namespaces: emptying one namespace frees its slot for another in the same commit', async () => {
    const c = await commitClient(t, { quota: { maxNamespaces: 1 } });
    await c.put({ namespace: 'one', key: 'k', value: 1 });
    expect(await c.commit({ operations: [put('two', 'k', 2)] })).toMatchObject({ __typename: 'QuotaExceeded', quota: 'namespaces', allowed: 1, used: 1, itemIndex: null });
    expect(await c.commit({ operations: [put('two', 'k', 2), del('one', 'k')] })).toMatchObject({ __typename: 'CommitSuccess' });
    expect((await c.state()).namespaces.map((n) => n.name)).toEqual(['two']);
    await expectUsageIsRecount(c);
  });
});
