import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../../src/auth/credentials.js';
import { startTestApp, type TestApp } from '../support/app.js';
import {
  AUDIT_PAGE,
  BULK,
  DELETE,
  PUT,
  SET_SCHEMA,
  UPSERT_INSTALL,
  auditEvents,
  dataOf,
  errorCodes,
  extension,
  sleep,
  storedBytes,
  type AuditEventView,
} from './support.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ STORAGE_MIN_TTL_SECONDS: '1' });
});
afterAll(async () => {
  await t?.close();
});

type EventShape = Omit<AuditEventView, 'id' | 'at'>;

const shape = (e: AuditEventView): EventShape => ({
  actor: e.actor,
  operation: e.operation,
  namespace: e.namespace,
  key: e.key,
  revision: e.revision,
  bytesDelta: e.bytesDelta,
});

/** Events of one bulk write share a transaction: compare them in key order. */
function withBulkBlocksByKey(events: EventShape[]): EventShape[] {
  const out = [...events];
  for (let i = 0; i < out.length; ) {
    let j = i;
    while (j < out.length && out[j]!.operation === 'bulkPutRecords') j++;
    if (j > i) out.splice(i, j - i, ...out.slice(i, j).sort((a, b) => (a.key! < b.key! ? -1 : 1)));
    i = j + 1;
  }
  return out;
}

describe('what the audit log records', () => {
  it('records every mutation kind once, with its actor, revision and bytesDelta, newest first', async () => {
    const adminToken = await t.adminToken();
    const admin = `admin-of-${t.tenantId.slice(0, 8)}`;
    const installId = randomUUID();
    const upsert = await t.gql(
      UPSERT_INSTALL,
      { input: { id: installId, extensionId: 'audited', enabled: true, canRead: true, canWrite: true } },
      { token: adminToken },
    );
    expect(dataOf(upsert).upsertInstall.id).toBe(installId);

    const user = 'user-7';
    const token = await mintToken(t.secret, { sub: user, tid: t.tenantId, role: 'extension', iid: installId, scope: 'storage:read storage:write' });
    const ext = (query: string, variables: Record<string, unknown>) => t.gql(query, variables, { token });
    const runner = (query: string, variables: Record<string, unknown>) =>
      t.gql(query, variables, { headers: { 'x-runner-auth': t.runnerToken, 'x-install-id': installId } });
    const put = async (send: typeof ext, input: Record<string, unknown>) => {
      const result = dataOf(await send(PUT, { input })).putRecord;
      expect(result.__typename).toBe('PutRecordSuccess');
      return result.record;
    };

    const v1 = { text: 'first' };
    const m1 = { tag: 'a' };
    const v2 = { text: 'second, and longer' };
    await put(ext, { namespace: 'log', key: 'k1', value: v1, metadata: m1 });
    await put(ext, { namespace: 'log', key: 'k1', value: v2 });
    const bulkItems = [
      { key: 'b1', value: { n: 1 } },
      { key: 'b2', value: { n: 22 }, metadata: { m: true } },
      { key: 'b3', value: { n: 333 } },
    ];
    const bulk = dataOf(await ext(BULK, { input: { namespace: 'log', items: bulkItems } })).bulkPutRecords;
    expect(bulk.__typename).toBe('BulkPutRecordsSuccess');
    expect(dataOf(await ext(DELETE, { input: { namespace: 'log', key: 'k1' } })).deleteRecord.deleted).toBe(true);
    const schema = dataOf(await t.gql(SET_SCHEMA, { input: { installId, namespace: 'log', schema: { type: 'object' } } }, { token: adminToken }));
    expect(schema.setNamespaceSchema.__typename).toBe('SetNamespaceSchemaSuccess');
    await put(runner, { namespace: 'log', key: 'r1', value: { by: 'runner' } });
    await put(ext, { namespace: 'log', key: 'tmp', value: { short: 'lived' }, ttlSeconds: 1 });
    await sleep(1300);
    // This write sweeps the expired record in its own transaction, before writing.
    await put(ext, { namespace: 'log', key: 'after', value: {} });

    const chronological: EventShape[] = [
      { actor: admin, operation: 'upsertInstall', namespace: null, key: null, revision: null, bytesDelta: 0 },
      { actor: user, operation: 'putRecord', namespace: 'log', key: 'k1', revision: 1, bytesDelta: storedBytes(v1, m1) },
      { actor: user, operation: 'putRecord', namespace: 'log', key: 'k1', revision: 2, bytesDelta: storedBytes(v2) - storedBytes(v1, m1) },
      ...bulkItems.map((item) => ({
        actor: user,
        operation: 'bulkPutRecords',
        namespace: 'log',
        key: item.key,
        revision: 1,
        bytesDelta: storedBytes(item.value, item.metadata),
      })),
      { actor: user, operation: 'deleteRecord', namespace: 'log', key: 'k1', revision: null, bytesDelta: -storedBytes(v2) },
      { actor: admin, operation: 'setNamespaceSchema', namespace: 'log', key: null, revision: null, bytesDelta: 0 },
      { actor: 'runner', operation: 'putRecord', namespace: 'log', key: 'r1', revision: 1, bytesDelta: storedBytes({ by: 'runner' }) },
      { actor: user, operation: 'putRecord', namespace: 'log', key: 'tmp', revision: 1, bytesDelta: storedBytes({ short: 'lived' }) },
      { actor: 'system', operation: 'ttlExpire', namespace: 'log', key: 'tmp', revision: null, bytesDelta: -storedBytes({ short: 'lived' }) },
      { actor: user, operation: 'putRecord', namespace: 'log', key: 'after', revision: 1, bytesDelta: storedBytes({}) },
    ];

    const events = await auditEvents(t, installId);
    expect(withBulkBlocksByKey(events.map(shape))).toEqual(withBulkBlocksByKey([...chronological].reverse()));

    // Newest first: timestamps never increasing, ids unique. (Ids are opaque and not ordered across
    // nodes: on Citus, events written on a worker and on the coordinator come from different sequences.)
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    const times = events.map((e) => Date.parse(e.at));
    expect(times.every((at, i) => i === 0 || at <= times[i - 1]!)).toBe(true);

    // The audit's bytes add up to what is stored now.
    const usage = dataOf(await ext('{ install { usage { bytes } } }', {})).install.usage.bytes;
    expect(events.reduce((sum, e) => sum + e.bytesDelta, 0)).toBe(usage);
  });
});

describe('paging through the audit log', () => {
  it('visits every event once, in order, with first and after', async () => {
    const ext = await extension(t);
    for (let i = 0; i < 8; i++) expect((await ext.put({ namespace: 'pages', key: `k${i}`, value: i })).__typename).toBe('PutRecordSuccess');
    const all = await auditEvents(t, ext.install.id);
    expect(all).toHaveLength(9);

    const adminToken = await t.adminToken();
    const seen: AuditEventView[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const res = await t.gql(AUDIT_PAGE, { id: ext.install.id, first: 3, after }, { token: adminToken });
      const log: any = dataOf(res).install.auditLog;
      pages++;
      seen.push(...log.edges.map((e: { node: AuditEventView }) => e.node));
      expect(log.pageInfo.endCursor).toBe(log.edges.at(-1)?.cursor ?? null);
      if (!log.pageInfo.hasNextPage) break;
      after = log.pageInfo.endCursor;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(all);
  });

  it('refuses a foreign or malformed cursor with BAD_USER_INPUT', async () => {
    const a = await extension(t);
    const b = await extension(t);
    await a.put({ namespace: 'x', key: 'k', value: 1 });
    const adminToken = await t.adminToken();
    const first = dataOf(await t.gql(AUDIT_PAGE, { id: a.install.id, first: 1 }, { token: adminToken })).install.auditLog;
    const foreign = await t.gql(AUDIT_PAGE, { id: b.install.id, first: 1, after: first.pageInfo.endCursor }, { token: adminToken });
    expect(errorCodes(foreign)).toEqual(['BAD_USER_INPUT']);
    const malformed = await t.gql(AUDIT_PAGE, { id: a.install.id, first: 1, after: 'not-a-cursor' }, { token: adminToken });
    expect(errorCodes(malformed)).toEqual(['BAD_USER_INPUT']);
  });
});

describe('refused writes leave no audit event', () => {
  it('records nothing for RevisionMismatch, QuotaExceeded, ValidationFailed, LimitExceeded or a rolled-back bulk write', async () => {
    const ext = await extension(t, { quota: { maxKeysPerNamespace: 2 } });
    const adminToken = await t.adminToken();
    expect((await ext.put({ namespace: 'n', key: 'a', value: 'a' })).__typename).toBe('PutRecordSuccess');
    expect((await ext.put({ namespace: 'n', key: 'b', value: 'b' })).__typename).toBe('PutRecordSuccess');
    const schema = await t.gql(SET_SCHEMA, { input: { installId: ext.install.id, namespace: 'typed', schema: { type: 'integer' } } }, { token: adminToken });
    expect(dataOf(schema).setNamespaceSchema.__typename).toBe('SetNamespaceSchemaSuccess');
    const before = await auditEvents(t, ext.install.id);
    const usageBefore = await ext.usage('n');

    const refusals: Array<[string, () => Promise<{ __typename: string }>]> = [
      ['RevisionMismatch', () => ext.put({ namespace: 'n', key: 'a', value: 'x', ifRevision: 5 })],
      ['RevisionMismatch', () => ext.put({ namespace: 'n', key: 'a', value: 'x', ifRevision: 0 })],
      ['QuotaExceeded', () => ext.put({ namespace: 'n', key: 'c', value: 'c' })],
      ['ValidationFailed', () => ext.put({ namespace: 'typed', key: 'v', value: 'not an integer' })],
      ['LimitExceeded', () => ext.put({ namespace: 'n', key: 'a', value: 1, metadata: [1] })],
      ['LimitExceeded', () => ext.put({ namespace: 'n', key: 'k'.repeat(257), value: 1 })],
      ['LimitExceeded', () => ext.put({ namespace: 'n', key: 'a', value: 1, ttlSeconds: 999_999_999 })],
      // Rolled back inside the transaction: the first item alone would have been written.
      ['RevisionMismatch', () => ext.bulk('n', [{ key: 'a', value: 'new' }, { key: 'b', value: 'new', ifRevision: 9 }])],
      ['QuotaExceeded', () => ext.bulk('n', [{ key: 'a', value: 'new' }, { key: 'c', value: 'c' }])],
      ['ValidationFailed', () => ext.bulk('typed', [{ key: 'x', value: 1 }, { key: 'y', value: 'two' }])],
    ];
    for (const [expected, write] of refusals) expect((await write()).__typename).toBe(expected);
    const conditionalDelete = dataOf(await ext.gql(DELETE, { input: { namespace: 'n', key: 'a', ifRevision: 7 } })).deleteRecord;
    expect(conditionalDelete.__typename).toBe('RevisionMismatch');

    expect(await auditEvents(t, ext.install.id)).toEqual(before);
    expect(await ext.usage('n')).toEqual(usageBefore);
    expect((await ext.records('n', ['a', 'b', 'c'])).map((r) => r && { value: r.value, revision: r.revision })).toEqual([
      { value: 'a', revision: 1 },
      { value: 'b', revision: 1 },
      null,
    ]);
    expect(await ext.records('typed', ['v', 'x', 'y'])).toEqual([null, null, null]);
  });
});

describe('who may read the audit log', () => {
  it('answers an extension token asking for its own audit log with FORBIDDEN and no events', async () => {
    const ext = await extension(t);
    await ext.put({ namespace: 'secret', key: 'k', value: 'v' });
    const res = await ext.gql('{ install { id auditLog { edges { node { actor operation key } } } } }');
    expect(errorCodes(res)).toEqual(['FORBIDDEN']);
    expect(res.body.data?.install ?? null).toBeNull();
    expect(JSON.stringify(res.body)).not.toContain('putRecord');
  });

  it('answers the Runner asking for the audit log with FORBIDDEN', async () => {
    const ext = await extension(t);
    await ext.put({ namespace: 'secret', key: 'k', value: 'v' });
    const res = await t.gql('{ install { auditLog { edges { node { operation } } } } }', {}, {
      headers: { 'x-runner-auth': t.runnerToken, 'x-install-id': ext.install.id },
    });
    expect(errorCodes(res)).toEqual(['FORBIDDEN']);
    expect(res.body.data?.install ?? null).toBeNull();
  });
});
