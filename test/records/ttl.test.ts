import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { auditEvents, dataOf, extensionClient, sleep, type ExtensionClient } from './client.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ STORAGE_MIN_TTL_SECONDS: '1' });
});
afterAll(async () => {
  await t?.close();
});

/** Long enough for a 1-second TTL to pass, measured from the write's response. */
const PAST_ONE_SECOND = 1300;

/** Every read surface of one key in one request. */
const LOOK = `query Look($ns: String!, $key: String!) {
  record(namespace: $ns, key: $key) { key revision }
  records(namespace: $ns, keys: [$key, "live", $key]) { key }
  recordList(namespace: $ns, first: 100) { edges { node { key } } }
  install {
    usage { namespaces keys bytes }
    namespaces { name keyCount }
    namespace(name: $ns) { keyCount bytesUsed record(key: $key) { key } }
  }
}`;

async function look(c: ExtensionClient, ns: string, key: string) {
  return dataOf(await c.gql(LOOK, { ns, key }));
}

/** Physically stored rows of a key, expired or not. */
async function storedRows(c: ExtensionClient, namespace: string, key: string): Promise<number> {
  const rows = await t.database.handle.db
    .selectFrom('ext_storage_records')
    .select('key')
    .where('tenant_id', '=', c.install.tenantId)
    .where('install_id', '=', c.install.id)
    .where('namespace', '=', namespace)
    .where('key', '=', key)
    .execute();
  return rows.length;
}

describe('an expired record is invisible at once', () => {
  it('to record, records, recordList, usage, namespaces and keyCount, before any sweep', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'live', value: 'stays' });
    await c.put({ namespace: 'gone', key: 'only', value: 'brief', ttlSeconds: 1 });
    await c.put({ namespace: 'ns', key: 'brief', value: 'brief', ttlSeconds: 1 });

    const during = await look(c, 'ns', 'brief');
    expect(during.record).toEqual({ key: 'brief', revision: 1 });
    expect(during.records).toEqual([{ key: 'brief' }, { key: 'live' }, { key: 'brief' }]);
    expect(during.recordList.edges.map((e: { node: { key: string } }) => e.node.key)).toEqual(['brief', 'live']);
    expect(during.install.usage.keys).toBe(3);
    expect(during.install.usage.namespaces).toBe(2);
    expect(during.install.namespace.keyCount).toBe(2);

    await sleep(PAST_ONE_SECOND);
    const after = await look(c, 'ns', 'brief');
    expect(after.record).toBeNull();
    expect(after.records).toEqual([null, { key: 'live' }, null]);
    expect(after.recordList.edges.map((e: { node: { key: string } }) => e.node.key)).toEqual(['live']);
    const liveBytes = Buffer.byteLength(JSON.stringify('stays')) + 2;
    expect(after.install.usage).toEqual({ namespaces: 1, keys: 1, bytes: liveBytes });
    expect(after.install.namespaces).toEqual([{ name: 'ns', keyCount: 1 }]);
    expect(after.install.namespace).toEqual({ keyCount: 1, bytesUsed: liveBytes, record: null });
    // Nothing was swept: the rows are still stored, only hidden.
    expect(await storedRows(c, 'ns', 'brief')).toBe(1);
  });

  it('to writes: ifRevision 0 succeeds at revision 1, ifRevision n sees no record, delete finds nothing', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'a', value: 1 });
    await c.put({ namespace: 'ns', key: 'a', value: 2, ttlSeconds: 1 });
    await c.put({ namespace: 'ns', key: 'b', value: 1, ttlSeconds: 1 });
    await c.put({ namespace: 'ns', key: 'c', value: 1, ttlSeconds: 1 });
    await sleep(PAST_ONE_SECOND);

    expect(await c.put({ namespace: 'ns', key: 'a', value: 'again', ifRevision: 0 })).toMatchObject({
      __typename: 'PutRecordSuccess',
      record: { revision: 1, value: 'again', ttlExpiresAt: null },
    });
    expect(await c.put({ namespace: 'ns', key: 'b', value: 'x', ifRevision: 1 })).toMatchObject({ __typename: 'RevisionMismatch', currentRevision: null });
    expect(await c.del({ namespace: 'ns', key: 'c' })).toMatchObject({ __typename: 'DeleteRecordSuccess', deleted: false });
    expect(await c.del({ namespace: 'ns', key: 'c', ifRevision: 1 })).toMatchObject({ __typename: 'RevisionMismatch', currentRevision: null });
    expect(await c.put({ namespace: 'ns', key: 'c', value: 'new' })).toMatchObject({ record: { revision: 1 } });
    expect((await c.usage('ns')).usage.keys).toBe(2);
  });

  it('to quotas: an expired key does not count toward keysPerNamespace', async () => {
    const c = await extensionClient(t, { quota: { maxKeysPerNamespace: 1 } });
    await c.put({ namespace: 'ns', key: 'old', value: 1, ttlSeconds: 1 });
    expect(await c.put({ namespace: 'ns', key: 'blocked', value: 1 })).toMatchObject({ __typename: 'QuotaExceeded', quota: 'keysPerNamespace' });
    await sleep(PAST_ONE_SECOND);
    expect(await c.put({ namespace: 'ns', key: 'new', value: 1 })).toMatchObject({ __typename: 'PutRecordSuccess' });
    expect((await c.usage('ns')).usage.keys).toBe(1);
  });
});

describe('a put replaces the TTL', () => {
  it('a put without ttlSeconds clears an earlier TTL, and the record outlives the old expiry', async () => {
    const c = await extensionClient(t);
    const first = await c.put({ namespace: 'ns', key: 'k', value: 1, ttlSeconds: 1 });
    expect(first.record.ttlExpiresAt).not.toBeNull();
    const second = await c.put({ namespace: 'ns', key: 'k', value: 2 });
    expect(second.record).toMatchObject({ revision: 2, ttlExpiresAt: null });
    await sleep(PAST_ONE_SECOND);
    expect(await c.get('ns', 'k')).toMatchObject({ value: 2, revision: 2, ttlExpiresAt: null });
  });

  it('a put with a new ttlSeconds moves the expiry', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'k', value: 1, ttlSeconds: 1 });
    const longer = await c.put({ namespace: 'ns', key: 'k', value: 2, ttlSeconds: 3600 });
    expect(Date.parse(longer.record.ttlExpiresAt) - Date.parse(longer.record.updatedAt)).toBe(3_600_000);
    await sleep(PAST_ONE_SECOND);
    expect(await c.get('ns', 'k')).toMatchObject({ value: 2, revision: 2 });
  });
});

describe('expired records are swept by later writes to the same install', () => {
  it('a write elsewhere in the install removes them, gives back usage and logs ttlExpire by "system"', async () => {
    const c = await extensionClient(t);
    const other = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'doomed', value: { big: 'x'.repeat(50) }, ttlSeconds: 1 });
    await other.put({ namespace: 'ns', key: 'doomed', value: 'other install', ttlSeconds: 1 });
    await sleep(PAST_ONE_SECOND);
    expect(await storedRows(c, 'ns', 'doomed')).toBe(1);

    // A write to another namespace of the same install sweeps.
    await c.put({ namespace: 'elsewhere', key: 'trigger', value: true });
    expect(await storedRows(c, 'ns', 'doomed')).toBe(0);
    // The other install was not touched.
    expect(await storedRows(other, 'ns', 'doomed')).toBe(1);

    const events = await auditEvents(t, c.install);
    const expiry = events.filter((e) => e.operation === 'ttlExpire');
    expect(expiry).toEqual([
      {
        actor: 'system',
        operation: 'ttlExpire',
        namespace: 'ns',
        key: 'doomed',
        revision: null,
        bytesDelta: -(Buffer.byteLength(JSON.stringify({ big: 'x'.repeat(50) })) + 2),
      },
    ]);
    // The usage stays exact once the counters were adjusted by the sweep.
    expect((await c.usage('ns')).usage).toEqual({ namespaces: 1, keys: 1, bytes: Buffer.byteLength('true') + 2 });

    // The core sees the same audit trail.
    const scope = await t.app.storage.resolveInstall(t.adminCaller(), c.install.id, 'inspect');
    const page = await t.app.storage.auditLog(t.adminCaller(), scope, 100, null);
    expect(page.items.filter((e) => e.operation === 'ttlExpire').map((e) => [e.actor, e.key])).toEqual([['system', 'doomed']]);
  });

  it('re-creating an expired key sweeps the old row in the same write and counts it once', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'k', value: 'old', ttlSeconds: 1 });
    await sleep(PAST_ONE_SECOND);
    expect(await c.put({ namespace: 'ns', key: 'k', value: 'new' })).toMatchObject({ record: { revision: 1, value: 'new' } });
    expect(await storedRows(c, 'ns', 'k')).toBe(1);
    expect((await c.usage('ns')).usage).toEqual({ namespaces: 1, keys: 1, bytes: Buffer.byteLength('"new"') + 2 });
    const events = (await auditEvents(t, c.install)).filter((e) => e.key === 'k'); // newest first
    expect(events.map((e) => [e.operation, e.revision])).toEqual([
      ['putRecord', 1],
      ['ttlExpire', null],
      ['putRecord', 1],
    ]);
    expect(events[1]!.actor).toBe('system');
  });
});

describe('concurrent re-creation of an expired key', () => {
  it('of 12 racing create-only writers exactly one wins, at revision 1', async () => {
    const c = await extensionClient(t);
    for (let n = 0; n < 3; n++) await c.put({ namespace: 'ns', key: 'k', value: n, ttlSeconds: 1 });
    await sleep(PAST_ONE_SECOND);
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, writer) => c.put({ namespace: 'ns', key: 'k', value: { writer }, ifRevision: 0 })),
    );
    const winners = results.filter((r) => r.__typename === 'PutRecordSuccess');
    expect(winners).toHaveLength(1);
    expect(winners[0]!.record.revision).toBe(1);
    for (const loser of results.filter((r) => r.__typename !== 'PutRecordSuccess')) {
      expect(loser).toMatchObject({ __typename: 'RevisionMismatch', expectedRevision: 0, currentRevision: 1 });
    }
    expect(await c.get('ns', 'k')).toMatchObject({ revision: 1, value: winners[0]!.record.value });
    expect((await c.usage('ns')).usage.keys).toBe(1);
    expect((await auditEvents(t, c.install)).filter((e) => e.operation === 'ttlExpire')).toHaveLength(1);
  });
});
