import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { auditEvents, errorOf, extensionClient, PUT, type Result } from './client.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

describe('putRecord without ifRevision (unconditional upsert)', () => {
  it('creates a new record at revision 1 and adds exactly 1 per write', async () => {
    const c = await extensionClient(t);
    for (let n = 1; n <= 4; n++) {
      const put = await c.put({ namespace: 'prefs', key: 'theme', value: { n } });
      expect(put.__typename).toBe('PutRecordSuccess');
      expect(put.record).toMatchObject({ namespace: 'prefs', key: 'theme', value: { n }, revision: n });
    }
    expect(await c.get('prefs', 'theme')).toMatchObject({ value: { n: 4 }, revision: 4 });
  });

  it('keeps createdAt and moves updatedAt on an overwrite', async () => {
    const c = await extensionClient(t);
    const first = (await c.put({ namespace: 'prefs', key: 'k', value: 1 })).record;
    const second = (await c.put({ namespace: 'prefs', key: 'k', value: 2 })).record;
    expect(second.createdAt).toBe(first.createdAt);
    expect(Date.parse(second.updatedAt)).toBeGreaterThanOrEqual(Date.parse(first.updatedAt));
  });
});

describe('putRecord with ifRevision 0 (create only)', () => {
  it('creates a missing record at revision 1', async () => {
    const c = await extensionClient(t);
    const put = await c.put({ namespace: 'ns', key: 'k', value: 'v', ifRevision: 0 });
    expect(put).toMatchObject({ __typename: 'PutRecordSuccess', record: { revision: 1, value: 'v' } });
  });

  it('refuses an existing record with RevisionMismatch carrying the current revision, and changes nothing', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'k', value: 'one' });
    await c.put({ namespace: 'ns', key: 'k', value: 'two' });
    const put = await c.put({ namespace: 'ns', key: 'k', value: 'three', ifRevision: 0 });
    expect(put).toEqual({
      __typename: 'RevisionMismatch',
      code: 'REVISION_MISMATCH',
      message: expect.any(String),
      namespace: 'ns',
      key: 'k',
      expectedRevision: 0,
      currentRevision: 2,
    });
    expect(await c.get('ns', 'k')).toMatchObject({ value: 'two', revision: 2 });
  });
});

describe('putRecord with ifRevision n > 0', () => {
  it('writes revision n + 1 when the record is at revision n', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'k', value: 1 });
    await c.put({ namespace: 'ns', key: 'k', value: 2 });
    const put = await c.put({ namespace: 'ns', key: 'k', value: 3, ifRevision: 2 });
    expect(put).toMatchObject({ __typename: 'PutRecordSuccess', record: { value: 3, revision: 3 } });
  });

  it('refuses a stale revision with RevisionMismatch carrying the actual revision, and changes nothing', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'k', value: 1 });
    await c.put({ namespace: 'ns', key: 'k', value: 2 });
    const put = await c.put({ namespace: 'ns', key: 'k', value: 'stale', ifRevision: 1 });
    expect(put).toMatchObject({ __typename: 'RevisionMismatch', key: 'k', expectedRevision: 1, currentRevision: 2 });
    const ahead = await c.put({ namespace: 'ns', key: 'k', value: 'ahead', ifRevision: 7 });
    expect(ahead).toMatchObject({ __typename: 'RevisionMismatch', expectedRevision: 7, currentRevision: 2 });
    expect(await c.get('ns', 'k')).toMatchObject({ value: 2, revision: 2 });
  });

  it('refuses a missing record with RevisionMismatch whose currentRevision is null, and creates nothing', async () => {
    const c = await extensionClient(t);
    const put = await c.put({ namespace: 'ns', key: 'ghost', value: 1, ifRevision: 1 });
    expect(put).toMatchObject({ __typename: 'RevisionMismatch', key: 'ghost', expectedRevision: 1, currentRevision: null });
    expect(await c.get('ns', 'ghost')).toBeNull();
    expect((await c.usage('ns')).usage).toEqual({ namespaces: 0, keys: 0, bytes: 0 });
  });
});

describe('putRecord with a negative ifRevision', () => {
  it('is a GraphQL error BAD_USER_INPUT and writes nothing', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'present', value: 'kept' });
    const eventsBefore = await auditEvents(t, c.install);

    const onMissing = await c.gql(PUT, { input: { namespace: 'ns', key: 'absent', value: 1, ifRevision: -1 } });
    expect(errorOf(onMissing).extensions.code).toBe('BAD_USER_INPUT');
    const onPresent = await c.gql(PUT, { input: { namespace: 'ns', key: 'present', value: 'lost', ifRevision: -3 } });
    expect(errorOf(onPresent).extensions.code).toBe('BAD_USER_INPUT');

    expect(await c.get('ns', 'absent')).toBeNull();
    expect(await c.get('ns', 'present')).toMatchObject({ value: 'kept', revision: 1 });
    expect(await auditEvents(t, c.install)).toEqual(eventsBefore);
  });
});

describe('concurrent writers', () => {
  it('of 20 racing writers with the same ifRevision exactly one wins and the record ends at revision 2', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'race', key: 'k', value: { writer: -1 } });
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, writer) => c.put({ namespace: 'race', key: 'k', value: { writer }, ifRevision: 1 })),
    );
    const winners = results.filter((r) => r.__typename === 'PutRecordSuccess');
    const losers = results.filter((r) => r.__typename !== 'PutRecordSuccess');
    expect(winners).toHaveLength(1);
    expect(winners[0]!.record.revision).toBe(2);
    expect(losers).toHaveLength(19);
    for (const loser of losers) expect(loser).toMatchObject({ __typename: 'RevisionMismatch', expectedRevision: 1, currentRevision: 2 });
    expect(await c.get('race', 'k')).toMatchObject({ revision: 2, value: winners[0]!.record.value });
  });

  it('30 racing unconditional first writes of one key yield revisions 1..30, each once, and the last revision holds its value', async () => {
    const c = await extensionClient(t);
    const results = await Promise.all(Array.from({ length: 30 }, (_, writer) => c.put({ namespace: 'race', key: 'k', value: { writer } })));
    expect(results.every((r) => r.__typename === 'PutRecordSuccess')).toBe(true);
    const revisions = results.map((r) => r.record.revision as number).sort((a, b) => a - b);
    expect(revisions).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    // Each writer got back its own value with its revision.
    results.forEach((r: Result, writer) => expect(r.record.value).toEqual({ writer }));
    const last = results.find((r) => r.record.revision === 30)!;
    expect(await c.get('race', 'k')).toMatchObject({ revision: 30, value: last.record.value });
    const usage = await c.usage('race');
    expect(usage.namespace.keyCount).toBe(1);
    expect(usage.usage.keys).toBe(1);
  });

  it('of 15 racing create-only writes (ifRevision 0) exactly one wins at revision 1', async () => {
    const c = await extensionClient(t);
    const results = await Promise.all(
      Array.from({ length: 15 }, (_, writer) => c.put({ namespace: 'race', key: 'once', value: { writer }, ifRevision: 0 })),
    );
    const winners = results.filter((r) => r.__typename === 'PutRecordSuccess');
    expect(winners).toHaveLength(1);
    expect(winners[0]!.record.revision).toBe(1);
    const losers = results.filter((r) => r.__typename !== 'PutRecordSuccess');
    expect(losers).toHaveLength(14);
    for (const loser of losers) expect(loser).toMatchObject({ __typename: 'RevisionMismatch', expectedRevision: 0, currentRevision: 1 });
    expect(await c.get('race', 'once')).toMatchObject({ revision: 1, value: winners[0]!.record.value });
  });

  it('racing read-modify-write loops lose no update', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'race', key: 'counter', value: 0 });
    const incrementer = async () => {
      for (let attempts = 0; attempts < 100; attempts++) {
        const current = (await c.get('race', 'counter'))!;
        const put = await c.put({ namespace: 'race', key: 'counter', value: (current.value as number) + 1, ifRevision: current.revision });
        if (put.__typename === 'PutRecordSuccess') return;
        expect(put.__typename).toBe('RevisionMismatch');
      }
      throw new Error('an incrementer never won');
    };
    await Promise.all(Array.from({ length: 6 }, incrementer));
    expect(await c.get('race', 'counter')).toMatchObject({ value: 6, revision: 7 });
  });
});
