/**
 * Trusted documents (src/graphql/trusted-documents.ts): a caller names a known document by its
 * SHA-256 (`extensions.persistedQuery`), the typed client does so by default, and with
 * STORAGE_TRUSTED_DOCUMENTS=require extensions and the Runner run nothing else (admins still do).
 * Every refusal is a 400 that runs nothing: a refused write leaves no record.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStorageClient, type FetchLike } from '../../client/index.js';
import { GetRecordDocument, PutRecordDocument } from '../../client/generated/graphql.js';
import manifest from '../../client/generated/persisted-documents.json' with { type: 'json' };
import { ConfigError, loadConfig } from '../../src/config.js';
import { sha256Hex } from '../../src/graphql/trusted-documents.js';
import { startTestApp, type TestApp, type TestInstall } from '../support/app.js';

/** The manifest's hash (bare hex) and text of a generated document. */
function known(document: { __meta__?: Record<string, unknown> }): { hash: string; text: string } {
  const key = document.__meta__?.hash as string;
  const text = (manifest as Record<string, string>)[key];
  expect(text, `${key} is in the manifest`).toBeTypeOf('string');
  return { hash: key.slice('sha256:'.length), text: text! };
}
const GET = known(GetRecordDocument);
const PUT = known(PutRecordDocument);
const pq = (hash: unknown, version: unknown = 1) => ({ persistedQuery: { version, sha256Hash: hash } });

/** An operator's own document, in a manifest file (STORAGE_TRUSTED_DOCUMENTS_FILE). */
const OWN = 'query OwnCount($ns: String!) { recordList(namespace: $ns, first: 5) { edges { node { key } } } }';
const dir = mkdtempSync(join(tmpdir(), 'trusted-docs-'));
const ownFile = join(dir, 'own.json');
writeFileSync(ownFile, JSON.stringify({ [`sha256:${sha256Hex(OWN)}`]: OWN }));

interface Answer {
  status: number;
  body: { data?: any; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> };
}

async function post(t: TestApp, body: unknown, headers: Record<string, string>, path = '/graphql'): Promise<Answer> {
  const res = await fetch(`${t.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Answer['body'] };
}
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const codeOf = (a: Answer) => a.body.errors?.[0]?.extensions?.code;

/** The record as an admin sees it (null when absent); admins may send any text in either mode. */
async function stored(t: TestApp, install: TestInstall, key: string): Promise<{ revision: number } | null> {
  const res = await t.gql('query($k: String!, $i: ID) { record(namespace: "td", key: $k, installId: $i) { revision } }', { k: key, i: install.id }, { token: await t.adminToken(install.tenantId) });
  expect(res.body.errors).toBeUndefined();
  return res.body.data.record;
}

const putVars = (key: string) => ({ input: { namespace: 'td', key, value: { n: 1 } } });

describe('STORAGE_TRUSTED_DOCUMENTS=allow (the default)', () => {
  let t: TestApp;
  let install: TestInstall;
  let token: string;
  beforeAll(async () => {
    t = await startTestApp({ STORAGE_TRUSTED_DOCUMENTS_FILE: ownFile });
    install = await t.createInstall();
    token = await install.token();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('runs a known hash, on the fast path and on Yoga, with the same answer as the text', async () => {
    const put = await post(t, { variables: putVars('a'), extensions: pq(PUT.hash) }, bearer(token));
    expect(put.status).toBe(200);
    expect(put.body.data.putRecord.__typename).toBe('PutRecordSuccess');
    expect((await stored(t, install, 'a'))?.revision).toBe(1);
    const variables = { namespace: 'td', key: 'a' };
    const byHash = await post(t, { variables, extensions: pq(GET.hash) }, bearer(token));
    const byHashViaYoga = await post(t, { variables, extensions: pq(`sha256:${GET.hash}`) }, bearer(token), '/graphql?via=yoga');
    const byText = await post(t, { query: GET.text, variables }, bearer(token));
    expect(byHash.status).toBe(200);
    expect(byHash.body.data.record.value).toEqual({ n: 1 });
    expect(byHashViaYoga).toEqual(byHash);
    expect(byText).toEqual(byHash);
    // Any other text too, in this mode.
    const other = await post(t, { query: '{ record(namespace: "td", key: "a") { revision } }' }, bearer(token));
    expect(other.body.data.record.revision).toBe(1);
  });

  it('runs an operator manifest document by hash', async () => {
    const a = await post(t, { variables: { ns: 'td' }, extensions: pq(sha256Hex(OWN)) }, bearer(token));
    expect(a.status).toBe(200);
    expect(a.body.data.recordList.edges.map((e: any) => e.node.key)).toContain('a');
  });

  it('an unknown hash is 400 PERSISTED_QUERY_NOT_FOUND, on both paths', async () => {
    for (const path of ['/graphql', '/graphql?via=yoga']) {
      const a = await post(t, { variables: putVars('never'), extensions: pq('0'.repeat(64)) }, bearer(token), path);
      expect(a.status).toBe(400);
      expect(a.body.data).toBeUndefined();
      expect(codeOf(a)).toBe('PERSISTED_QUERY_NOT_FOUND');
      expect(a.body.errors![0]!.message).toBe('PersistedQueryNotFound');
    }
    expect(await stored(t, install, 'never')).toBeNull();
  });

  it('a text sent with an unknown hash runs when it hashes to that value (allow mode)', async () => {
    const text = '{ record(namespace: "td", key: "a") { key } }';
    const a = await post(t, { query: text, extensions: pq(sha256Hex(text)) }, bearer(token));
    expect(a.status).toBe(200);
    expect(a.body.data.record.key).toBe('a');
  });

  it('a text that does not match the named hash is refused and runs nothing', async () => {
    // A known read's hash with a write's text: neither runs.
    const a = await post(t, { query: PUT.text, variables: putVars('sneaky'), extensions: pq(GET.hash) }, bearer(token));
    expect(a.status).toBe(400);
    expect(codeOf(a)).toBe('BAD_REQUEST');
    expect(await stored(t, install, 'sneaky')).toBeNull();
    // Unknown hash plus a text that is not its document: not found, nothing runs.
    const b = await post(t, { query: PUT.text, variables: putVars('sneaky'), extensions: pq('1'.repeat(64)) }, bearer(token));
    expect(b.status).toBe(400);
    expect(codeOf(b)).toBe('PERSISTED_QUERY_NOT_FOUND');
    expect(await stored(t, install, 'sneaky')).toBeNull();
  });

  it('a malformed persistedQuery is 400 BAD_REQUEST, never a crash', async () => {
    const bad = [pq(GET.hash, 2), pq(GET.hash.toUpperCase()), pq(42), pq(`${GET.hash}0`), pq(null), { persistedQuery: 'x' }, { persistedQuery: [] }];
    for (const extensions of bad) {
      for (const path of ['/graphql', '/graphql?via=yoga']) {
        const a = await post(t, { variables: { namespace: 'td', key: 'a' }, extensions }, bearer(token), path);
        expect(a.status, JSON.stringify(extensions)).toBe(400);
        expect(codeOf(a)).toBe('BAD_REQUEST');
        expect(JSON.stringify(a.body)).not.toMatch(/at .*\.(ts|js):\d+/);
      }
    }
    // Neither a query nor a hash: Yoga's own answer, as before.
    const none = await post(t, { variables: {} }, bearer(token));
    expect(none.status).toBe(400);
    expect(none.body.errors![0]!.message).toBe('Must provide query string.');
  });

  it('a hash still needs a credential', async () => {
    const a = await post(t, { variables: { namespace: 'td', key: 'a' }, extensions: pq(GET.hash) }, {});
    expect(a.status).toBe(401);
    expect(codeOf(a)).toBe('UNAUTHENTICATED');
  });

  it('the typed client sends hashes, and its text once when a gateway does not know one', async () => {
    const bodies: any[] = [];
    const spy: FetchLike = async (input, init) => {
      bodies.push(JSON.parse(init.body));
      return fetch(input, init);
    };
    const client = createStorageClient({ url: t.url, token }, spy);
    expect((await client.put('td', 'c1', { v: 1 })).ok).toBe(true);
    const got = await client.get('td', 'c1');
    expect(got.ok && got.record?.value).toEqual({ v: 1 });
    expect(bodies).toHaveLength(2);
    for (const b of bodies) {
      expect(b.query).toBeUndefined();
      expect(b.extensions.persistedQuery.sha256Hash).toMatch(/^[0-9a-f]{64}$/);
    }

    // A gateway of another version: the hash is unknown there (simulated by changing it in flight).
    bodies.length = 0;
    let first = true;
    const otherVersion: FetchLike = async (input, init) => {
      const body = JSON.parse(init.body);
      if (first && body.extensions) {
        first = false;
        body.extensions.persistedQuery.sha256Hash = 'f'.repeat(64);
      }
      bodies.push(body);
      return fetch(input, { ...init, body: JSON.stringify(body) });
    };
    const older = createStorageClient({ url: t.url, token }, otherVersion);
    expect((await older.put('td', 'c2', { v: 2 })).ok).toBe(true);
    expect(bodies).toHaveLength(2);
    expect(bodies[1].query).toBe(PutRecordDocument.toString());
    expect((await stored(t, install, 'c2'))?.revision).toBe(1);

    // trustedDocuments: false sends the text.
    bodies.length = 0;
    const plain = createStorageClient({ url: t.url, token, trustedDocuments: false }, spy);
    expect((await plain.get('td', 'c1')).ok).toBe(true);
    expect(bodies[0].query).toBe(GetRecordDocument.toString());
  });
});

describe('STORAGE_TRUSTED_DOCUMENTS=require', () => {
  let t: TestApp;
  let install: TestInstall;
  let token: string;
  beforeAll(async () => {
    t = await startTestApp({ STORAGE_TRUSTED_DOCUMENTS: 'require', STORAGE_TRUSTED_DOCUMENTS_FILE: ownFile });
    install = await t.createInstall();
    token = await install.token();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('refuses an extension\'s own text, on both paths and over GET, and runs nothing', async () => {
    const text = 'mutation($input: PutRecordInput!) { putRecord(input: $input) { __typename } }';
    for (const path of ['/graphql', '/graphql?via=yoga']) {
      const a = await post(t, { query: text, variables: putVars('no') }, bearer(token), path);
      expect(a.status).toBe(400);
      expect(codeOf(a)).toBe('PERSISTED_QUERY_REQUIRED');
    }
    const q = encodeURIComponent('{ record(namespace: "td", key: "no") { key } }');
    const res = await fetch(`${t.url}/graphql?query=${q}`, { headers: bearer(token) });
    expect(res.status).toBe(400);
    expect(((await res.json()) as Answer['body']).errors![0]!.extensions!.code).toBe('PERSISTED_QUERY_REQUIRED');
    expect(await stored(t, install, 'no')).toBeNull();
  });

  it('refuses the Runner\'s own text too', async () => {
    const a = await post(t, { query: '{ record(namespace: "td", key: "x") { key } }' }, { 'x-runner-auth': t.runnerToken, 'x-install-id': install.id });
    expect(a.status).toBe(400);
    expect(codeOf(a)).toBe('PERSISTED_QUERY_REQUIRED');
  });

  it('runs trusted documents: by hash (client\'s and operator\'s), or by their exact text', async () => {
    const put = await post(t, { variables: putVars('yes'), extensions: pq(PUT.hash) }, bearer(token));
    expect(put.body.data.putRecord.__typename).toBe('PutRecordSuccess');
    const runner = await post(t, { variables: { namespace: 'td', key: 'yes' }, extensions: pq(GET.hash) }, { 'x-runner-auth': t.runnerToken, 'x-install-id': install.id });
    expect(runner.body.data.record.revision).toBe(1);
    const own = await post(t, { variables: { ns: 'td' }, extensions: pq(sha256Hex(OWN)) }, bearer(token));
    expect(own.body.data.recordList.edges).toHaveLength(1);
    const exact = await post(t, { query: GET.text, variables: { namespace: 'td', key: 'yes' } }, bearer(token));
    expect(exact.body.data.record.key).toBe('yes');
    // A text sent with its own (unknown) hash is still not trusted here.
    const text = '{ record(namespace: "td", key: "yes") { key } }';
    const selfHashed = await post(t, { query: text, extensions: pq(sha256Hex(text)) }, bearer(token));
    expect(selfHashed.status).toBe(400);
    expect(codeOf(selfHashed)).toBe('PERSISTED_QUERY_NOT_FOUND');
  });

  it('admins keep sending any query (GraphiQL)', async () => {
    const a = await post(t, { query: `{ install(id: "${install.id}") { usage { keys } } }` }, bearer(await t.adminToken()));
    expect(a.status).toBe(200);
    expect(a.body.data.install.usage.keys).toBeGreaterThanOrEqual(1);
  });

  it('the typed client works unchanged, watch() included', async () => {
    const client = createStorageClient({ url: t.url, token });
    expect((await client.put('td', 'w0', 1)).ok).toBe(true);
    const list = await client.listPage('td');
    expect(list.ok && list.records.length).toBeGreaterThanOrEqual(2);
    const abort = new AbortController();
    const changes = client.watch({ namespace: 'td', signal: abort.signal });
    const next = changes.next();
    // The subscription is live once the SSE stream is open; keep writing until a change arrives.
    let n = 0;
    const writer = setInterval(() => void client.put('td', `w${++n}`, n), 100);
    try {
      const first = await next;
      expect(first.done).toBe(false);
      expect(first.value!.key).toMatch(/^w\d+$/);
    } finally {
      clearInterval(writer);
      abort.abort();
      await changes.return?.(undefined);
    }
    // Its text is refused here, so the client must have sent hashes only.
    const plain = createStorageClient({ url: t.url, token, trustedDocuments: false });
    const refused = await plain.get('td', 'w0');
    expect(refused.ok).toBe(false);
  });
});

describe('configuration', () => {
  it('refuses a bad mode and a manifest whose hash does not match, naming them', () => {
    expect(() => loadConfig({ NODE_ENV: 'test', STORAGE_TRUSTED_DOCUMENTS: 'sometimes' })).toThrow(ConfigError);
    expect(() => loadConfig({ NODE_ENV: 'test', STORAGE_TRUSTED_DOCUMENTS: 'sometimes' })).toThrow(/STORAGE_TRUSTED_DOCUMENTS/);
    const wrong = join(dir, 'wrong.json');
    writeFileSync(wrong, JSON.stringify({ [`sha256:${'a'.repeat(64)}`]: OWN }));
    expect(() => loadConfig({ NODE_ENV: 'test', STORAGE_TRUSTED_DOCUMENTS_FILE: wrong })).toThrow(/does not hash to it/);
    const notJson = join(dir, 'not.json');
    writeFileSync(notJson, '{');
    expect(() => loadConfig({ NODE_ENV: 'test', STORAGE_TRUSTED_DOCUMENTS_FILE: notJson })).toThrow(/STORAGE_TRUSTED_DOCUMENTS_FILE/);
    expect(() => loadConfig({ NODE_ENV: 'test', STORAGE_TRUSTED_DOCUMENTS_FILE: join(dir, 'missing.json') })).toThrow(ConfigError);
    const list = join(dir, 'list.json');
    writeFileSync(list, '[]');
    expect(() => loadConfig({ NODE_ENV: 'test', STORAGE_TRUSTED_DOCUMENTS_FILE: list })).toThrow(/JSON object/);
    expect(loadConfig({ NODE_ENV: 'test', STORAGE_TRUSTED_DOCUMENTS_FILE: ownFile }).trustedDocuments.documents.byHash.has(sha256Hex(OWN))).toBe(true);
  });
});
