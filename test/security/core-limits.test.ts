/**
 * Issue 11, the storage core's share: racing upsertInstall of one new id, forged install cursors,
 * Install.usage under the allow-list and read capability, and the audit log's retention (bounded
 * work per write). Each failed (500, INTERNAL, a leak or unbounded growth) before.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataOf, startTestApp, type TestApp } from '../support/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ STORAGE_AUDIT_RETENTION_SECONDS: '1' });
});
afterAll(async () => {
  await t?.close();
});

const UPSERT = `mutation($input: UpsertInstallInput!) { upsertInstall(input: $input) { id tenantId extensionId } }`;
const PUT = `mutation($input: PutRecordInput!) { putRecord(input: $input) { __typename } }`;

describe('two admins racing upsertInstall of one new id', () => {
  it('every racer gets the install, none an error', async () => {
    const id = randomUUID();
    const token = await t.adminToken();
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        t.gql(UPSERT, { input: { id, extensionId: `racer-${i}`, enabled: true, canRead: true, canWrite: true } }, { token }),
      ),
    );
    for (const r of results) expect(dataOf(r).upsertInstall).toMatchObject({ id, tenantId: t.tenantId });
  });
});

describe('a forged installs cursor', () => {
  it('that decodes to something other than an install id is BAD_USER_INPUT, not INTERNAL', async () => {
    const token = await t.adminToken();
    for (const position of ['not-a-uuid', "' OR 1=1 --", 'ffffffff-ffff-ffff-ffff-ffffffffffffff']) {
      const cursor = Buffer.from(JSON.stringify(['i', t.tenantId, position])).toString('base64url');
      const res = await t.gql(`query($after: String) { installs(first: 5, after: $after) { edges { node { id } } } }`, { after: cursor }, { token });
      expect(res.body.errors?.[0]?.extensions?.code, JSON.stringify(res.body)).toBe('BAD_USER_INPUT');
    }
  });

  it('an audit cursor holding a number no id can be is BAD_USER_INPUT', async () => {
    const install = await t.createInstall();
    const token = await t.adminToken();
    for (const position of [1e300, 1.5, -0.5]) {
      const cursor = Buffer.from(JSON.stringify(['a', install.id, position])).toString('base64url');
      const res = await t.gql(`query($id: ID!, $after: String) { install(id: $id) { auditLog(first: 5, after: $after) { edges { node { id } } } } }`, { id: install.id, after: cursor }, { token });
      expect(res.body.errors?.[0]?.extensions?.code, JSON.stringify(res.body)).toBe('BAD_USER_INPUT');
    }
  });
});

describe('Install.usage', () => {
  it('counts only the namespaces the extension may access, and needs read capability', async () => {
    const install = await t.createInstall({ namespaces: null });
    const admin = await t.adminToken();
    for (const namespace of ['open', 'secret']) {
      dataOf(await t.gql(PUT, { input: { installId: install.id, namespace, key: 'k', value: 1 } }, { token: admin }));
    }
    // Narrow the install to one namespace: the extension sees that one only.
    dataOf(await t.gql(UPSERT, { input: { id: install.id, extensionId: 'x', enabled: true, canRead: true, canWrite: true, namespaces: ['open'] } }, { token: admin }));
    const ext = await install.token();
    const seen = dataOf(await t.gql('{ install { usage { namespaces keys } } }', {}, { token: ext })).install.usage;
    expect(seen).toEqual({ namespaces: 1, keys: 1 });
    const adminView = dataOf(await t.gql('query($id: ID) { install(id: $id) { usage { namespaces keys } } }', { id: install.id }, { token: admin })).install.usage;
    expect(adminView).toEqual({ namespaces: 2, keys: 2 });
    const writeOnly = await install.token('storage:write');
    const refused = await t.gql('{ install { usage { keys } } }', {}, { token: writeOnly });
    expect(refused.body.errors?.[0]?.extensions?.code, JSON.stringify(refused.body)).toBe('FORBIDDEN');
  });
});

describe('the audit log keeps STORAGE_AUDIT_RETENTION_SECONDS (1 s here)', () => {
  it('writes remove older events, a bounded batch per write, and keep recent ones', async () => {
    const install = await t.createInstall();
    const admin = await t.adminToken();
    const put = (key: string) => t.gql(PUT, { input: { installId: install.id, namespace: 'ns', key, value: 1 } }, { token: admin });
    for (let i = 0; i < 30; i++) dataOf(await put(`old${i}`));
    const count = async () =>
      (
        await t.database.handle.db
          .selectFrom('ext_storage_audit')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('tenant_id', '=', install.tenantId)
          .where('install_id', '=', install.id)
          .executeTakeFirstOrThrow()
      ).n;
    expect(Number(await count())).toBe(31); // upsertInstall + 30 puts
    await new Promise((resolve) => setTimeout(resolve, 1200));
    dataOf(await put('new0'));
    // One write removes at most 2 × its events + 10 (12 here), never the whole backlog at once.
    expect(Number(await count())).toBe(31 + 1 - 12);
    for (let i = 1; i < 4; i++) dataOf(await put(`new${i}`));
    const events = await t.database.handle.db
      .selectFrom('ext_storage_audit')
      .select('key')
      .where('tenant_id', '=', install.tenantId)
      .where('install_id', '=', install.id)
      .execute();
    expect(events.map((e) => e.key).sort()).toEqual(['new0', 'new1', 'new2', 'new3']);
  });
});
