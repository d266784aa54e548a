import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { auditEvents, dataOf, errorOf, extensionClient, PUT, type ExtensionClient } from './client.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

/** Refused writes leave no trace: no record, no usage, no audit event. */
async function expectNothingStored(c: ExtensionClient) {
  expect((await c.usage('ns')).usage).toEqual({ namespaces: 0, keys: 0, bytes: 0 });
  expect((await auditEvents(t, c.install)).filter((e) => e.operation !== 'upsertInstall')).toEqual([]);
}

const storedBytes = (value: unknown, metadata: unknown = {}) => Buffer.byteLength(JSON.stringify(value)) + Buffer.byteLength(JSON.stringify(metadata));

describe('valueBytes: a value is at most 65,536 UTF-8 bytes of compact JSON', () => {
  it('takes 65,536 bytes and refuses 65,537 with max and actual', async () => {
    const c = await extensionClient(t);
    const ok = await c.put({ namespace: 'ns', key: 'max', value: 'x'.repeat(65_534) });
    expect(ok.__typename).toBe('PutRecordSuccess');
    const refused = await c.put({ namespace: 'ns', key: 'over', value: 'x'.repeat(65_535) });
    expect(refused).toMatchObject({ __typename: 'LimitExceeded', code: 'LIMIT_EXCEEDED', limit: 'valueBytes', max: 65_536, actual: 65_537, itemIndex: null });
    expect(await c.get('ns', 'over')).toBeNull();
    expect((await c.usage('ns')).usage).toEqual({ namespaces: 1, keys: 1, bytes: 65_536 + 2 });
  });

  it('counts multi-byte characters by their UTF-8 bytes', async () => {
    const c = await extensionClient(t);
    // é is 2 bytes: 32,767 of them + 2 quotes = 65,536; one more é is 65,538 though only 32,768 UTF-16 units.
    expect((await c.put({ namespace: 'ns', key: 'e-max', value: 'é'.repeat(32_767) })).__typename).toBe('PutRecordSuccess');
    expect(await c.put({ namespace: 'ns', key: 'e-over', value: 'é'.repeat(32_768) })).toMatchObject({ limit: 'valueBytes', actual: 65_538 });
    // 😀 is 4 bytes (2 UTF-16 units): 16,384 of them = 65,538 bytes.
    expect(await c.put({ namespace: 'ns', key: 'emoji', value: '😀'.repeat(16_384) })).toMatchObject({ limit: 'valueBytes', actual: 65_538 });
  });

  it('counts JSON escapes and the compact text of objects, not the caller\'s formatting', async () => {
    const c = await extensionClient(t);
    // A quote is escaped as \" (2 bytes): 32,767 quotes + 2 = 65,536.
    expect((await c.put({ namespace: 'ns', key: 'quotes', value: '"'.repeat(32_767) })).__typename).toBe('PutRecordSuccess');
    expect(await c.put({ namespace: 'ns', key: 'quotes2', value: '"'.repeat(32_768) })).toMatchObject({ limit: 'valueBytes', actual: 65_538 });
    // {"a":"…"} is 8 bytes of structure.
    expect((await c.put({ namespace: 'ns', key: 'obj', value: { a: 'x'.repeat(65_528) } })).__typename).toBe('PutRecordSuccess');
    expect(await c.put({ namespace: 'ns', key: 'obj2', value: { a: 'x'.repeat(65_529) } })).toMatchObject({ limit: 'valueBytes', actual: 65_537 });
  });

  it('stores bytes = value size + metadata size, metadata defaulting to {}', async () => {
    const c = await extensionClient(t);
    const value = { a: [1, 2, { b: 'é😀' }], c: null };
    const metadata = { tag: 'x', n: 1 };
    await c.put({ namespace: 'ns', key: 'k1', value, metadata });
    await c.put({ namespace: 'ns', key: 'k2', value: 'plain' });
    const expected = storedBytes(value, metadata) + storedBytes('plain');
    expect((await c.usage('ns')).usage.bytes).toBe(expected);
    expect((await c.usage('ns')).namespace.bytesUsed).toBe(expected);
  });

  it('follows a per-install maxValueBytes override', async () => {
    const c = await extensionClient(t, { quota: { maxValueBytes: 100 } });
    expect((await c.put({ namespace: 'ns', key: 'k', value: 'x'.repeat(98) })).__typename).toBe('PutRecordSuccess');
    expect(await c.put({ namespace: 'ns', key: 'k2', value: 'x'.repeat(99) })).toMatchObject({ limit: 'valueBytes', max: 100, actual: 101 });
  });
});

describe('metadataBytes and metadataType', () => {
  it('takes 4,096 bytes of metadata and refuses 4,097 with max and actual', async () => {
    const c = await extensionClient(t);
    // {"m":"…"} is 8 bytes of structure.
    expect((await c.put({ namespace: 'ns', key: 'ok', value: 1, metadata: { m: 'x'.repeat(4088) } })).__typename).toBe('PutRecordSuccess');
    expect(await c.put({ namespace: 'ns', key: 'over', value: 1, metadata: { m: 'x'.repeat(4089) } })).toMatchObject({
      __typename: 'LimitExceeded',
      limit: 'metadataBytes',
      max: 4096,
      actual: 4097,
    });
    expect(await c.get('ns', 'over')).toBeNull();
  });

  it('refuses metadata that is not a JSON object with metadataType', async () => {
    const c = await extensionClient(t);
    for (const metadata of [['a', 'b'], [], 'a string', 42, true]) {
      expect(await c.put({ namespace: 'ns', key: 'k', value: 1, metadata })).toMatchObject({ __typename: 'LimitExceeded', limit: 'metadataType' });
    }
    await expectNothingStored(c);
  });
});

describe('keyLength and keyFormat', () => {
  it('takes 256 code points, astral characters counting as one, and refuses 257', async () => {
    const c = await extensionClient(t);
    const astral = '😀'.repeat(256); // 512 UTF-16 units, 256 code points
    expect((await c.put({ namespace: 'ns', key: 'a'.repeat(256), value: 1 })).__typename).toBe('PutRecordSuccess');
    expect((await c.put({ namespace: 'ns', key: astral, value: 2 })).__typename).toBe('PutRecordSuccess');
    expect(await c.get('ns', astral)).toMatchObject({ key: astral, value: 2 });
    expect(await c.put({ namespace: 'ns', key: 'a'.repeat(257), value: 1 })).toMatchObject({ __typename: 'LimitExceeded', limit: 'keyLength', max: 256, actual: 257 });
    expect(await c.put({ namespace: 'ns', key: '😀'.repeat(257), value: 1 })).toMatchObject({ limit: 'keyLength', max: 256, actual: 257 });
  });

  it('refuses an empty key with keyLength', async () => {
    const c = await extensionClient(t);
    expect(await c.put({ namespace: 'ns', key: '', value: 1 })).toMatchObject({ __typename: 'LimitExceeded', limit: 'keyLength', actual: 0 });
    await expectNothingStored(c);
  });

  it('refuses control characters and lone surrogates with keyFormat', async () => {
    const c = await extensionClient(t);
    for (const key of ['a\u0001b', 'a\u007fb', '\u001f', 'line\nbreak', 'tab\t', 'nul\u0000', 'lone\ud800', '\udc00tail']) {
      expect(await c.put({ namespace: 'ns', key, value: 1 }), JSON.stringify(key)).toMatchObject({ __typename: 'LimitExceeded', limit: 'keyFormat' });
    }
    await expectNothingStored(c);
  });

  it('takes slashes, spaces, punctuation and non-Latin scripts', async () => {
    const c = await extensionClient(t);
    for (const key of ['a/b/c', '/', 'with space', "quote'\"", '%_\\', 'שלום', '中文', '\u0080', '\u00a0']) {
      expect((await c.put({ namespace: 'ns', key, value: key })).__typename, JSON.stringify(key)).toBe('PutRecordSuccess');
      expect(await c.get('ns', key)).toMatchObject({ key, value: key });
    }
  });
});

describe('namespaceFormat', () => {
  it('refuses names outside ^[a-z0-9][a-z0-9._-]{0,63}$', async () => {
    const c = await extensionClient(t);
    const bad = ['Prefs', '.hidden', '-dash', '_under', 'a'.repeat(65), "x'; drop table--", '', 'a b', 'ns/1', 'é', 'a\u0000'];
    for (const namespace of bad) {
      expect(await c.put({ namespace, key: 'k', value: 1 }), JSON.stringify(namespace)).toMatchObject({ __typename: 'LimitExceeded', limit: 'namespaceFormat' });
    }
    expect((await c.usage('ns')).usage).toEqual({ namespaces: 0, keys: 0, bytes: 0 });
  });

  it('takes names of 1 to 64 allowed characters', async () => {
    const c = await extensionClient(t);
    for (const namespace of ['0', 'a'.repeat(64), 'a.b_c-d', '9lives']) {
      expect((await c.put({ namespace, key: 'k', value: 1 })).__typename, namespace).toBe('PutRecordSuccess');
    }
  });
});

describe('ttlSeconds: 60 s to 30 days by default', () => {
  it('takes the bounds and refuses values outside them', async () => {
    const c = await extensionClient(t);
    for (const ttlSeconds of [60, 2_592_000]) {
      expect((await c.put({ namespace: 'ns', key: `ttl-${ttlSeconds}`, value: 1, ttlSeconds })).__typename).toBe('PutRecordSuccess');
    }
    for (const ttlSeconds of [59, 0, -5, 2_592_001]) {
      expect(await c.put({ namespace: 'ns', key: 'bad', value: 1, ttlSeconds })).toMatchObject({ __typename: 'LimitExceeded', limit: 'ttlSeconds', actual: ttlSeconds });
    }
    expect(await c.get('ns', 'bad')).toBeNull();
  });

  it('sets ttlExpiresAt ttlSeconds after the write', async () => {
    const c = await extensionClient(t);
    const put = await c.put({ namespace: 'ns', key: 'k', value: 1, ttlSeconds: 3600 });
    expect(Date.parse(put.record.ttlExpiresAt) - Date.parse(put.record.updatedAt)).toBe(3_600_000);
    expect((await c.get('ns', 'k'))!.ttlExpiresAt).toBe(put.record.ttlExpiresAt);
  });
});

describe('valueFormat: strings jsonb cannot hold', () => {
  const cases: Array<[string, unknown, unknown]> = [
    ['U+0000 in a top-level string', '\u0000', undefined],
    ['U+0000 inside a nested string', { a: ['ok', 'bad\u0000bad'] }, undefined],
    ['U+0000 in an object key', { 'k\u0000': 1 }, undefined],
    ['a lone high surrogate in a string', '\ud800', undefined],
    ['a lone low surrogate in a nested string', [{ s: 'x\udc00' }], undefined],
    ['a lone surrogate in an object key', { '\ud800': 1 }, undefined],
    ['U+0000 in metadata', 1, { note: '\u0000' }],
    ['a lone surrogate in a metadata key', 1, { '\udfff': true }],
  ];

  it.each(cases)('refuses %s with valueFormat', async (_name, value, metadata) => {
    const c = await extensionClient(t);
    const input: Record<string, unknown> = { namespace: 'ns', key: 'k', value };
    if (metadata !== undefined) input.metadata = metadata;
    // The variables travel as JSON text, so U+0000 arrives as the escape \u0000.
    const res = await c.gql(PUT, { input });
    expect(dataOf(res).putRecord).toMatchObject({ __typename: 'LimitExceeded', code: 'LIMIT_EXCEEDED', limit: 'valueFormat' });
    await expectNothingStored(c);
  });

  it('takes a well-formed surrogate pair and other control characters in strings', async () => {
    const c = await extensionClient(t);
    const value = { emoji: '\ud83d\ude00', controls: '\u0001\u001f\u007f\n\t', [`key\u0001`]: 'ok' };
    expect((await c.put({ namespace: 'ns', key: 'k', value })).__typename).toBe('PutRecordSuccess');
    expect((await c.get('ns', 'k'))!.value).toEqual(value);
  });
});

describe('the order of reports for a write with several problems', () => {
  it('capability comes first: a read-only token gets FORBIDDEN even for a malformed write', async () => {
    const install = await t.createInstall();
    const readOnly = await install.token('storage:read');
    const res = await t.gql(PUT, { input: { namespace: 'BAD', key: '', value: 'x'.repeat(70_000), ifRevision: 5 } }, { token: readOnly });
    expect(errorOf(res).extensions.code).toBe('FORBIDDEN');
  });

  it('a bad key comes before an oversize value', async () => {
    const c = await extensionClient(t);
    expect(await c.put({ namespace: 'ns', key: 'bad\u0001', value: 'x'.repeat(70_000) })).toMatchObject({ limit: 'keyFormat' });
    expect(await c.put({ namespace: 'ns', key: 'a'.repeat(300), value: 'x'.repeat(70_000) })).toMatchObject({ limit: 'keyLength' });
  });

  it('a bad namespace comes before an oversize value', async () => {
    const c = await extensionClient(t);
    expect(await c.put({ namespace: 'NS', key: 'k', value: 'x'.repeat(70_000) })).toMatchObject({ limit: 'namespaceFormat' });
  });

  it('a format problem in the value comes before its size', async () => {
    const c = await extensionClient(t);
    expect(await c.put({ namespace: 'ns', key: 'k', value: `\u0000${'x'.repeat(70_000)}` })).toMatchObject({ limit: 'valueFormat' });
    expect(await c.put({ namespace: 'ns', key: 'k', value: 'x'.repeat(70_000), metadata: 'not an object' })).toMatchObject({ limit: 'metadataType' });
  });

  it('an oversize value comes before a stale revision', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'k', value: 1 });
    await c.put({ namespace: 'ns', key: 'k', value: 2 });
    expect(await c.put({ namespace: 'ns', key: 'k', value: 'x'.repeat(70_000), ifRevision: 1 })).toMatchObject({ __typename: 'LimitExceeded', limit: 'valueBytes' });
    expect(await c.put({ namespace: 'ns', key: 'k', value: 3, ttlSeconds: 5, ifRevision: 1 })).toMatchObject({ __typename: 'LimitExceeded', limit: 'ttlSeconds' });
    expect(await c.put({ namespace: 'ns', key: 'k', value: 3, metadata: { m: 'x'.repeat(5000) }, ifRevision: 1 })).toMatchObject({ limit: 'metadataBytes' });
  });

  it('a stale revision comes before a schema violation, and a schema violation before a quota', async () => {
    const c = await extensionClient(t, { quota: { maxBytes: 50 } });
    const admin = await t.adminToken();
    const set = await t.gql(
      `mutation($input: SetNamespaceSchemaInput!) { setNamespaceSchema(input: $input) { __typename } }`,
      { input: { installId: c.install.id, namespace: 'ns', schema: { type: 'integer' } } },
      { token: admin },
    );
    expect(dataOf(set).setNamespaceSchema.__typename).toBe('SetNamespaceSchemaSuccess');
    await c.put({ namespace: 'ns', key: 'k', value: 1 });
    const bulky = { m: 'x'.repeat(100) }; // metadata is not validated by the schema but counts toward maxBytes
    expect(await c.put({ namespace: 'ns', key: 'k', value: 'not an integer', ifRevision: 7 })).toMatchObject({ __typename: 'RevisionMismatch', currentRevision: 1 });
    expect(await c.put({ namespace: 'ns', key: 'k2', value: 'not an integer', metadata: bulky })).toMatchObject({ __typename: 'ValidationFailed' });
    expect(await c.put({ namespace: 'ns', key: 'k2', value: 2, metadata: bulky })).toMatchObject({ __typename: 'QuotaExceeded', quota: 'bytes', allowed: 50, used: 3 });
    expect(await c.get('ns', 'k')).toMatchObject({ value: 1, revision: 1 });
    expect(await c.get('ns', 'k2')).toBeNull();
  });
});
