import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { auditEvents, BULK, dataOf, errorOf, extensionClient, type ExtensionClient } from './client.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

const MIB = 1024 * 1024;

/** A string value whose compact JSON (with its quotes) is exactly `bytes` bytes. */
const valueOfBytes = (bytes: number) => 'x'.repeat(bytes - 2);

/** The state a refused batch must leave untouched. */
async function snapshot(c: ExtensionClient, keys: string[]) {
  return {
    records: await c.getMany('ns', keys),
    usage: await c.usage('ns'),
    audit: await auditEvents(t, c.install),
  };
}

const items5 = () => [0, 1, 2, 3, 4].map((i) => ({ key: `item-${i}`, value: { i } }));

describe('bulkPutRecords atomicity', () => {
  const failures: Array<{ kind: string; spoil(item: Record<string, unknown>): void; expected: Record<string, unknown> }> = [
    {
      kind: 'a stale ifRevision',
      spoil: (item) => Object.assign(item, { key: 'held', ifRevision: 5 }),
      expected: { __typename: 'RevisionMismatch', key: 'held', expectedRevision: 5, currentRevision: 1 },
    },
    {
      kind: 'an ifRevision on a missing key',
      spoil: (item) => Object.assign(item, { ifRevision: 1 }),
      expected: { __typename: 'RevisionMismatch', key: 'item-3', expectedRevision: 1, currentRevision: null },
    },
    {
      kind: 'ifRevision 0 on an existing key',
      spoil: (item) => Object.assign(item, { key: 'held', ifRevision: 0 }),
      expected: { __typename: 'RevisionMismatch', key: 'held', expectedRevision: 0, currentRevision: 1 },
    },
    {
      kind: 'an oversize value',
      spoil: (item) => Object.assign(item, { value: valueOfBytes(65_537) }),
      expected: { __typename: 'LimitExceeded', limit: 'valueBytes', max: 65_536, actual: 65_537, itemIndex: 3 },
    },
    {
      kind: 'oversize metadata',
      spoil: (item) => Object.assign(item, { metadata: { m: 'x'.repeat(5000) } }),
      expected: { __typename: 'LimitExceeded', limit: 'metadataBytes', max: 4096, itemIndex: 3 },
    },
    {
      kind: 'a bad key',
      spoil: (item) => Object.assign(item, { key: 'bad\u0001key' }),
      expected: { __typename: 'LimitExceeded', limit: 'keyFormat', itemIndex: 3 },
    },
    {
      kind: 'an empty key',
      spoil: (item) => Object.assign(item, { key: '' }),
      expected: { __typename: 'LimitExceeded', limit: 'keyLength', itemIndex: 3 },
    },
    {
      kind: 'a TTL out of range',
      spoil: (item) => Object.assign(item, { ttlSeconds: 1 }),
      expected: { __typename: 'LimitExceeded', limit: 'ttlSeconds', itemIndex: 3 },
    },
    {
      kind: 'a value containing U+0000',
      spoil: (item) => Object.assign(item, { value: { s: 'a\u0000b' } }),
      expected: { __typename: 'LimitExceeded', limit: 'valueFormat', itemIndex: 3 },
    },
    {
      kind: 'a key of 257 characters',
      spoil: (item) => Object.assign(item, { key: 'k'.repeat(257) }),
      expected: { __typename: 'LimitExceeded', limit: 'keyLength', max: 256, actual: 257, itemIndex: 3 },
    },
    {
      kind: 'metadata that is not an object',
      spoil: (item) => Object.assign(item, { metadata: ['a'] }),
      expected: { __typename: 'LimitExceeded', limit: 'metadataType', itemIndex: 3 },
    },
  ];

  it.each(failures)('a batch whose item 3 fails with $kind writes nothing', async ({ spoil, expected }) => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'existing', value: 'original' });
    await c.put({ namespace: 'ns', key: 'held', value: 'held' });
    const items: Array<Record<string, unknown>> = items5();
    items[0] = { key: 'existing', value: 'overwritten' };
    spoil(items[3]!);
    const keys = ['existing', 'held', ...items5().map((i) => i.key)];
    const before = await snapshot(c, keys);

    expect(await c.bulk('ns', items)).toMatchObject({ code: expect.any(String), message: expect.any(String), ...expected });

    expect(await snapshot(c, keys)).toEqual(before);
    expect(before.records.slice(0, 2)).toMatchObject([{ value: 'original', revision: 1 }, { value: 'held', revision: 1 }]);
    expect(before.usage.usage.keys).toBe(2);
  });

  it('a batch whose item 2 fails the namespace schema writes nothing and the issue path starts with /2', async () => {
    const c = await extensionClient(t);
    const admin = await t.adminToken();
    const schema = dataOf(
      await t.gql(
        `mutation($input: SetNamespaceSchemaInput!) { setNamespaceSchema(input: $input) { __typename } }`,
        { input: { installId: c.install.id, namespace: 'ns', schema: { type: 'object', required: ['i'], properties: { i: { type: 'integer' } } } } },
        { token: admin },
      ),
    );
    expect(schema.setNamespaceSchema.__typename).toBe('SetNamespaceSchemaSuccess');
    const items: Array<Record<string, unknown>> = items5();
    items[2] = { key: 'item-2', value: { i: 'two' } };
    const result = await c.bulk('ns', items);
    expect(result).toMatchObject({ __typename: 'ValidationFailed', schemaVersion: 1 });
    expect(result.issues.length).toBeGreaterThan(0);
    for (const issue of result.issues) expect(issue.path).toMatch(/^\/2(\/|$)/);
    expect((await c.getMany('ns', items5().map((i) => i.key))).every((r) => r === null)).toBe(true);
  });
});

describe('bulkPutRecords bad input', () => {
  it('a negative ifRevision in any item is a GraphQL error BAD_USER_INPUT and writes nothing', async () => {
    const c = await extensionClient(t);
    const res = await c.gql(BULK, { input: { namespace: 'ns', items: [{ key: 'a', value: 1 }, { key: 'b', value: 2, ifRevision: -1 }] } });
    expect(errorOf(res).extensions.code).toBe('BAD_USER_INPUT');
    expect(await c.getMany('ns', ['a', 'b'])).toEqual([null, null]);
  });
});

describe('concurrent bulk writes', () => {
  it('10 racing batches over the same keys each apply whole: every key ends at revision 10 with the value of one batch', async () => {
    const c = await extensionClient(t);
    const keys = ['a', 'b', 'c', 'd', 'e'];
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, batch) => c.bulk('ns', keys.map((key) => ({ key, value: { batch } })))),
    );
    expect(results.every((r) => r.__typename === 'BulkPutRecordsSuccess')).toBe(true);
    // Each batch saw one consistent state: all its items got the same revision.
    const revisions = results.map((r) => {
      const revs = new Set(r.records.map((rec: { revision: number }) => rec.revision));
      expect(revs.size).toBe(1);
      return [...revs][0] as number;
    });
    expect(revisions.sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const last = results.find((r) => r.records[0].revision === 10)!;
    const final = await c.getMany('ns', keys);
    expect(final.map((r) => r!.revision)).toEqual([10, 10, 10, 10, 10]);
    expect(final.map((r) => r!.value)).toEqual(keys.map(() => last.records[0].value));
  });
});

describe('bulkPutRecords success', () => {
  it('returns the records in input order with their revisions', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'c', value: 'c1' });
    await c.put({ namespace: 'ns', key: 'c', value: 'c2' });
    await c.put({ namespace: 'ns', key: 'b', value: 'b1' });
    const result = await c.bulk('ns', [
      { key: 'c', value: 'c3', ifRevision: 2 },
      { key: 'a', value: 'a1', ifRevision: 0, metadata: { tag: 1 } },
      { key: 'b', value: 'b2' },
      { key: 'd', value: 'd1' },
    ]);
    expect(result.__typename).toBe('BulkPutRecordsSuccess');
    expect(result.records.map((r: { key: string; value: unknown; revision: number; namespace: string }) => [r.namespace, r.key, r.value, r.revision])).toEqual([
      ['ns', 'c', 'c3', 3],
      ['ns', 'a', 'a1', 1],
      ['ns', 'b', 'b2', 2],
      ['ns', 'd', 'd1', 1],
    ]);
    expect(result.records[1].metadata).toEqual({ tag: 1 });
    expect(result.records[0].metadata).toEqual({});
    expect((await c.getMany('ns', ['a', 'b', 'c', 'd'])).map((r) => r?.revision)).toEqual([1, 2, 3, 1]);
  });

  it('appends one bulkPutRecords audit event per item and moves usage by the batch', async () => {
    const c = await extensionClient(t);
    const items = [
      { key: 'x', value: 'xx' },
      { key: 'y', value: [1, 2] },
      { key: 'z', value: { z: true }, metadata: { m: 1 } },
    ];
    await c.bulk('ns', items);
    const events = (await auditEvents(t, c.install)).filter((e) => e.operation === 'bulkPutRecords');
    expect(events.map((e) => e.key).sort()).toEqual(['x', 'y', 'z']);
    for (const e of events) expect(e).toMatchObject({ namespace: 'ns', revision: 1 });
    const bytes = items.reduce((s, i) => s + Buffer.byteLength(JSON.stringify(i.value)) + Buffer.byteLength(JSON.stringify(i.metadata ?? {})), 0);
    expect(events.reduce((s, e) => s + e.bytesDelta, 0)).toBe(bytes);
    expect((await c.usage('ns')).usage).toEqual({ namespaces: 1, keys: 3, bytes });
  });

  it('takes 100 items', async () => {
    const c = await extensionClient(t);
    const result = await c.bulk('ns', Array.from({ length: 100 }, (_, i) => ({ key: `k${i}`, value: i })));
    expect(result.__typename).toBe('BulkPutRecordsSuccess');
    expect(result.records).toHaveLength(100);
    expect((await c.usage('ns')).namespace.keyCount).toBe(100);
  });

  it('takes a batch of exactly 1 MiB', async () => {
    const c = await extensionClient(t);
    // 16 items of 65,534 value bytes + 2 metadata bytes ({}) = 1,048,576 bytes.
    const items = Array.from({ length: 16 }, (_, i) => ({ key: `k${i}`, value: valueOfBytes(65_534) }));
    const result = await c.bulk('ns', items);
    expect(result.__typename).toBe('BulkPutRecordsSuccess');
    expect((await c.usage('ns')).usage.bytes).toBe(MIB);
  });
});

describe('bulkPutRecords limits', () => {
  it('refuses duplicate keys with bulkDuplicateKey naming the repeated item', async () => {
    const c = await extensionClient(t);
    const result = await c.bulk('ns', [
      { key: 'a', value: 1 },
      { key: 'b', value: 2 },
      { key: 'a', value: 3 },
    ]);
    expect(result).toMatchObject({ __typename: 'LimitExceeded', code: 'LIMIT_EXCEEDED', limit: 'bulkDuplicateKey', itemIndex: 2 });
    expect(await c.getMany('ns', ['a', 'b'])).toEqual([null, null]);
  });

  it('refuses an empty batch with bulkItems', async () => {
    const c = await extensionClient(t);
    expect(await c.bulk('ns', [])).toMatchObject({ __typename: 'LimitExceeded', limit: 'bulkItems', max: 100, actual: 0 });
  });

  it('refuses 101 items with bulkItems and writes nothing', async () => {
    const c = await extensionClient(t);
    const result = await c.bulk('ns', Array.from({ length: 101 }, (_, i) => ({ key: `k${i}`, value: i })));
    expect(result).toMatchObject({ __typename: 'LimitExceeded', limit: 'bulkItems', max: 100, actual: 101 });
    expect((await c.usage('ns')).usage.keys).toBe(0);
  });

  it('refuses a batch over 1 MiB with bulkBytes carrying the batch size, and writes nothing', async () => {
    const c = await extensionClient(t);
    // 20 items of 60 KB values: 20 × (60,002 + 2) bytes.
    const twenty = Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, value: 'x'.repeat(60_000) }));
    expect(await c.bulk('ns', twenty)).toMatchObject({ __typename: 'LimitExceeded', limit: 'bulkBytes', max: MIB, actual: 20 * 60_004 });
    // One byte over: 16 items of 65,536 stored bytes, one carrying one byte of metadata more.
    const sixteen: Array<Record<string, unknown>> = Array.from({ length: 16 }, (_, i) => ({ key: `k${i}`, value: valueOfBytes(65_534) }));
    sixteen[7] = { key: 'k7', value: valueOfBytes(65_533), metadata: { a: 1 } }; // 65,533 + 7 = 65,540: 4 bytes over
    sixteen[8] = { key: 'k8', value: valueOfBytes(65_531) }; // 65,531 + 2: 3 bytes under
    expect(await c.bulk('ns', sixteen)).toMatchObject({ __typename: 'LimitExceeded', limit: 'bulkBytes', max: MIB, actual: MIB + 1 });
    expect((await c.usage('ns')).usage).toEqual({ namespaces: 0, keys: 0, bytes: 0 });
  });

  it('counts multi-byte characters as their UTF-8 bytes toward bulkBytes', async () => {
    const c = await extensionClient(t);
    // 'é' is 2 bytes: 17 items of 32,000 é = 17 × (64,002 + 2) = 1,088,068 bytes, though only 544,034 UTF-16 units.
    const items = Array.from({ length: 17 }, (_, i) => ({ key: `k${i}`, value: 'é'.repeat(32_000) }));
    expect(await c.bulk('ns', items)).toMatchObject({ __typename: 'LimitExceeded', limit: 'bulkBytes', actual: 17 * 64_004 });
  });
});

describe('bulkPutRecords error order', () => {
  it('bulkItems comes before duplicate keys', async () => {
    const c = await extensionClient(t);
    const items = Array.from({ length: 101 }, () => ({ key: 'same', value: 1 }));
    expect(await c.bulk('ns', items)).toMatchObject({ limit: 'bulkItems' });
  });

  it('duplicate keys come before a per-item format problem', async () => {
    const c = await extensionClient(t);
    const result = await c.bulk('ns', [
      { key: 'bad\u0001', value: 1 },
      { key: 'a', value: 1 },
      { key: 'a', value: 2 },
    ]);
    expect(result).toMatchObject({ limit: 'bulkDuplicateKey', itemIndex: 2 });
  });

  it('a format problem in any item comes before a size problem in an earlier item', async () => {
    const c = await extensionClient(t);
    const result = await c.bulk('ns', [
      { key: 'ok', value: 1 },
      { key: 'big', value: valueOfBytes(70_000) },
      { key: 'fine', value: 2 },
      { key: '', value: 3 },
    ]);
    expect(result).toMatchObject({ limit: 'keyLength', itemIndex: 3 });
  });

  it('a per-item size problem comes before bulkBytes', async () => {
    const c = await extensionClient(t);
    const items: Array<Record<string, unknown>> = Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, value: 'x'.repeat(60_000) }));
    items[12] = { key: 'k12', value: valueOfBytes(65_537) };
    expect(await c.bulk('ns', items)).toMatchObject({ limit: 'valueBytes', itemIndex: 12, actual: 65_537 });
  });

  it('bulkBytes comes before a stale revision', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'k0', value: 0 });
    const items: Array<Record<string, unknown>> = Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, value: 'x'.repeat(60_000) }));
    items[0] = { ...items[0], ifRevision: 9 };
    expect(await c.bulk('ns', items)).toMatchObject({ __typename: 'LimitExceeded', limit: 'bulkBytes' });
  });
});
