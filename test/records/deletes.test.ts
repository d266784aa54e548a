import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { auditEvents, DELETE, errorOf, extensionClient } from './client.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

describe('deleteRecord without ifRevision', () => {
  it('answers deleted: false for a missing record, and records no audit event', async () => {
    const c = await extensionClient(t);
    const before = await auditEvents(t, c.install);
    expect(await c.del({ namespace: 'ns', key: 'nope' })).toEqual({ __typename: 'DeleteRecordSuccess', namespace: 'ns', key: 'nope', deleted: false });
    expect(await auditEvents(t, c.install)).toEqual(before);
  });

  it('deletes an existing record: deleted: true, then gone from every read and from usage', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'k', value: { big: 'x'.repeat(100) } });
    await c.put({ namespace: 'ns', key: 'stay', value: 1 });
    const before = await c.usage('ns');
    expect(await c.del({ namespace: 'ns', key: 'k' })).toEqual({ __typename: 'DeleteRecordSuccess', namespace: 'ns', key: 'k', deleted: true });
    expect(await c.get('ns', 'k')).toBeNull();
    expect(await c.getMany('ns', ['k', 'stay'])).toMatchObject([null, { key: 'stay' }]);
    expect((await c.list('ns')).edges.map((e) => e.node.key)).toEqual(['stay']);
    const after = await c.usage('ns');
    expect(after.usage.keys).toBe(before.usage.keys - 1);
    expect(after.usage.bytes).toBe(JSON.stringify(1).length + JSON.stringify({}).length);
    expect(after.namespace).toEqual({ keyCount: 1, bytesUsed: after.usage.bytes });
    const [latest] = await auditEvents(t, c.install);
    expect(latest).toMatchObject({ operation: 'deleteRecord', namespace: 'ns', key: 'k', revision: null, bytesDelta: -(before.usage.bytes - after.usage.bytes) });
    expect(await c.del({ namespace: 'ns', key: 'k' })).toMatchObject({ deleted: false });
  });

  it('removes the namespace from usage when its last record goes', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'solo', key: 'k', value: 1 });
    expect((await c.usage('solo')).usage.namespaces).toBe(1);
    await c.del({ namespace: 'solo', key: 'k' });
    expect(await c.usage('solo')).toEqual({ usage: { namespaces: 0, keys: 0, bytes: 0 }, namespace: { keyCount: 0, bytesUsed: 0 } });
  });
});

describe('deleteRecord with ifRevision n > 0', () => {
  it('deletes when the record is at revision n', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'k', value: 1 });
    await c.put({ namespace: 'ns', key: 'k', value: 2 });
    expect(await c.del({ namespace: 'ns', key: 'k', ifRevision: 2 })).toMatchObject({ __typename: 'DeleteRecordSuccess', deleted: true });
    expect(await c.get('ns', 'k')).toBeNull();
  });

  it('refuses a stale revision with RevisionMismatch and keeps the record', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'k', value: 1 });
    await c.put({ namespace: 'ns', key: 'k', value: 2 });
    expect(await c.del({ namespace: 'ns', key: 'k', ifRevision: 1 })).toEqual({
      __typename: 'RevisionMismatch',
      code: 'REVISION_MISMATCH',
      message: expect.any(String),
      namespace: 'ns',
      key: 'k',
      expectedRevision: 1,
      currentRevision: 2,
    });
    expect(await c.get('ns', 'k')).toMatchObject({ value: 2, revision: 2 });
  });

  it('refuses a missing record with RevisionMismatch whose currentRevision is null', async () => {
    const c = await extensionClient(t);
    expect(await c.del({ namespace: 'ns', key: 'ghost', ifRevision: 3 })).toMatchObject({
      __typename: 'RevisionMismatch',
      key: 'ghost',
      expectedRevision: 3,
      currentRevision: null,
    });
  });
});

describe('deleteRecord with ifRevision 0 (assert absence)', () => {
  it('answers deleted: false for a missing record', async () => {
    const c = await extensionClient(t);
    expect(await c.del({ namespace: 'ns', key: 'ghost', ifRevision: 0 })).toEqual({ __typename: 'DeleteRecordSuccess', namespace: 'ns', key: 'ghost', deleted: false });
  });

  it('refuses a present record with RevisionMismatch and keeps it', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'k', value: 'here' });
    expect(await c.del({ namespace: 'ns', key: 'k', ifRevision: 0 })).toMatchObject({ __typename: 'RevisionMismatch', expectedRevision: 0, currentRevision: 1 });
    expect(await c.get('ns', 'k')).toMatchObject({ value: 'here', revision: 1 });
  });
});

describe('deleteRecord with bad input', () => {
  it('a negative ifRevision is a GraphQL error BAD_USER_INPUT and deletes nothing', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'k', value: 1 });
    expect(errorOf(await c.gql(DELETE, { input: { namespace: 'ns', key: 'k', ifRevision: -1 } })).extensions.code).toBe('BAD_USER_INPUT');
    expect(await c.get('ns', 'k')).toMatchObject({ revision: 1 });
  });

  it('a malformed key or namespace is LimitExceeded naming the limit', async () => {
    const c = await extensionClient(t);
    expect(await c.del({ namespace: 'ns', key: '' })).toMatchObject({ __typename: 'LimitExceeded', limit: 'keyLength' });
    expect(await c.del({ namespace: 'ns', key: 'a\u0001' })).toMatchObject({ __typename: 'LimitExceeded', limit: 'keyFormat' });
    expect(await c.del({ namespace: 'NS', key: 'k' })).toMatchObject({ __typename: 'LimitExceeded', limit: 'namespaceFormat' });
  });
});

describe('re-creating a deleted record', () => {
  it('starts again at revision 1, with a fresh createdAt, and ifRevision 0 succeeds', async () => {
    const c = await extensionClient(t);
    for (let n = 0; n < 3; n++) await c.put({ namespace: 'ns', key: 'k', value: n });
    const old = await c.get('ns', 'k');
    expect(old).toMatchObject({ revision: 3 });
    await c.del({ namespace: 'ns', key: 'k' });
    const again = await c.put({ namespace: 'ns', key: 'k', value: 'new', ifRevision: 0 });
    expect(again).toMatchObject({ __typename: 'PutRecordSuccess', record: { revision: 1, value: 'new' } });
    expect(Date.parse(again.record.createdAt)).toBeGreaterThanOrEqual(Date.parse(old!.updatedAt));
    await c.del({ namespace: 'ns', key: 'k' });
    expect(await c.put({ namespace: 'ns', key: 'k', value: 'newer' })).toMatchObject({ record: { revision: 1 } });
  });
});

describe('concurrent deletes', () => {
  it('of 10 racing deletes of one record exactly one reports deleted: true', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'k', value: 1 });
    const results = await Promise.all(Array.from({ length: 10 }, () => c.del({ namespace: 'ns', key: 'k' })));
    expect(results.filter((r) => r.deleted === true)).toHaveLength(1);
    expect(results.filter((r) => r.deleted === false)).toHaveLength(9);
    expect((await c.usage('ns')).usage).toEqual({ namespaces: 0, keys: 0, bytes: 0 });
    expect((await auditEvents(t, c.install)).filter((e) => e.operation === 'deleteRecord')).toHaveLength(1);
  });
});
