/** Export and import (contract, "Export and import"), through the admin HTTP doors. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backend } from '../support/db.js';
import { startTestApp, type TestApp, type TestInstall } from '../support/app.js';
import { bytesOf, exportOf, file, header, importInto, ndjson, record, stateOf, type Line } from './support.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

const SCHEMA = { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] };

async function seeded(): Promise<TestInstall> {
  const install = await t.createInstall();
  const caller = t.adminCaller();
  await t.app.storage.setNamespaceSchema(caller, { installId: install.id, namespace: 'typed', schema: { type: 'object' } });
  await t.app.storage.setNamespaceSchema(caller, { installId: install.id, namespace: 'typed', schema: SCHEMA });
  await t.app.storage.putRecord(caller, { installId: install.id, namespace: 'typed', key: 'one', value: { n: 1 } });
  await t.app.storage.putRecord(caller, { installId: install.id, namespace: 'typed', key: 'old', value: { x: 'v1' }, schemaVersion: 1 });
  await t.app.storage.putRecord(caller, { installId: install.id, namespace: 'a', key: 'k2', value: [1, 2, 3], metadata: { tag: 'é' }, ttlSeconds: 3600 });
  await t.app.storage.putRecord(caller, { installId: install.id, namespace: 'a', key: 'k1', value: 'text' });
  await t.app.storage.putRecord(caller, { installId: install.id, namespace: 'a', key: 'k1', value: 'text 2' });
  await t.app.storage.putRecord(caller, { installId: install.id, namespace: 'a', key: 'gone', value: 1 });
  await t.app.storage.deleteRecord(caller, { installId: install.id, namespace: 'a', key: 'gone' });
  return install;
}

describe('export', () => {
  it('streams the header, every schema version, every live record by namespace then key, and the end line', async () => {
    const install = await seeded();
    const { status, type, lines } = await exportOf(t, install.id);
    expect(status).toBe(200);
    expect(type).toMatch(/^application\/x-ndjson/);
    const caller = t.adminCaller();
    const scope = await t.app.storage.resolveInstall(caller, install.id, 'read');
    expect(lines[0]).toEqual({
      type: 'header',
      format: 'ext-storage-export',
      version: 1,
      tenantId: install.tenantId,
      installId: install.id,
      exportedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      changesCursor: await t.app.storage.changesCursor(caller, scope),
    });
    expect(lines.filter((l) => l.type === 'schema').map((l) => [l.namespace, l.version, l.schema])).toEqual([
      ['typed', 1, { type: 'object' }],
      ['typed', 2, SCHEMA],
    ]);
    const records = lines.filter((l) => l.type === 'record');
    expect(records.map((r) => `${r.namespace}/${r.key}`)).toEqual(['a/k1', 'a/k2', 'typed/old', 'typed/one']);
    expect(records[0]).toMatchObject({ value: 'text 2', revision: 2, schemaVersion: null, ttlExpiresAt: null });
    expect(records[1]).toMatchObject({ value: [1, 2, 3], metadata: { tag: 'é' }, ttlExpiresAt: expect.any(String) });
    expect(records[2]).toMatchObject({ schemaVersion: 1 });
    expect(records[3]).toMatchObject({ schemaVersion: 2 });
    const usage = await t.app.storage.usage(caller, scope);
    expect(lines[lines.length - 1]).toEqual({ type: 'end', records: 4, bytes: usage.bytes });
    expect(records.reduce((n, r) => n + bytesOf(r), 0)).toBe(usage.bytes);
  });

  it('is for admins of the install\'s tenant only', async () => {
    const install = await seeded();
    expect((await exportOf(t, install.id, await install.token())).status).toBe(403);
    expect((await exportOf(t, install.id, await t.adminToken('11111111-1111-4111-8111-111111111111'))).status).toBe(403);
    const res = await fetch(`${t.url}/api/admin/installs/${install.id}/export`);
    expect(res.status).toBe(401);
    expect((await importInto(t, install.id, file([]), undefined, await install.token())).status).toBe(403);
  });

  it('is one snapshot: writes committed during a slow export are not in it', async () => {
    const install = await t.createInstall();
    const caller = t.adminCaller();
    for (let b = 0; b < 12; b++) {
      const items = Array.from({ length: 100 }, (_, i) => ({ key: `k${String(b * 100 + i).padStart(5, '0')}`, value: { i: b * 100 + i } }));
      await t.app.storage.bulkPutRecords(caller, { installId: install.id, namespace: 'ns', items });
    }
    const before = (await exportOf(t, install.id)).lines;
    const gen = await t.app.storage.exportInstall(caller, install.id);
    const got: string[] = [];
    for (let i = 0; i < 10; i++) got.push((await gen.next()).value as string);
    // Writes to keys of later pages, while the export is open.
    const writes = Promise.all([
      t.app.storage.putRecord(caller, { installId: install.id, namespace: 'ns', key: 'k01199', value: 'changed' }),
      t.app.storage.deleteRecord(caller, { installId: install.id, namespace: 'ns', key: 'k00900' }),
      t.app.storage.putRecord(caller, { installId: install.id, namespace: 'ns', key: 'k99999', value: 'new' }),
      t.app.storage.putRecord(caller, { installId: install.id, namespace: 'zz', key: 'new', value: 'new' }),
    ]);
    // PostgreSQL commits them now; PGlite (one connection) runs them after the export.
    if (backend === 'postgres') await writes;
    for await (const line of gen) got.push(line);
    await writes;
    const lines = got.map((l) => JSON.parse(l) as Line);
    expect(lines.slice(1)).toEqual(before.slice(1));
    expect(lines[lines.length - 1]).toMatchObject({ type: 'end', records: 1200 });
    const after = (await exportOf(t, install.id)).lines;
    expect(after[after.length - 1]).toMatchObject({ records: 1201 });
  });
});

describe('import', () => {
  it('round trip: export, import into a new install, export: the same record and schema lines', async () => {
    const source = await seeded();
    const first = await exportOf(t, source.id);
    const target = await t.createInstall();
    const res = await importInto(t, target.id, first.text);
    expect(res).toEqual({ status: 200, body: { mode: 'merge', records: 4, bytes: first.lines[first.lines.length - 1]!.bytes } });
    const second = await exportOf(t, target.id);
    expect(second.lines.slice(1)).toEqual(first.lines.slice(1));
    const { installId, exportedAt, changesCursor, ...rest } = second.lines[0]!;
    const { installId: i1, exportedAt: e1, changesCursor: c1, ...rest1 } = first.lines[0]!;
    expect(rest).toEqual(rest1);
    expect(installId).toBe(target.id);
    expect([i1, e1, c1, exportedAt, changesCursor]).toBeTruthy();
    // Restored schemas are the namespace's: a write without a version is validated against the active one (2).
    const caller = t.adminCaller();
    await expect(t.app.storage.putRecord(caller, { installId: target.id, namespace: 'typed', key: 'bad', value: { x: 1 } })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    // Importing the same file again (merge) into the target: schemas equal, fine.
    expect((await importInto(t, target.id, first.text)).status).toBe(200);
  });

  it('is audited (operation import, one event per record) and feeds the change feed', async () => {
    const target = await t.createInstall();
    const records = [record('ns', 'a', 1), record('ns', 'b', 2, { revision: 7 }), record('other', 'c', { x: true })];
    expect((await importInto(t, target.id, file(records))).status).toBe(200);
    const caller = t.adminCaller();
    const scope = await t.app.storage.resolveInstall(caller, target.id, 'read');
    const audit = await t.app.storage.auditLog(caller, scope, 100, null);
    const imports = audit.items.filter((e) => e.operation === 'import');
    expect(imports.map((e) => `${e.namespace}/${e.key}@${e.revision}`).sort()).toEqual(['ns/a@1', 'ns/b@7', 'other/c@1']);
    expect(audit.items.filter((e) => e.operation !== 'upsertInstall').length).toBe(3);
    const feed = await t.app.storage.changes(caller, scope, {});
    expect(feed.changes.map((c) => [c.operation, c.namespace, c.key, c.revision])).toEqual([
      ['put', 'ns', 'a', 1],
      ['put', 'ns', 'b', 7],
      ['put', 'other', 'c', 1],
    ]);
  });

  it('keeps revisions and timestamps of new keys; existing keys get max(current + 1, exported), their createdAt, and now', async () => {
    const target = await t.createInstall();
    const caller = t.adminCaller();
    for (let i = 0; i < 5; i++) await t.app.storage.putRecord(caller, { installId: target.id, namespace: 'ns', key: 'five', value: i });
    await t.app.storage.putRecord(caller, { installId: target.id, namespace: 'ns', key: 'one', value: 0 });
    const existing = (await exportOf(t, target.id)).lines.filter((l) => l.type === 'record');
    const started = Date.now();
    const ttl = new Date(Date.now() + 86_400_000).toISOString();
    const res = await importInto(t, target.id, file([
      record('ns', 'five', 'from file', { revision: 2 }),
      record('ns', 'new', 'fresh', { revision: 42, ttlExpiresAt: ttl }),
      record('ns', 'one', 'from file', { revision: 9 }),
    ]));
    expect(res.status).toBe(200);
    const byKey = Object.fromEntries((await exportOf(t, target.id)).lines.filter((l) => l.type === 'record').map((l) => [l.key, l]));
    expect(byKey.five).toMatchObject({ value: 'from file', revision: 6, createdAt: existing[0]!.createdAt });
    expect(Date.parse(byKey.five.updatedAt)).toBeGreaterThanOrEqual(started - 1000);
    expect(byKey.one).toMatchObject({ revision: 9, createdAt: existing[1]!.createdAt });
    expect(byKey.new).toMatchObject({ revision: 42, ttlExpiresAt: ttl, createdAt: '2024-01-01T00:00:00.000Z', updatedAt: '2024-01-02T00:00:00.000Z' });
  });

  it('merge keeps records the file does not hold; replace deletes them', async () => {
    const caller = t.adminCaller();
    const body = file([record('ns', 'b', 'B'), record('ns', 'c', 'C')]);
    for (const mode of ['merge', 'replace'] as const) {
      const target = await t.createInstall();
      for (const key of ['a', 'b']) await t.app.storage.putRecord(caller, { installId: target.id, namespace: 'ns', key, value: key });
      await t.app.storage.putRecord(caller, { installId: target.id, namespace: 'other', key: 'x', value: 'x' });
      expect(await importInto(t, target.id, body, mode)).toMatchObject({ status: 200, body: { mode, records: 2 } });
      const keys = (await exportOf(t, target.id)).lines.filter((l) => l.type === 'record').map((l) => `${l.namespace}/${l.key}=${l.value}`);
      expect(keys).toEqual(mode === 'merge' ? ['ns/a=a', 'ns/b=B', 'ns/c=C', 'other/x=x'] : ['ns/b=B', 'ns/c=C']);
      if (mode === 'replace') {
        const scope = await t.app.storage.resolveInstall(caller, target.id, 'read');
        const feed = await t.app.storage.changes(caller, scope, {});
        expect(feed.changes.filter((c) => c.operation === 'delete').map((c) => `${c.namespace}/${c.key}`)).toEqual(['ns/a', 'other/x']);
        expect(await t.app.storage.usage(caller, scope)).toMatchObject({ keys: 2, namespaces: 1 });
      }
    }
  });

  it('restores schemas into a namespace without any; refuses a file whose versions differ from the target\'s', async () => {
    const schemas = [
      { type: 'schema', namespace: 'typed', version: 1, schema: { type: 'object' }, createdAt: '2023-05-01T00:00:00.000Z' },
      { type: 'schema', namespace: 'typed', version: 2, schema: SCHEMA, createdAt: '2023-06-01T00:00:00.000Z' },
    ];
    const body = file([record('typed', 'r', { n: 3 }, { schemaVersion: 2 })], schemas);
    const target = await t.createInstall();
    expect((await importInto(t, target.id, body)).status).toBe(200);
    const lines = (await exportOf(t, target.id)).lines;
    expect(lines.filter((l) => l.type === 'schema')).toEqual(schemas);
    // A target whose namespace holds other versions.
    const other = await t.createInstall();
    await t.app.storage.setNamespaceSchema(t.adminCaller(), { installId: other.id, namespace: 'typed', schema: { type: 'object' } });
    const before = await stateOf(t, other.id);
    expect(await importInto(t, other.id, body)).toMatchObject({ status: 400, body: { code: 'VALIDATION_FAILED', details: { line: 2 } } });
    // Records of a namespace with schemas in the target, from a file with none for it.
    expect(await importInto(t, other.id, file([record('typed', 'r', { n: 3 })]))).toMatchObject({ status: 400, body: { code: 'VALIDATION_FAILED', details: { line: 2 } } });
    expect(await stateOf(t, other.id)).toEqual(before);
  });

  describe('refuses the whole import and changes nothing', () => {
    const R = (key: string, extra: Partial<Line> = {}) => record('ns', key, { n: 1 }, extra);
    const schemaLine = { type: 'schema', namespace: 'ns2', version: 1, schema: SCHEMA, createdAt: '2023-05-01T00:00:00.000Z' };
    const cases: Array<[string, () => string, number, string, number, string?]> = [
      ['a malformed line', () => file([R('a'), R('b')]).replace(/\n.*"key":"b".*\n/, '\n{not json\n'), 400, 'VALIDATION_FAILED', 3],
      ['a missing header', () => ndjson([R('a'), { type: 'end', records: 1, bytes: 7 }]), 400, 'VALIDATION_FAILED', 1],
      ['an empty body', () => '', 400, 'VALIDATION_FAILED', 1],
      ['a missing end line', () => ndjson([header(), R('a'), R('b')]), 400, 'VALIDATION_FAILED', 4],
      ['a missing end line without a final newline', () => ndjson([header(), R('a')]).trimEnd(), 400, 'VALIDATION_FAILED', 3],
      ['an end line with the wrong N', () => file([R('a'), R('b')], [], { records: 3 }), 400, 'VALIDATION_FAILED', 4],
      ['an end line with the wrong B', () => file([R('a')], [], { bytes: 1 }), 400, 'VALIDATION_FAILED', 3],
      ['a line after the end line', () => file([R('a')]) + JSON.stringify(R('b')) + '\n', 400, 'VALIDATION_FAILED', 4],
      ['a duplicate key', () => file([R('a'), R('b'), R('a')]), 400, 'VALIDATION_FAILED', 4],
      ['a key too long', () => file([R('a'), R('x'.repeat(600))]), 400, 'LIMIT_EXCEEDED', 3],
      ['a malformed namespace', () => file([record('Bad NS', 'a', 1)]), 400, 'LIMIT_EXCEEDED', 2],
      ['a null value', () => file([R('a'), R('b', { value: null })]), 400, 'LIMIT_EXCEEDED', 3],
      ['a value too large', () => file([R('a', { value: 'x'.repeat(300_000) })]), 400, 'LIMIT_EXCEEDED', 2],
      ['a bad revision', () => file([R('a', { revision: 0 })]), 400, 'VALIDATION_FAILED', 2],
      // No write could have set it: past STORAGE_MAX_TTL_SECONDS from now (an import must not get round the limit).
      ['an expiry beyond the longest TTL', () => file([R('a'), R('b', { ttlExpiresAt: '9999-12-31T23:59:59.999Z' })]), 400, 'LIMIT_EXCEEDED', 3],
      ['a bad timestamp', () => file([R('a', { createdAt: 'yesterday' })]), 400, 'VALIDATION_FAILED', 2],
      ['a value that fails its schema version', () => file([record('ns2', 'a', { n: 'x' }, { schemaVersion: 1 })], [schemaLine]), 400, 'VALIDATION_FAILED', 3],
      ['an unknown schema version', () => file([record('ns2', 'a', { n: 1 }, { schemaVersion: 2 })], [schemaLine]), 400, 'VALIDATION_FAILED', 3],
      ['an invalid schema', () => file([], [{ ...schemaLine, schema: { type: 'nope' } }]), 400, 'VALIDATION_FAILED', 2],
      ['a schema after a record', () => ndjson([header(), R('a'), schemaLine, { type: 'end', records: 1, bytes: bytesOf(R('a')) }]), 400, 'VALIDATION_FAILED', 3],
      ['past the keys quota (merge: the existing key counts)', () => file([R('a'), R('b'), R('c'), R('d')]), 429, 'QUOTA_EXCEEDED', 4, 'merge'],
      ['past the keys quota (replace: the file alone counts)', () => file([R('a'), R('b'), R('c'), R('d'), R('e')]), 429, 'QUOTA_EXCEEDED', 5, 'replace'],
      ['past the keys quota beyond a batch', () => file(Array.from({ length: 150 }, (_, i) => R(`k${String(i).padStart(3, '0')}`))), 429, 'QUOTA_EXCEEDED', 4],
    ];
    it.each(cases)('%s', async (_name, body, status, code, line, mode) => {
      const target = await t.createInstall({ quota: { maxKeysPerNamespace: 3, maxValueBytes: 200_000 } });
      await t.app.storage.putRecord(t.adminCaller(), { installId: target.id, namespace: 'ns', key: 'zz-existing', value: 1 });
      const before = await stateOf(t, target.id);
      const res = await importInto(t, target.id, body(), mode);
      expect(res.body).toMatchObject({ code, details: { line }, error: expect.any(String) });
      expect(res.status).toBe(status);
      expect(await stateOf(t, target.id)).toEqual(before);
    });

    it('a mode that is neither merge nor replace', async () => {
      const target = await t.createInstall();
      expect((await importInto(t, target.id, file([R('a')]), 'upsert')).status).toBe(400);
    });
  });
});
