import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LimitExceededError } from '../../src/storage/errors.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { BULK, dataOf, errorOf, extensionClient, PUT } from './client.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

function nestedObject(depth: number): unknown {
  let v: unknown = 'bottom';
  for (let i = 0; i < depth; i++) v = { level: depth - i, child: v, nothing: null };
  return v;
}

function nestedArray(depth: number): unknown {
  let v: unknown = [null];
  for (let i = 1; i < depth; i++) v = [i, v];
  return v;
}

const VALUES: Array<[string, unknown]> = [
  ['zero', 0],
  ['a positive integer', 42],
  ['a negative integer', -17],
  ['the largest safe integer', Number.MAX_SAFE_INTEGER],
  ['the smallest safe integer', Number.MIN_SAFE_INTEGER],
  ['a float', 3.141592653589793],
  ['a negative float', -0.5],
  ['a float that is not exact in binary', 0.1],
  ['a tiny float', 1e-7],
  ['a huge float', 1.5e300],
  ['the largest double', Number.MAX_VALUE],
  ['the smallest denormal', Number.MIN_VALUE],
  ['true', true],
  ['false', false],
  ['an empty string', ''],
  ['a string that looks like a number', '42'],
  ['a string "null"', 'null'],
  ['a unicode string', 'héllo wörld ñ ß Ωμέγα 中文 日本語'],
  ['emoji with joiners and modifiers', '👩‍👩‍👧‍👦 👍🏽 🇫🇷'],
  ['a right-to-left string', 'مرحبا بالعالم — שלום עולם \u200f'],
  ['JSON escapes and control characters', '"\\/\b\f\n\r\t \u0001 \u001f \u007f \u2028 \u2029'],
  ['an empty array', []],
  ['nested empty arrays', [[], [[]]]],
  ['a mixed array', [1, 'a', null, true, false, 0.5, {}, [], { k: [null] }]],
  ['an empty object', {}],
  ['an object with null members', { a: null, b: 1, c: { d: null, e: [null, { f: null }] } }],
  ['unicode and empty object keys', { ключ: 1, '🔑': 2, '': 'empty key', 'a b': 3, 'a.b': 4, 'a/b': 5, '\u0001': 6 }],
  ['objects nested 20 deep', nestedObject(20)],
  ['arrays nested 20 deep', nestedArray(20)],
];

describe('JSON values round-trip exactly through GraphQL variables', () => {
  it.each(VALUES)('%s', async (_name, value) => {
    const c = await extensionClient(t);
    const put = await c.put({ namespace: 'ns', key: 'k', value });
    expect(put.__typename).toBe('PutRecordSuccess');
    expect(put.record.value).toStrictEqual(value);
    expect((await c.get('ns', 'k'))!.value).toStrictEqual(value);
    expect((await c.getMany('ns', ['k']))[0]!.value).toStrictEqual(value);
    expect((await c.list('ns')).edges[0]!.node.value).toStrictEqual(value);
    expect((await c.usage('ns')).usage.bytes).toBe(Buffer.byteLength(JSON.stringify(value)) + 2);
  });

  it('every value at once through bulkPutRecords', async () => {
    const c = await extensionClient(t);
    const items = VALUES.map(([name, value]) => ({ key: name, value }));
    const result = await c.bulk('ns', items);
    expect(result.__typename).toBe('BulkPutRecordsSuccess');
    expect(result.records.map((r: { value: unknown }) => r.value)).toStrictEqual(VALUES.map(([, v]) => v));
    const read = await c.getMany('ns', VALUES.map(([name]) => name));
    expect(read.map((r) => r!.value)).toStrictEqual(VALUES.map(([, v]) => v));
  });

  it('inline GraphQL literals as well', async () => {
    const c = await extensionClient(t);
    const res = await c.gql(`mutation {
      putRecord(input: { namespace: "ns", key: "lit", value: { a: 1, b: [true, null, "x", -2.5], c: { d: {} } }, metadata: { m: "é" } }) {
        __typename ... on PutRecordSuccess { record { value metadata } }
      }
    }`);
    expect(dataOf(res).putRecord.record).toStrictEqual({ value: { a: 1, b: [true, null, 'x', -2.5], c: { d: {} } }, metadata: { m: 'é' } });
  });
});

describe('metadata', () => {
  it('round-trips a JSON object', async () => {
    const c = await extensionClient(t);
    const metadata = { tag: 'x', n: 1.5, nested: { list: [1, null, 'ü'] }, nothing: null, '🔑': true };
    const put = await c.put({ namespace: 'ns', key: 'k', value: 1, metadata });
    expect(put.record.metadata).toStrictEqual(metadata);
    expect((await c.get('ns', 'k'))!.metadata).toStrictEqual(metadata);
  });

  it('defaults to {} when omitted or null, and a later put without metadata resets it', async () => {
    const c = await extensionClient(t);
    expect((await c.put({ namespace: 'ns', key: 'omitted', value: 1 })).record.metadata).toStrictEqual({});
    expect((await c.put({ namespace: 'ns', key: 'null', value: 1, metadata: null })).record.metadata).toStrictEqual({});
    await c.put({ namespace: 'ns', key: 'reset', value: 1, metadata: { a: 1 } });
    expect((await c.put({ namespace: 'ns', key: 'reset', value: 2 })).record.metadata).toStrictEqual({});
    expect((await c.getMany('ns', ['omitted', 'null', 'reset'])).map((r) => r!.metadata)).toStrictEqual([{}, {}, {}]);
  });
});

describe('a top-level null value', () => {
  it('is refused by GraphQL coercion (value is JSON!) and writes nothing', async () => {
    const c = await extensionClient(t);
    const viaVariable = await c.gql(PUT, { input: { namespace: 'ns', key: 'k', value: null } });
    expect(errorOf(viaVariable).extensions.code).toBe('BAD_USER_INPUT');
    expect(viaVariable.body.data ?? null).toBeNull();

    const viaBulk = await c.gql(BULK, { input: { namespace: 'ns', items: [{ key: 'a', value: 1 }, { key: 'b', value: null }] } });
    expect(errorOf(viaBulk).extensions.code).toBe('BAD_USER_INPUT');

    const viaLiteral = await c.gql(`mutation { putRecord(input: { namespace: "ns", key: "k", value: null }) { __typename } }`);
    expect(errorOf(viaLiteral).extensions.code).toBe('GRAPHQL_VALIDATION_FAILED');

    expect(await c.getMany('ns', ['k', 'a', 'b'])).toEqual([null, null, null]);
    expect((await c.usage('ns')).usage.keys).toBe(0);
  });

  it('is LimitExceeded valueType in the storage core, and null inside a value is fine', async () => {
    const install = await t.createInstall();
    const storage = t.app.storage;
    const caller = t.adminCaller(install.tenantId);
    for (const value of [null, undefined]) {
      const refused = await storage.putRecord(caller, { installId: install.id, namespace: 'ns', key: 'k', value }).then(
        () => null,
        (error: unknown) => error,
      );
      expect(refused).toBeInstanceOf(LimitExceededError);
      expect(refused).toMatchObject({ limit: 'valueType', code: 'LIMIT_EXCEEDED' });
    }
    const bulkRefused = await storage
      .bulkPutRecords(caller, { installId: install.id, namespace: 'ns', items: [{ key: 'a', value: 1 }, { key: 'b', value: null }] })
      .then(
        () => null,
        (error: unknown) => error,
      );
    expect(bulkRefused).toMatchObject({ limit: 'valueType', itemIndex: 1 });
    expect(await storage.getRecord(caller, { installId: install.id, namespace: 'ns', key: 'a' })).toBeNull();

    const stored = await storage.putRecord(caller, { installId: install.id, namespace: 'ns', key: 'k', value: [null] });
    expect(stored).toMatchObject({ value: [null], revision: 1 });
  });
});
