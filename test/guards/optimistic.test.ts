/**
 * Races on a live namespace: every write is one call of ext_storage_write_v1 (no client-side
 * transaction), which decides under the install's lock. The counters are checked against a
 * recount when the file closes (test/support/app.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LogEvent } from 'kysely';
import { startTestApp, type TestApp } from '../support/app.js';
import { auditEvents, dataOf, extension, PUT, DELETE, SET_SCHEMA, storedBytes, type Result } from './support.js';

let t: TestApp;
const statements: string[] = [];
beforeAll(async () => {
  t = await startTestApp({}, [(e: LogEvent) => statements.push(e.query.sql)]);
});
afterAll(async () => {
  await t?.close();
});

const succeeded = (r: Result) => r.__typename === 'PutRecordSuccess';

describe('an uncontended write into a live namespace', () => {
  it('is one call of the write function, with no transaction', async () => {
    const ext = await extension(t);
    expect(succeeded(await ext.put({ namespace: 'live', key: 'seed', value: 1 }))).toBe(true);
    expect(succeeded(await ext.put({ namespace: 'live', key: 'warm', value: 1 }))).toBe(true);
    statements.length = 0;
    const r = await ext.put({ namespace: 'live', key: 'next', value: { n: 2 }, ifRevision: 0 });
    expect(r).toMatchObject({ __typename: 'PutRecordSuccess', record: { revision: 1 } });
    const sent = statements.map((s) => s.trim().split(/\s+/)[0]!.toLowerCase());
    expect(sent).not.toContain('begin');
    expect(statements.filter((s) => s.includes('ext_storage_write_v1'))).toHaveLength(1);
    expect(statements.filter((s) => /ext_storage_(records|namespaces|install_locks|audit|schemas|expiries|write)/.test(s))).toHaveLength(1);
  });
});

describe('keys per namespace, racing into a live namespace', () => {
  it('lets exactly 19 of 40 concurrent creates in when the cap is 20 and one key is there', async () => {
    const ext = await extension(t, { quota: { maxKeysPerNamespace: 20 } });
    expect(succeeded(await ext.put({ namespace: 'race', key: 'seed', value: 0 }))).toBe(true);
    const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
    const results: Result[] = (await Promise.all(keys.map((key, i) => ext.gql(PUT, { input: { namespace: 'race', key, value: { i } } })))).map(
      (r) => dataOf(r).putRecord,
    );
    expect(results.filter(succeeded)).toHaveLength(19);
    for (const r of results.filter((x) => !succeeded(x))) {
      expect(r).toEqual({ __typename: 'QuotaExceeded', code: 'QUOTA_EXCEEDED', quota: 'keysPerNamespace', allowed: 20, used: 20, itemIndex: null });
    }
    expect((await ext.usage('race')).namespace.keyCount).toBe(20);
  });
});

describe('bytes per install, racing growth across two live namespaces', () => {
  it('never passes the quota, and the winners are exactly what fits', async () => {
    const maxBytes = 20_000;
    const ext = await extension(t, { quota: { maxBytes } });
    const small = (i: number) => ({ namespace: i % 2 === 0 ? 'a' : 'b', key: `r${i}`, value: 's' });
    for (let i = 0; i < 16; i++) expect(succeeded(await ext.put(small(i)))).toBe(true);
    const before = (await ext.usage('a')).usage.bytes;
    // 16 records of 5 bytes; each update grows one by 2,993 to 3,008 bytes: any 6 fit, no 7 do.
    const grow = (i: number) => ({ ...small(i), value: 'x'.repeat(2_990 + i), ifRevision: 1 });
    const results: Result[] = (await Promise.all(Array.from({ length: 16 }, (_, i) => ext.gql(PUT, { input: grow(i) })))).map((r) => dataOf(r).putRecord);
    const won = results.flatMap((r, i) => (succeeded(r) ? [i] : []));
    const usage = (await ext.usage('a')).usage.bytes;
    expect(usage).toBeLessThanOrEqual(maxBytes);
    expect(usage).toBe(before + won.reduce((sum, i) => sum + storedBytes(grow(i).value) - storedBytes('s'), 0));
    expect(won.length).toBe(6);
    results.forEach((r, i) => {
      if (succeeded(r)) return;
      expect(r).toMatchObject({ __typename: 'QuotaExceeded', quota: 'bytes', allowed: maxBytes });
      expect(r.used + storedBytes(grow(i).value) - storedBytes('s')).toBeGreaterThan(maxBytes);
    });
  });
});

describe('revisions, racing on one key of a live namespace', () => {
  it('of 20 conditional writers and a conditional delete at revision 1, exactly one wins', async () => {
    const ext = await extension(t);
    expect(succeeded(await ext.put({ namespace: 'rev', key: 'other', value: 0 }))).toBe(true);
    expect(succeeded(await ext.put({ namespace: 'rev', key: 'k', value: 0 }))).toBe(true);
    const [deleted, ...writes] = await Promise.all([
      ext.gql(DELETE, { input: { namespace: 'rev', key: 'k', ifRevision: 1 } }),
      ...Array.from({ length: 20 }, (_, i) => ext.gql(PUT, { input: { namespace: 'rev', key: 'k', value: { i }, ifRevision: 1 } })),
    ]);
    const deleteWon = dataOf(deleted!).deleteRecord.__typename === 'DeleteRecordSuccess';
    const writesWon = writes.filter((w) => succeeded(dataOf(w).putRecord)).length;
    expect(Number(deleteWon) + writesWon).toBe(1);
    const [stored] = await ext.records('rev', ['k']);
    if (deleteWon) expect(stored).toBeNull();
    else expect(stored).toMatchObject({ revision: 2 });
    const events = (await auditEvents(t, ext.install.id)).filter((e) => e.key === 'k');
    // The seed put and the one winner (a write or the delete); losers leave no trace.
    expect(events.map((e) => e.operation).sort()).toEqual(deleteWon ? ['deleteRecord', 'putRecord'] : ['putRecord', 'putRecord']);
  });
});

describe('a write racing a schema change', () => {
  it('validates against the schema active when it commits: no write ordered after the change stored the old version', async () => {
    const ext = await extension(t);
    const admin = await t.adminToken();
    const set = async (schema: unknown) =>
      dataOf(await t.gql(SET_SCHEMA, { input: { installId: ext.install.id, namespace: 'schema', schema } }, { token: admin })).setNamespaceSchema;
    // Each round: a permissive version, then a strict one set while 30 writes the strict one refuses race it.
    for (let round = 0; round < 3; round++) {
      const permissive = (await set({ type: 'object' })).schema.version;
      expect(succeeded(await ext.put({ namespace: 'schema', key: `seed${round}`, value: { n: 0 } }))).toBe(true);
      const strict = { type: 'object', properties: { n: { type: 'integer' } }, additionalProperties: false };
      const [changed, ...writes] = await Promise.all([
        set(strict),
        ...Array.from({ length: 30 }, (_, i) => ext.gql(PUT, { input: { namespace: 'schema', key: `r${round}w${i}`, value: { n: i, extra: true } } })),
      ]);
      for (const w of writes) {
        const r: Result = dataOf(w).putRecord;
        if (succeeded(r)) expect(r.record.schemaVersion).toBe(permissive);
        else expect(r).toMatchObject({ __typename: 'ValidationFailed', schemaVersion: changed.schema.version });
      }
      // The audit log's order follows the install lock: every accepted write must come before the schema change.
      const events = await auditEvents(t, ext.install.id); // newest first
      const change = events.findIndex((e) => e.operation === 'setNamespaceSchema');
      const late = events.slice(0, change).filter((e) => e.key?.startsWith(`r${round}w`));
      expect(late).toEqual([]);
    }
  });
});
