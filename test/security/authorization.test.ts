import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../../src/auth/credentials.js';
import { startTestApp, type GqlResult, type TestApp, type TestInstall } from '../support/app.js';
import { adminView, expectForbidden, expectNoLeak, PUT } from './support.js';

let t: TestApp;
/** Tenant A: t.tenantId. Tenant B: another tenant with its own admin and install. */
let tenantB: string;
let installA: TestInstall;
let siblingA: TestInstall;
let installB: TestInstall;
let adminA: string;
let adminB: string;

const NS = 'notes';
const SECRET_KEY_A = `secret-key-a-${randomUUID()}`;
const SECRET_VALUE_A = `secret-value-a-${randomUUID()}`;
const SECRET_KEY_SIBLING = `secret-key-sibling-${randomUUID()}`;
const SECRET_VALUE_SIBLING = `secret-value-sibling-${randomUUID()}`;
const SECRET_KEY_B = `secret-key-b-${randomUUID()}`;
const SECRET_VALUE_B = `secret-value-b-${randomUUID()}`;
const SECRETS_OF_A = [SECRET_VALUE_A, SECRET_VALUE_SIBLING];

async function adminPut(install: TestInstall, namespace: string, key: string, value: unknown): Promise<void> {
  const res = await t.gql(PUT, { input: { installId: install.id, namespace, key, value } }, { token: await t.adminToken(install.tenantId) });
  expect(res.body.data?.putRecord?.__typename).toBe('PutRecordSuccess');
}

beforeAll(async () => {
  t = await startTestApp();
  tenantB = randomUUID();
  installA = await t.createInstall();
  siblingA = await t.createInstall();
  installB = await t.createInstall({ tenantId: tenantB });
  adminA = await t.adminToken();
  adminB = await t.adminToken(tenantB);
  await adminPut(installA, NS, SECRET_KEY_A, { text: SECRET_VALUE_A });
  await adminPut(siblingA, NS, SECRET_KEY_SIBLING, { text: SECRET_VALUE_SIBLING });
  await adminPut(installB, NS, SECRET_KEY_B, { text: SECRET_VALUE_B });
});
afterAll(async () => {
  await t?.close();
});

const UPSERT = `mutation($input: UpsertInstallInput!) {
  upsertInstall(input: $input) { id tenantId extensionId enabled capabilities { read write namespaces } }
}`;

const SET_SCHEMA = `mutation($input: SetNamespaceSchemaInput!) {
  setNamespaceSchema(input: $input) { __typename ... on SetNamespaceSchemaSuccess { schema { version } } }
}`;

const BULK = `mutation($input: BulkPutRecordsInput!) { bulkPutRecords(input: $input) { __typename } }`;
const DELETE = `mutation($input: DeleteRecordInput!) { deleteRecord(input: $input) { __typename ... on DeleteRecordSuccess { deleted } } }`;

/** Every read shape naming `installId` (or none when undefined) on namespace `ns`. */
function readQueries(ns: string, key: string): Array<[string, string, Record<string, unknown>]> {
  return [
    ['record', `query($id: ID, $ns: String!, $key: String!) { record(installId: $id, namespace: $ns, key: $key) { key value } }`, { ns, key }],
    ['records', `query($id: ID, $ns: String!, $key: String!) { records(installId: $id, namespace: $ns, keys: [$key]) { key value } }`, { ns, key }],
    ['recordList', `query($id: ID, $ns: String!) { recordList(installId: $id, namespace: $ns) { edges { node { key value } } } }`, { ns }],
    ['install.namespace.record', `query($id: ID, $ns: String!, $key: String!) { install(id: $id) { namespace(name: $ns) { record(key: $key) { value } } } }`, { ns, key }],
    ['install.namespace.recordList', `query($id: ID, $ns: String!) { install(id: $id) { namespace(name: $ns) { keyCount recordList { edges { node { key value } } } } } }`, { ns }],
  ];
}

async function upsert(token: string, input: Record<string, unknown>): Promise<GqlResult> {
  return t.gql(UPSERT, { input: { extensionId: 'test-extension', enabled: true, canRead: true, canWrite: true, ...input } }, { token });
}

async function expectUntouched(install: TestInstall, key: string, expected: { value: unknown; revision: number } | null): Promise<void> {
  const state = await adminView(t, install, NS, key);
  expect(state.record).toEqual(expected);
}

describe('an install that is unknown to the gateway is refused before execution (403)', () => {
  it('an extension token naming a random install id cannot read or write', async () => {
    const token = await mintToken(t.secret, { sub: 'ghost', tid: t.tenantId, role: 'extension', iid: randomUUID(), scope: 'storage:read storage:write' });
    expectForbidden(await t.gql(`{ record(namespace: "${NS}", key: "${SECRET_KEY_A}") { value } }`, {}, { token }), 403);
    expectForbidden(await t.gql(PUT, { input: { namespace: NS, key: 'ghost-write', value: 1 } }, { token }), 403);
  });

  it('the Runner naming a random or malformed install id is 403', async () => {
    for (const id of [randomUUID(), 'not-a-uuid', '']) {
      const res = await t.gql(PUT, { input: { namespace: NS, key: 'ghost-write', value: 1 } }, { headers: { 'x-runner-auth': t.runnerToken, 'x-install-id': id } });
      expectForbidden(res, 403);
    }
  });

  it('the refused writes created no install', async () => {
    const res = await t.gql(`{ installs(first: 100) { edges { node { id } } } }`, {}, { token: adminA });
    const ids = res.body.data.installs.edges.map((e: { node: { id: string } }) => e.node.id).sort();
    expect(ids).toEqual([installA.id, siblingA.id].sort());
  });
});

describe('a disabled install is refused (403) and keeps its data', () => {
  let install: TestInstall;
  beforeAll(async () => {
    install = await t.createInstall();
    const put = await t.gql(PUT, { input: { namespace: NS, key: 'kept', value: { v: 'kept-value' } } }, { token: await install.token() });
    expect(put.body.data.putRecord.__typename).toBe('PutRecordSuccess');
    const disabled = await upsert(adminA, { id: install.id, enabled: false });
    expect(disabled.body.data.upsertInstall.enabled).toBe(false);
  });

  it('its extension token can neither read nor write', async () => {
    const token = await install.token();
    expectForbidden(await t.gql(`{ record(namespace: "${NS}", key: "kept") { value } }`, {}, { token }), 403);
    expectForbidden(await t.gql(PUT, { input: { namespace: NS, key: 'kept', value: 'overwritten' } }, { token }), 403);
    expectForbidden(await t.gql(`{ install { id enabled } }`, {}, { token }), 403);
  });

  it('the Runner is refused for it too', async () => {
    const res = await t.gql(`{ record(namespace: "${NS}", key: "kept") { value } }`, {}, { headers: { 'x-runner-auth': t.runnerToken, 'x-install-id': install.id } });
    expectForbidden(res, 403);
  });

  it('an admin of its tenant still reads the records, unchanged', async () => {
    const state = await adminView(t, install, NS, 'kept');
    expect(state.record).toEqual({ value: { v: 'kept-value' }, revision: 1 });
    expect(state.usage).toMatchObject({ namespaces: 1, keys: 1 });
  });

  it('re-enabling restores access to the same data', async () => {
    const enabled = await upsert(adminA, { id: install.id, enabled: true });
    expect(enabled.body.data.upsertInstall.enabled).toBe(true);
    const res = await t.gql(`{ record(namespace: "${NS}", key: "kept") { value revision } }`, {}, { token: await install.token() });
    expect(res.status).toBe(200);
    expect(res.body.data.record).toEqual({ value: { v: 'kept-value' }, revision: 1 });
  });
});

describe('an install without write capability cannot write (FORBIDDEN field error, HTTP 200)', () => {
  let install: TestInstall;
  beforeAll(async () => {
    install = await t.createInstall({ canWrite: false });
    await adminPut(install, NS, 'existing', 'admin wrote this');
  });

  it('putRecord, bulkPutRecords and deleteRecord are FORBIDDEN and change nothing', async () => {
    const token = await install.token();
    expectForbidden(await t.gql(PUT, { input: { namespace: NS, key: 'new', value: 1 } }, { token }), 200);
    expectForbidden(await t.gql(PUT, { input: { namespace: NS, key: 'existing', value: 'changed' } }, { token }), 200);
    expectForbidden(await t.gql(BULK, { input: { namespace: NS, items: [{ key: 'b1', value: 1 }] } }, { token }), 200);
    expectForbidden(await t.gql(DELETE, { input: { namespace: NS, key: 'existing' } }, { token }), 200);
    const state = await adminView(t, install, NS, 'existing');
    expect(state.record).toEqual({ value: 'admin wrote this', revision: 1 });
    expect(state.usage.keys).toBe(1);
    expect(state.auditOperations).toEqual(['putRecord', 'upsertInstall']);
    await expectUntouched(install, 'new', null);
    await expectUntouched(install, 'b1', null);
  });

  it('the Runner acting for it cannot write either', async () => {
    const res = await t.gql(PUT, { input: { namespace: NS, key: 'runner', value: 1 } }, { headers: { 'x-runner-auth': t.runnerToken, 'x-install-id': install.id } });
    expectForbidden(res, 200);
    await expectUntouched(install, 'runner', null);
  });

  it('reading still works', async () => {
    const res = await t.gql(`{ record(namespace: "${NS}", key: "existing") { value } }`, {}, { token: await install.token() });
    expect(res.body.data.record).toEqual({ value: 'admin wrote this' });
  });
});

describe('an install without read capability cannot read', () => {
  let install: TestInstall;
  const hidden = `unreadable-${randomUUID()}`;
  beforeAll(async () => {
    install = await t.createInstall({ canRead: false });
    await adminPut(install, NS, 'existing', hidden);
  });

  it('every read shape is FORBIDDEN and reveals nothing', async () => {
    const token = await install.token();
    for (const [, query, vars] of readQueries(NS, 'existing')) {
      const res = await t.gql(query, vars, { token });
      expectForbidden(res, 200);
      expectNoLeak(res, [hidden]);
    }
    const listed = await t.gql(`{ install { namespaces { name keyCount } } }`, {}, { token });
    expectForbidden(listed, 200);
  });

  it('the Runner acting for it cannot read either', async () => {
    const res = await t.gql(`{ record(namespace: "${NS}", key: "existing") { value } }`, {}, { headers: { 'x-runner-auth': t.runnerToken, 'x-install-id': install.id } });
    expectForbidden(res, 200);
    expectNoLeak(res, [hidden]);
  });
});

describe('the token scope narrows the install capabilities; write does not imply read', () => {
  it('scope storage:read cannot write, and nothing is written', async () => {
    const token = await installA.token('storage:read');
    expectForbidden(await t.gql(PUT, { input: { namespace: NS, key: 'scoped-write', value: 1 } }, { token }), 200);
    expectForbidden(await t.gql(DELETE, { input: { namespace: NS, key: SECRET_KEY_A } }, { token }), 200);
    await expectUntouched(installA, 'scoped-write', null);
    await expectUntouched(installA, SECRET_KEY_A, { value: { text: SECRET_VALUE_A }, revision: 1 });
    const read = await t.gql(`{ record(namespace: "${NS}", key: "${SECRET_KEY_A}") { value } }`, {}, { token });
    expect(read.body.data.record).toEqual({ value: { text: SECRET_VALUE_A } });
  });

  it('scope storage:write alone cannot read', async () => {
    const token = await installA.token('storage:write');
    for (const [, query, vars] of readQueries(NS, SECRET_KEY_A)) {
      const res = await t.gql(query, { ...vars, id: null }, { token });
      expectForbidden(res, 200);
      expectNoLeak(res, [SECRET_VALUE_A]);
    }
    const write = await t.gql(PUT, { input: { namespace: NS, key: 'write-only', value: 1 } }, { token });
    expect(write.body.data.putRecord.__typename).toBe('PutRecordSuccess');
  });

  it('an empty or unknown scope can do neither', async () => {
    for (const scope of ['', 'storage:*', 'storage:admin', 'STORAGE:READ STORAGE:WRITE']) {
      const token = await installA.token(scope);
      expectForbidden(await t.gql(`{ record(namespace: "${NS}", key: "${SECRET_KEY_A}") { value } }`, {}, { token }), 200);
      expectForbidden(await t.gql(PUT, { input: { namespace: NS, key: 'no-scope', value: 1 } }, { token }), 200);
    }
    await expectUntouched(installA, 'no-scope', null);
  });
});

describe('namespaces outside the install allowed list are FORBIDDEN', () => {
  let install: TestInstall;
  const hiddenValue = `hidden-ns-value-${randomUUID()}`;
  beforeAll(async () => {
    install = await t.createInstall({ namespaces: ['allowed'] });
    // Admins act whatever the capabilities: they can put data where the extension may not look.
    await adminPut(install, 'hidden', 'k', hiddenValue);
    await adminPut(install, 'allowed', 'k', 'visible');
  });

  it('reads of another namespace are refused and reveal nothing', async () => {
    const token = await install.token();
    for (const [, query, vars] of readQueries('hidden', 'k')) {
      const res = await t.gql(query, vars, { token });
      expectForbidden(res, 200);
      expectNoLeak(res, [hiddenValue]);
    }
  });

  it('writes to another namespace are refused and write nothing', async () => {
    const token = await install.token();
    expectForbidden(await t.gql(PUT, { input: { namespace: 'hidden', key: 'k', value: 'overwritten' } }, { token }), 200);
    expectForbidden(await t.gql(PUT, { input: { namespace: 'elsewhere', key: 'k', value: 1 } }, { token }), 200);
    expectForbidden(await t.gql(BULK, { input: { namespace: 'elsewhere', items: [{ key: 'k', value: 1 }] } }, { token }), 200);
    expectForbidden(await t.gql(DELETE, { input: { namespace: 'hidden', key: 'k' } }, { token }), 200);
    const state = await adminView(t, install, 'hidden', 'k');
    expect(state.record).toEqual({ value: hiddenValue, revision: 1 });
    expect(state.usage).toMatchObject({ namespaces: 2, keys: 2 });
    expect((await adminView(t, install, 'elsewhere', 'k')).record).toBeNull();
  });

  it('the allowed namespace works, and listing namespaces shows only it', async () => {
    const token = await install.token();
    const res = await t.gql(`{ record(namespace: "allowed", key: "k") { value } install { namespaces { name } } }`, {}, { token });
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data).toEqual({ record: { value: 'visible' }, install: { namespaces: [{ name: 'allowed' }] } });
  });
});

describe('an extension may act only on its own install', () => {
  const others = () => [
    ['another install of its tenant', siblingA, SECRET_KEY_SIBLING, SECRET_VALUE_SIBLING],
    ['an install of another tenant', installB, SECRET_KEY_B, SECRET_VALUE_B],
  ] as const;

  it('reads naming another install id are FORBIDDEN and reveal nothing', async () => {
    const token = await installA.token();
    for (const [, other, key, value] of others()) {
      for (const [, query, vars] of readQueries(NS, key)) {
        const res = await t.gql(query, { ...vars, id: other.id }, { token });
        expectForbidden(res, 200);
        expectNoLeak(res, [value, ...(query.includes('$key') ? [] : [key])]);
      }
      const install = await t.gql(`query($id: ID) { install(id: $id) { id tenantId usage { keys } } }`, { id: other.id }, { token });
      expectForbidden(install, 200);
    }
  });

  it('writes naming another install id are FORBIDDEN and change nothing there or here', async () => {
    const token = await installA.token();
    for (const [, other, key, value] of others()) {
      expectForbidden(await t.gql(PUT, { input: { installId: other.id, namespace: NS, key, value: 'hijacked' } }, { token }), 200);
      expectForbidden(await t.gql(BULK, { input: { installId: other.id, namespace: NS, items: [{ key, value: 'hijacked' }] } }, { token }), 200);
      expectForbidden(await t.gql(DELETE, { input: { installId: other.id, namespace: NS, key } }, { token }), 200);
      await expectUntouched(other, key, { value: { text: value }, revision: 1 });
      await expectUntouched(installA, key, null);
    }
  });

  it('the Runner acting for one install cannot name another', async () => {
    const headers = { 'x-runner-auth': t.runnerToken, 'x-install-id': installA.id };
    const read = await t.gql(`query($id: ID) { record(installId: $id, namespace: "${NS}", key: "${SECRET_KEY_SIBLING}") { value } }`, { id: siblingA.id }, { headers });
    expectForbidden(read, 200);
    expectNoLeak(read, [SECRET_VALUE_SIBLING]);
    expectForbidden(await t.gql(PUT, { input: { installId: siblingA.id, namespace: NS, key: 'runner', value: 1 } }, { headers }), 200);
    await expectUntouched(siblingA, 'runner', null);
  });

  it('naming its own id, in any letter case, is allowed', async () => {
    const res = await t.gql(
      `query($id: ID) { record(installId: $id, namespace: "${NS}", key: "${SECRET_KEY_A}") { value } install(id: $id) { id } }`,
      { id: installA.id.toUpperCase() },
      { token: await installA.token() },
    );
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data).toEqual({ record: { value: { text: SECRET_VALUE_A } }, install: { id: installA.id } });
  });
});

describe("an admin cannot reach another tenant's install; it looks exactly like an unknown install", () => {
  const queries: Array<[string, string, (id: string) => Record<string, unknown>]> = [
    ['record', `query($id: ID) { record(installId: $id, namespace: "${NS}", key: "${SECRET_KEY_A}") { value } }`, (id) => ({ id })],
    ['records', `query($id: ID) { records(installId: $id, namespace: "${NS}", keys: ["${SECRET_KEY_A}"]) { value } }`, (id) => ({ id })],
    ['recordList', `query($id: ID) { recordList(installId: $id, namespace: "${NS}") { edges { node { key value } } } }`, (id) => ({ id })],
    ['install', `query($id: ID) { install(id: $id) { id tenantId extensionId usage { keys bytes } } }`, (id) => ({ id })],
    ['auditLog', `query($id: ID) { install(id: $id) { auditLog { edges { node { operation key } } } } }`, (id) => ({ id })],
    ['putRecord', PUT, (id) => ({ input: { installId: id, namespace: NS, key: SECRET_KEY_A, value: 'hijacked' } })],
    ['bulkPutRecords', BULK, (id) => ({ input: { installId: id, namespace: NS, items: [{ key: 'bulk', value: 1 }] } })],
    ['deleteRecord', DELETE, (id) => ({ input: { installId: id, namespace: NS, key: SECRET_KEY_A } })],
    ['setNamespaceSchema', SET_SCHEMA, (id) => ({ input: { installId: id, namespace: NS, schema: { type: 'string' } } })],
  ];

  for (const [name, query, vars] of queries) {
    it(`${name}: FORBIDDEN, the same answer as for an unknown id, and nothing leaks or changes`, async () => {
      const foreign = await t.gql(query, vars(installA.id), { token: adminB });
      expectForbidden(foreign, 200);
      expectNoLeak(foreign, [...SECRETS_OF_A, SECRET_KEY_A, t.tenantId]);
      const unknown = await t.gql(query, vars(randomUUID()), { token: adminB });
      expectForbidden(unknown, 200);
      expect(foreign.body.errors).toEqual(unknown.body.errors);
      expect(foreign.body.data).toEqual(unknown.body.data);
    });
  }

  it("tenant A's data is unchanged afterwards and has no schema", async () => {
    const state = await adminView(t, installA, NS, SECRET_KEY_A);
    expect(state.record).toEqual({ value: { text: SECRET_VALUE_A }, revision: 1 });
    const schema = await t.gql(`query($id: ID) { install(id: $id) { namespace(name: "${NS}") { schema { version } } } }`, { id: installA.id }, { token: adminA });
    expect(schema.body.data.install.namespace.schema).toBeNull();
  });

  it("installs lists only the admin's own tenant", async () => {
    const res = await t.gql(`{ installs(first: 100) { edges { node { id tenantId } } } }`, {}, { token: adminB });
    expect(res.body.data.installs.edges).toEqual([{ node: { id: installB.id, tenantId: tenantB } }]);
  });
});

describe("a token whose tenant does not own its install is refused (403)", () => {
  it('tid of tenant B with the iid of an install of tenant A cannot read or write', async () => {
    const token = await mintToken(t.secret, { sub: 'mixed', tid: tenantB, role: 'extension', iid: installA.id, scope: 'storage:read storage:write' });
    const read = await t.gql(`{ record(namespace: "${NS}", key: "${SECRET_KEY_A}") { value } }`, {}, { token });
    expectForbidden(read, 403);
    expectNoLeak(read, SECRETS_OF_A);
    expectForbidden(await t.gql(PUT, { input: { namespace: NS, key: 'mixed', value: 1 } }, { token }), 403);
    await expectUntouched(installA, 'mixed', null);
  });
});

describe('a Runner request without x-install-id is refused (403)', () => {
  it('a valid Runner token alone can neither read nor write', async () => {
    const headers = { 'x-runner-auth': t.runnerToken };
    expectForbidden(await t.gql(`query($id: ID) { record(installId: $id, namespace: "${NS}", key: "${SECRET_KEY_A}") { value } }`, { id: installA.id }, { headers }), 403);
    expectForbidden(await t.gql(PUT, { input: { installId: installA.id, namespace: NS, key: 'runner-anon', value: 1 } }, { headers }), 403);
    await expectUntouched(installA, 'runner-anon', null);
  });
});

describe('admin-only fields refuse extensions and the Runner', () => {
  const callers = async (): Promise<Array<[string, { token?: string; headers?: Record<string, string> }]>> => [
    ['extension', { token: await installA.token() }],
    ['runner', { headers: { 'x-runner-auth': t.runnerToken, 'x-install-id': installA.id } }],
  ];

  it('installs is FORBIDDEN', async () => {
    for (const [, auth] of await callers()) {
      const res = await t.gql(`{ installs { edges { node { id } } } }`, {}, auth);
      expectForbidden(res, 200);
      expectNoLeak(res, [siblingA.id, installB.id]);
    }
  });

  it('upsertInstall is FORBIDDEN, for a new install and for raising its own capabilities', async () => {
    const target = await t.createInstall({ canWrite: false, namespaces: ['only'] });
    const newId = randomUUID();
    for (const [, auth] of await callers()) {
      expectForbidden(await t.gql(UPSERT, { input: { id: newId, extensionId: 'evil', enabled: true, canRead: true, canWrite: true } }, auth), 200);
    }
    const own = await upsert(await target.token(), { id: target.id, namespaces: null, canWrite: true });
    expectForbidden(own, 200);
    const res = await t.gql(`query($a: ID, $b: ID) { a: install(id: $a) { id } b: install(id: $b) { capabilities { write namespaces } } }`, { a: newId, b: target.id }, { token: adminA });
    expect(res.body.data.a).toBeNull();
    expect(res.body.data.b).toEqual({ capabilities: { write: false, namespaces: ['only'] } });
  });

  it('setNamespaceSchema is FORBIDDEN and sets nothing', async () => {
    for (const [, auth] of await callers()) {
      const res = await t.gql(SET_SCHEMA, { input: { installId: installA.id, namespace: 'schema-probe', schema: { type: 'string' } } }, auth);
      expectForbidden(res, 200);
    }
    const res = await t.gql(`query($id: ID) { install(id: $id) { namespace(name: "schema-probe") { schema { version } } } }`, { id: installA.id }, { token: adminA });
    expect(res.body.data.install.namespace.schema).toBeNull();
  });

  it('auditLog is FORBIDDEN even for the own install', async () => {
    for (const [, auth] of await callers()) {
      expectForbidden(await t.gql(`{ install { auditLog { edges { node { operation } } } } }`, {}, auth), 200);
    }
  });
});

describe('upsertInstall cannot move or take over an install of another tenant', () => {
  it('an admin of tenant B upserting the id of an install of tenant A is FORBIDDEN and changes nothing', async () => {
    const before = await t.gql(`query($id: ID) { install(id: $id) { id tenantId extensionId enabled capabilities { read write namespaces } } }`, { id: installA.id }, { token: adminA });
    for (const input of [
      { id: installA.id, extensionId: 'takeover', enabled: false, canRead: false, canWrite: false, namespaces: ['x'] },
      { id: installA.id.toUpperCase(), extensionId: 'takeover', enabled: true, canRead: true, canWrite: true },
    ]) {
      const res = await t.gql(UPSERT, { input }, { token: adminB });
      expectForbidden(res, 200);
      expectNoLeak(res, ['test-extension', ...SECRETS_OF_A]);
    }
    const after = await t.gql(`query($id: ID) { install(id: $id) { id tenantId extensionId enabled capabilities { read write namespaces } } }`, { id: installA.id }, { token: adminA });
    expect(after.body.data).toEqual(before.body.data);
    const read = await t.gql(`{ record(namespace: "${NS}", key: "${SECRET_KEY_A}") { value } }`, {}, { token: await installA.token() });
    expect(read.body.data.record).toEqual({ value: { text: SECRET_VALUE_A } });
  });

  it('an admin naming another tenant in upsertInstall is FORBIDDEN and creates nothing', async () => {
    const id = randomUUID();
    expectForbidden(await upsert(adminA, { id, tenantId: tenantB }), 200);
    const res = await t.gql(`query($id: ID) { install(id: $id) { id } }`, { id }, { token: adminB });
    expectForbidden(res, 200);
    const listed = await t.gql(`{ installs(first: 100) { edges { node { id } } } }`, {}, { token: adminB });
    expect(listed.body.data.installs.edges).toEqual([{ node: { id: installB.id } }]);
  });
});

describe('an admin must name the install it acts on', () => {
  it('every field without installId is FORBIDDEN and writes nothing', async () => {
    const reads = [
      `{ record(namespace: "${NS}", key: "${SECRET_KEY_A}") { value } }`,
      `{ records(namespace: "${NS}", keys: ["${SECRET_KEY_A}"]) { value } }`,
      `{ recordList(namespace: "${NS}") { edges { node { value } } } }`,
      `{ install { id } }`,
    ];
    for (const query of reads) {
      const res = await t.gql(query, {}, { token: adminA });
      expectForbidden(res, 200);
      expectNoLeak(res, SECRETS_OF_A);
    }
    expectForbidden(await t.gql(PUT, { input: { namespace: NS, key: 'no-install', value: 1 } }, { token: adminA }), 200);
    expectForbidden(await t.gql(BULK, { input: { namespace: NS, items: [{ key: 'no-install', value: 1 }] } }, { token: adminA }), 200);
    expectForbidden(await t.gql(DELETE, { input: { namespace: NS, key: SECRET_KEY_A } }, { token: adminA }), 200);
    await expectUntouched(installA, 'no-install', null);
    await expectUntouched(siblingA, 'no-install', null);
    await expectUntouched(installA, SECRET_KEY_A, { value: { text: SECRET_VALUE_A }, revision: 1 });
  });
});
