import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { SET_SCHEMA, dataOf, errorCodes, extension, type Extension, type Result } from './support.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

const V1 = {
  type: 'object',
  properties: { name: { type: 'string' } },
  required: ['name'],
};
const V2 = {
  type: 'object',
  properties: { name: { type: 'string' }, age: { type: 'integer', minimum: 0 } },
  required: ['name', 'age'],
};

async function setSchema(installId: string, namespace: string, schema: unknown): Promise<Result> {
  const res = await t.gql(SET_SCHEMA, { input: { installId, namespace, schema } }, { token: await t.adminToken() });
  return dataOf(res).setNamespaceSchema;
}

async function activeSchema(ext: Extension, namespace: string): Promise<{ version: number; schema: unknown } | null> {
  const res = await ext.gql('query($ns: String!) { install { namespace(name: $ns) { schema { version schema } } } }', { ns: namespace });
  return dataOf(res).install.namespace.schema;
}

describe('schema versions', () => {
  it('stores each setNamespaceSchema as the next version and makes it the active one', async () => {
    const ext = await extension(t);
    expect(await activeSchema(ext, 'people')).toBeNull();

    const first = await setSchema(ext.install.id, 'people', V1);
    expect(first.__typename).toBe('SetNamespaceSchemaSuccess');
    expect(first.schema).toMatchObject({ version: 1, schema: V1 });
    expect(await activeSchema(ext, 'people')).toEqual({ version: 1, schema: V1 });

    const second = await setSchema(ext.install.id, 'people', V2);
    expect(second.schema).toMatchObject({ version: 2, schema: V2 });
    expect(await activeSchema(ext, 'people')).toEqual({ version: 2, schema: V2 });
    // Versions are per namespace.
    expect(await activeSchema(ext, 'other')).toBeNull();
  });
});

describe('writes against the active schema', () => {
  it('refuses a value violating the active version with issues naming the field, and writes nothing', async () => {
    const ext = await extension(t);
    await setSchema(ext.install.id, 'people', V1);
    await setSchema(ext.install.id, 'people', V2);

    const wrongType = await ext.put({ namespace: 'people', key: 'p1', value: { name: 42, age: 3 } });
    expect(wrongType).toMatchObject({ __typename: 'ValidationFailed', code: 'VALIDATION_FAILED', schemaVersion: 2 });
    expect(wrongType.issues).toEqual([expect.objectContaining({ path: '/name', keyword: 'type' })]);

    const missing = await ext.put({ namespace: 'people', key: 'p1', value: { name: 'Ada' } });
    expect(missing.__typename).toBe('ValidationFailed');
    expect(missing.issues).toEqual([expect.objectContaining({ path: '/age', keyword: 'required' })]);

    expect(await ext.records('people', ['p1'])).toEqual([null]);
    expect((await ext.usage('people')).usage.keys).toBe(0);

    const ok = await ext.put({ namespace: 'people', key: 'p1', value: { name: 'Ada', age: 36 } });
    expect(ok.__typename).toBe('PutRecordSuccess');
    expect(ok.record.schemaVersion).toBe(2);
  });

  it('accepts any JSON value in a namespace with no schema, and records no schema version', async () => {
    const ext = await extension(t);
    const put = await ext.put({ namespace: 'free', key: 'k', value: [1, 'two', { three: 3 }] });
    expect(put.__typename).toBe('PutRecordSuccess');
    expect(put.record.schemaVersion).toBeNull();
  });
});

describe('pinned schema versions', () => {
  it('validates against schemaVersion 1 when pinned, and stores that version on the record', async () => {
    const ext = await extension(t);
    await setSchema(ext.install.id, 'people', V1);
    await setSchema(ext.install.id, 'people', V2);

    const onlyV1 = { name: 'Grace' };
    expect((await ext.put({ namespace: 'people', key: 'g', value: onlyV1 })).__typename).toBe('ValidationFailed');
    const pinned = await ext.put({ namespace: 'people', key: 'g', value: onlyV1, schemaVersion: 1 });
    expect(pinned.__typename).toBe('PutRecordSuccess');
    expect(pinned.record).toMatchObject({ value: onlyV1, schemaVersion: 1, revision: 1 });
    expect((await ext.records('people', ['g']))[0]).toMatchObject({ schemaVersion: 1 });

    const pinnedInvalid = await ext.put({ namespace: 'people', key: 'g', value: { name: 7 }, schemaVersion: 1 });
    expect(pinnedInvalid).toMatchObject({ __typename: 'ValidationFailed', schemaVersion: 1 });
    expect(pinnedInvalid.issues).toEqual([expect.objectContaining({ path: '/name' })]);
  });

  it('refuses an unknown schema version instead of skipping validation', async () => {
    const ext = await extension(t);
    await setSchema(ext.install.id, 'people', V1);
    for (const schemaVersion of [99, 0]) {
      const put = await ext.put({ namespace: 'people', key: 'u', value: { name: 'valid anyway' }, schemaVersion });
      expect(put).toMatchObject({ __typename: 'ValidationFailed', code: 'VALIDATION_FAILED' });
    }
    // A namespace with no schema at all has no version 1 either.
    const none = await ext.put({ namespace: 'schemaless', key: 'u', value: 1, schemaVersion: 1 });
    expect(none.__typename).toBe('ValidationFailed');
    expect(await ext.records('people', ['u'])).toEqual([null]);
    expect(await ext.records('schemaless', ['u'])).toEqual([null]);
  });
});

describe('invalid schema documents', () => {
  const invalid: Array<[string, unknown]> = [
    ['an unknown keyword', { type: 'object', colour: 'blue' }],
    ['a type that is not a type name', { type: 12 }],
    ['a remote $ref', { $ref: 'https://example.com/s.json' }],
    ['a remote $ref nested in properties', { type: 'object', properties: { a: { $ref: 'https://example.com/a.json#/x' } } }],
    ['an unknown format', { type: 'string', format: 'no-such-format' }],
    ['a non-object document', 'string'],
  ];

  it.each(invalid)('refuses %s as ValidationFailed and keeps the active version', async (_label, schema) => {
    const ext = await extension(t);
    await setSchema(ext.install.id, 'docs', V1);
    const result = await setSchema(ext.install.id, 'docs', schema);
    expect(result).toMatchObject({ __typename: 'ValidationFailed', code: 'VALIDATION_FAILED' });
    expect(result.issues.length).toBeGreaterThan(0);
    expect(await activeSchema(ext, 'docs')).toEqual({ version: 1, schema: V1 });
    // The next valid document still becomes version 2: the refused one used no number.
    expect((await setSchema(ext.install.id, 'docs', V2)).schema.version).toBe(2);
  });
});

describe('schema document size', () => {
  it('refuses a document over 64 KiB of compact JSON as LimitExceeded schemaBytes and keeps the active version', async () => {
    const ext = await extension(t);
    await setSchema(ext.install.id, 'docs', V1);
    // A valid document: only its size is wrong.
    const big = { type: 'object', description: 'x'.repeat(65_536) };
    const result = await setSchema(ext.install.id, 'docs', big);
    expect(result).toMatchObject({ __typename: 'LimitExceeded', code: 'LIMIT_EXCEEDED', limit: 'schemaBytes' });
    expect(await activeSchema(ext, 'docs')).toEqual({ version: 1, schema: V1 });
    const res = await t.gql(
      'mutation($input: SetNamespaceSchemaInput!) { setNamespaceSchema(input: $input) { ... on LimitExceeded { max actual } } }',
      { input: { installId: ext.install.id, namespace: 'docs', schema: big } },
      { token: await t.adminToken() },
    );
    expect(dataOf(res).setNamespaceSchema).toEqual({ max: 65_536, actual: JSON.stringify(big).length });
  });
});

describe('format keywords', () => {
  it('enforces "format": "email"', async () => {
    const ext = await extension(t);
    await setSchema(ext.install.id, 'contacts', { type: 'object', properties: { email: { type: 'string', format: 'email' } }, required: ['email'] });
    const bad = await ext.put({ namespace: 'contacts', key: 'c', value: { email: 'not an email' } });
    expect(bad.__typename).toBe('ValidationFailed');
    expect(bad.issues).toEqual([expect.objectContaining({ path: '/email', keyword: 'format' })]);
    const good = await ext.put({ namespace: 'contacts', key: 'c', value: { email: 'ada@example.com' } });
    expect(good.__typename).toBe('PutRecordSuccess');
  });
});

describe('schema validation in bulk writes', () => {
  it('prefixes each issue with the item index and writes no item', async () => {
    const ext = await extension(t);
    await setSchema(ext.install.id, 'people', V1);
    await setSchema(ext.install.id, 'people', V2);
    const result = await ext.bulk('people', [
      { key: 'a', value: { name: 'A', age: 1 } },
      { key: 'b', value: { name: 'B', age: 2 } },
      { key: 'c', value: { name: 'C', age: 'three' } },
      { key: 'd', value: { age: 4 } },
    ]);
    expect(result).toMatchObject({ __typename: 'ValidationFailed', schemaVersion: 2 });
    expect(result.issues.map((i: { path: string }) => i.path).sort()).toEqual(['/2/age', '/3/name']);
    expect(await ext.records('people', ['a', 'b', 'c', 'd'])).toEqual([null, null, null, null]);
  });
});

describe('who may set a schema', () => {
  it('refuses setNamespaceSchema from an extension token with FORBIDDEN and stores nothing', async () => {
    const ext = await extension(t);
    const res = await ext.gql(SET_SCHEMA, { input: { installId: ext.install.id, namespace: 'people', schema: V1 } });
    expect(errorCodes(res)).toEqual(['FORBIDDEN']);
    expect(res.body.data?.setNamespaceSchema ?? null).toBeNull();
    expect(await activeSchema(ext, 'people')).toBeNull();
  });

  it('refuses setNamespaceSchema from the Runner with FORBIDDEN', async () => {
    const ext = await extension(t);
    const res = await t.gql(
      SET_SCHEMA,
      { input: { installId: ext.install.id, namespace: 'people', schema: V1 } },
      { headers: { 'x-runner-auth': t.runnerToken, 'x-install-id': ext.install.id } },
    );
    expect(errorCodes(res)).toEqual(['FORBIDDEN']);
    expect(await activeSchema(ext, 'people')).toBeNull();
  });
});
