import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type GqlResult, type TestApp, type TestInstall } from '../support/app.js';
import { adminView, errorCodes, expectNoInternals, PUT, rawRequest } from './support.js';
import { FAN_OUT_MARK } from '../support/citus-guard.js';
import { withFanOut } from '../support/db.js';

let t: TestApp;
let install: TestInstall;
let token: string;
const NS = 'inputs';
/** Writes these tests expect to succeed; everything else must leave no trace. */
const expectedWrites: string[] = [];

beforeAll(async () => {
  t = await startTestApp();
  install = await t.createInstall();
  token = await install.token();
});
afterAll(async () => {
  await t?.close();
});

const json = (extra: Record<string, string> = {}) => ({ 'content-type': 'application/json', authorization: `Bearer ${token}`, ...extra });

/** A refused request: a client error (never 5xx), at least one error, no internals. */
function expectClientError(res: GqlResult & { text?: string }, status?: number): void {
  if (status !== undefined) expect(res.status).toBe(status);
  expect(res.status).toBeGreaterThanOrEqual(400);
  expect(res.status).toBeLessThan(500);
  expectNoInternals(res.text !== undefined ? { status: res.status, text: res.text } : res);
}

/** A GraphQL answer with errors and no written record (HTTP 4xx or 200, never 5xx). */
function expectGraphQLError(res: GqlResult & { text?: string }, code?: string): void {
  expect(res.status).toBeLessThan(500);
  expect(res.body.errors?.length ?? 0).toBeGreaterThan(0);
  if (code !== undefined) expect(errorCodes(res)).toContain(code);
  expectNoInternals(res.text !== undefined ? { status: res.status, text: res.text } : res);
}

async function expectNotWritten(key: string): Promise<void> {
  expect((await adminView(t, install, NS, key)).record).toBeNull();
}

/** A put of `key` with `value`, as JSON text, so that malformed variants can be derived from it. */
function putBody(key: string, variables: Record<string, unknown> = {}): Record<string, unknown> {
  return { query: PUT, variables: { input: { namespace: NS, key, value: { probe: true } }, ...variables } };
}

describe('a body that is not a GraphQL request is a 400, never a crash', () => {
  it('malformed JSON', async () => {
    const key = `malformed-${randomUUID()}`;
    const text = JSON.stringify(putBody(key)).slice(0, -5);
    const res = await rawRequest(t, { headers: json(), body: text });
    expectClientError(res, 400);
    // Neither the parser's error nor the body it quotes comes back.
    expect(res.body.errors?.[0]?.extensions).toEqual({ code: 'BAD_REQUEST' });
    expect(res.text).not.toContain(key);
    await expectNotWritten(key);
  });

  it('an Accept header the server cannot meet is 406 with a body that says what it can send', async () => {
    const res = await rawRequest(t, { headers: json({ accept: 'application/xml' }), body: JSON.stringify({ query: '{ __typename }' }) });
    expect(res.status).toBe(406);
    expect(res.text).toMatch(/^Not Acceptable: .*application\/json/);
    expectNoInternals(res);
  });

  it('a JSON array of requests (batching is not offered)', async () => {
    const key = `array-${randomUUID()}`;
    const res = await rawRequest(t, { headers: json(), body: JSON.stringify([putBody(key)]) });
    expectClientError(res, 400);
    await expectNotWritten(key);
  });

  for (const [name, body] of [
    ['a JSON string', JSON.stringify('mutation { putRecord }')],
    ['a JSON number', '42'],
    ['JSON null', 'null'],
    ['an empty body', ''],
    ['an object without query', JSON.stringify({ variables: {} })],
    ['a query that is not a string', JSON.stringify({ query: 42 })],
    ['variables that are not an object', JSON.stringify({ query: '{ __typename }', variables: 'abc' })],
    ['an empty query', JSON.stringify({ query: '' })],
    ['a query of only whitespace', JSON.stringify({ query: '   \n ' })],
    ['a query with a syntax error', JSON.stringify({ query: 'mutation { putRecord(input: { ' })],
  ] as const) {
    it(name, async () => {
      const res = await rawRequest(t, { headers: json(), body });
      expectClientError(res, 400);
      expect(res.body.errors?.length ?? 0).toBeGreaterThan(0);
    });
  }

  it('Content-Type text/plain is refused (415) and writes nothing', async () => {
    const key = `text-plain-${randomUUID()}`;
    const res = await rawRequest(t, { headers: json({ 'content-type': 'text/plain' }), body: JSON.stringify(putBody(key)) });
    expectClientError(res, 415);
    expect(res.body.errors?.[0]?.extensions?.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    await expectNotWritten(key);
  });

  it('a cross-site form POST carries no credential: 401, nothing written', async () => {
    // Browsers send form posts without a preflight, but cannot attach an Authorization header.
    const key = `form-${randomUUID()}`;
    const body = new URLSearchParams({ query: PUT, variables: JSON.stringify(putBody(key).variables) }).toString();
    const res = await rawRequest(t, { headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' }, body });
    expectClientError(res, 401);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    await expectNotWritten(key);
  });

  it('a body above STORAGE_MAX_BODY_BYTES is 413', async () => {
    const key = `huge-${randomUUID()}`;
    const body = JSON.stringify(putBody(key, { pad: 'x'.repeat(t.config.maxBodyBytes) }));
    const res = await rawRequest(t, { headers: json(), body });
    expect(res.status).toBe(413);
    expectNoInternals(res);
    await expectNotWritten(key);
  });
});

describe('variables of the wrong type are BAD_USER_INPUT and write nothing', () => {
  for (const [name, override] of [
    ['ifRevision as a string', { ifRevision: '1' }],
    ['ttlSeconds as a fraction', { ttlSeconds: 1.5 }],
    ['ttlSeconds above 32 bits', { ttlSeconds: 2 ** 40 }],
    ['key as a number', { key: 5 }],
    ['namespace as an object', { namespace: { a: 1 } }],
    ['a missing required value', { value: undefined }],
    ['an explicit null value', { value: null }],
    ['an unknown field in the input object', { bogus: 1 }],
  ] as const) {
    it(name, async () => {
      const key = `types-${randomUUID()}`;
      const input: Record<string, unknown> = { namespace: NS, key, value: { probe: true }, ...override };
      const res = await t.gql(PUT, { input: JSON.parse(JSON.stringify(input)) }, { token });
      expectGraphQLError(res, 'BAD_USER_INPUT');
      expect(res.body.data ?? null).toBeNull();
      await expectNotWritten(key);
    });
  }

  it('a misspelt field of an input object names no real field (no "Did you mean")', async () => {
    for (const input of [
      { namespac: NS, key: `sugg-${randomUUID()}`, value: 1 },
      { namespace: NS, key: `sugg-${randomUUID()}`, value: 1, ifrevision: 0 },
    ]) {
      const res = await t.gql(PUT, { input }, { token });
      expectGraphQLError(res, 'BAD_USER_INPUT');
      expect(res.status).toBe(400);
      const messages: string[] = res.body.errors!.map((e) => e.message);
      expect(messages.some((m) => /; Field "(namespac|ifrevision)" is not defined by type "PutRecordInput"\.$/.test(m)), messages.join('\n')).toBe(true);
      expect(messages.join('\n')).not.toMatch(/Did you mean/);
    }
  });

  it('keys as an object is BAD_USER_INPUT', async () => {
    const res = await t.gql(`query($keys: [String!]!) { records(namespace: "${NS}", keys: $keys) { key } }`, { keys: { a: 1 } }, { token });
    expectGraphQLError(res, 'BAD_USER_INPUT');
  });

  it('keys as a number is BAD_USER_INPUT', async () => {
    const res = await t.gql(`query($keys: [String!]!) { records(namespace: "${NS}", keys: $keys) { key } }`, { keys: 5 }, { token });
    expectGraphQLError(res, 'BAD_USER_INPUT');
  });

  it('keys as a single string is read as a one-key list (GraphQL list coercion), not an error', async () => {
    const res = await t.gql(`query($keys: [String!]!) { records(namespace: "${NS}", keys: $keys) { key } }`, { keys: 'x' }, { token });
    expect(res.status).toBe(200);
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data.records).toEqual([null]);
  });

  it('a negative ifRevision is BAD_USER_INPUT', async () => {
    const key = `negative-${randomUUID()}`;
    const res = await t.gql(PUT, { input: { namespace: NS, key, value: 1, ifRevision: -1 } }, { token });
    expectGraphQLError(res, 'BAD_USER_INPUT');
    await expectNotWritten(key);
  });
});

describe('a document that does not fit the schema is a 400 validation error', () => {
  it('an unknown field in the query, without suggesting real field names', async () => {
    const res = await t.gql(`{ recod(namespace: "${NS}", key: "k") { value } }`, {}, { token });
    expectClientError(res, 400);
    expect(errorCodes(res)).toContain('GRAPHQL_VALIDATION_FAILED');
    expect(JSON.stringify(res.body)).not.toMatch(/Did you mean/);
  });

  it('an unknown field in an inline input object', async () => {
    const key = `inline-${randomUUID()}`;
    const res = await t.gql(`mutation { putRecord(input: { namespace: "${NS}", key: "${key}", value: 1, bogus: 2 }) { __typename } }`, {}, { token });
    expectClientError(res, 400);
    expect(errorCodes(res)).toContain('GRAPHQL_VALIDATION_FAILED');
    await expectNotWritten(key);
  });

  it('an unknown argument', async () => {
    const res = await t.gql(`{ record(namespace: "${NS}", key: "k", tenantId: "x") { value } }`, {}, { token });
    expectClientError(res, 400);
    expect(errorCodes(res)).toContain('GRAPHQL_VALIDATION_FAILED');
  });

  it('an unknown operation name', async () => {
    const key = `opname-${randomUUID()}`;
    const res = await rawRequest(t, {
      headers: json(),
      body: JSON.stringify({ ...putBody(key), query: PUT.replace('mutation(', 'mutation Put('), operationName: 'Other' }),
    });
    expectClientError(res, 400);
    await expectNotWritten(key);
  });

  it('several operations without an operation name', async () => {
    const res = await rawRequest(t, { headers: json(), body: JSON.stringify({ query: 'query A { __typename } query B { __typename }' }) });
    expectClientError(res, 400);
  });
});

describe('mutations over GET are refused with 405', () => {
  it('a putRecord in the query string writes nothing', async () => {
    const key = `get-${randomUUID()}`;
    const query = `mutation { putRecord(input: { namespace: "${NS}", key: "${key}", value: 1 }) { __typename } }`;
    const res = await rawRequest(t, { method: 'GET', path: `/graphql?query=${encodeURIComponent(query)}`, headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
    expect(res.status).toBe(405);
    expectNoInternals(res);
    await expectNotWritten(key);
  });

  it('malformed JSON in the variables or extensions of a GET is 400 BAD_REQUEST, not an internal error', async () => {
    for (const extra of ['&variables={bad', '&variables=x', '&extensions={bad', `&extensions=${encodeURIComponent('{"persistedQuery":')}`]) {
      const res = await rawRequest(t, {
        method: 'GET',
        path: `/graphql?query=${encodeURIComponent('{ install { id } }')}${extra}`,
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
      });
      expect(res.status, extra).toBe(400);
      expect(res.text, extra).toMatch(/BAD_REQUEST/);
      expect(res.text).not.toMatch(/INTERNAL|Unexpected error/);
      expectNoInternals(res);
    }
  });

  it('a query over GET works (control)', async () => {
    const res = await rawRequest(t, { method: 'GET', path: `/graphql?query=${encodeURIComponent('{ install { id } }')}`, headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
    expect(res.status).toBe(200);
    expect(res.body.data.install.id).toBe(install.id);
  });
});

describe('costly documents are refused with a client error, never a crash', () => {
  it('too many aliases', async () => {
    const fields = Array.from({ length: t.config.graphqlLimits.maxAliases + 5 }, (_, i) => `a${i}: record(namespace: "${NS}", key: "k${i}") { key }`);
    const res = await t.gql(`{ ${fields.join(' ')} }`, {}, { token });
    expectGraphQLError(res);
    expect(res.status).toBeGreaterThanOrEqual(400);
  });

  it('too many tokens', async () => {
    const keys = Array.from({ length: t.config.graphqlLimits.maxTokens }, (_, i) => `"k${i}"`);
    const res = await t.gql(`{ records(namespace: "${NS}", keys: [${keys.join(', ')}]) { key } }`, {}, { token });
    expectGraphQLError(res);
    expect(res.status).toBeGreaterThanOrEqual(400);
  });

  it('a query whose cost is above the limit', async () => {
    const res = await t.gql(
      `{ installs(first: 100) { edges { node { namespaces { recordList(first: 100) { edges { node { key } } } } } } } }`,
      {},
      { token: await t.adminToken() },
    );
    expectGraphQLError(res);
    expect(res.status).toBeGreaterThanOrEqual(400);
  });

  it('a deeply nested inline value literal', async () => {
    const key = `deep-literal-${randomUUID()}`;
    const literal = '{ a: '.repeat(1000) + '1' + ' }'.repeat(1000);
    const res = await t.gql(`mutation { putRecord(input: { namespace: "${NS}", key: "${key}", value: ${literal} }) { __typename } }`, {}, { token });
    expectGraphQLError(res);
    await expectNotWritten(key);
  });
});

describe('SQL injection attempts are plain data', () => {
  const injection = "x'; DROP TABLE ext_storage_records; --";

  it('in a namespace: namespaceFormat, for writes and reads', async () => {
    const put = await t.gql(PUT, { input: { namespace: injection, key: 'k', value: 1 } }, { token });
    expect(put.status).toBe(200);
    expect(put.body.data.putRecord).toMatchObject({ __typename: 'LimitExceeded', limit: 'namespaceFormat' });
    const read = await t.gql(`query($ns: String!) { record(namespace: $ns, key: "k") { value } }`, { ns: injection }, { token });
    expectGraphQLError(read, 'LIMIT_EXCEEDED');
    expect(read.body.errors?.[0]?.extensions?.limit).toBe('namespaceFormat');
    const list = await t.gql(`query($ns: String!) { recordList(namespace: $ns) { edges { node { key } } } }`, { ns: injection }, { token });
    expectGraphQLError(list, 'LIMIT_EXCEEDED');
  });

  it('in a key: stored and read back as text, and the table still exists', async () => {
    const put = await t.gql(PUT, { input: { namespace: NS, key: injection, value: { v: injection } } }, { token });
    expect(put.body.data.putRecord).toEqual({ __typename: 'PutRecordSuccess', record: { key: injection, value: { v: injection }, revision: 1 } });
    expectedWrites.push('putRecord');
    const read = await t.gql(
      `query($key: String!, $prefix: String!) {
        record(namespace: "${NS}", key: $key) { key value }
        recordList(namespace: "${NS}", prefix: $prefix) { edges { node { key } } }
      }`,
      { key: injection, prefix: "x'; DROP" },
      { token },
    );
    expect(read.body.errors).toBeUndefined();
    expect(read.body.data).toEqual({ record: { key: injection, value: { v: injection } }, recordList: { edges: [{ node: { key: injection } }] } });
    // Across every tenant on purpose: the key must exist exactly once anywhere.
    const rows = await withFanOut(t.database.handle.db, (db) =>
      sql<{ n: number }>`${sql.raw(FAN_OUT_MARK)} SELECT count(*)::int AS n FROM ext_storage_records WHERE key = ${injection}`.execute(db),
    );
    expect(rows.rows[0]?.n).toBe(1);
  });

  it('in a prefix: LIKE wildcards match literally', async () => {
    const res = await t.gql(`{ recordList(namespace: "${NS}", prefix: "%") { edges { node { key } } } }`, {}, { token });
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data.recordList.edges).toEqual([]);
  });

  it('in an install id: treated like an unknown install', async () => {
    const res = await t.gql(
      `query($id: ID) { record(installId: $id, namespace: "${NS}", key: "k") { key } }`,
      { id: "00000000-0000-0000-0000-000000000000' OR '1'='1" },
      { token: await t.adminToken() },
    );
    expectGraphQLError(res, 'FORBIDDEN');
  });
});

describe('oversize and malformed keys and values are LimitExceeded, not crashes', () => {
  it('a 10,000-character key is keyLength, for writes and reads', async () => {
    const key = 'k'.repeat(10_000);
    const put = await t.gql(PUT, { input: { namespace: NS, key, value: 1 } }, { token });
    expect(put.body.data.putRecord).toEqual({ __typename: 'LimitExceeded', limit: 'keyLength', max: 256, actual: 10_000 });
    const read = await t.gql(`query($key: String!) { record(namespace: "${NS}", key: $key) { key } }`, { key }, { token });
    expectGraphQLError(read, 'LIMIT_EXCEEDED');
    expect(read.body.errors?.[0]?.extensions?.limit).toBe('keyLength');
    expect(JSON.stringify(read.body)).not.toContain(key);
  });

  it('a value nested 65 levels deep (one more than allowed) is valueFormat', async () => {
    const key = `deep-${randomUUID()}`;
    let value: unknown = 1;
    for (let i = 0; i < 65; i++) value = i % 2 === 0 ? { a: value } : [value];
    const put = await t.gql(PUT, { input: { namespace: NS, key, value } }, { token });
    expect(put.status).toBe(200);
    expect(put.body.data.putRecord).toMatchObject({ __typename: 'LimitExceeded', limit: 'valueFormat' });
    await expectNotWritten(key);
  });

  it('metadata nested 65 levels deep is valueFormat', async () => {
    const key = `deep-meta-${randomUUID()}`;
    let metadata: unknown = 1;
    for (let i = 0; i < 65; i++) metadata = { m: metadata };
    const put = await t.gql(PUT, { input: { namespace: NS, key, value: 1, metadata } }, { token });
    expect(put.body.data.putRecord).toMatchObject({ __typename: 'LimitExceeded', limit: 'valueFormat' });
    await expectNotWritten(key);
  });

  // Contract, "Cost, fairness and availability": nesting far beyond the limit is refused with 400
  // before the body is parsed (it was parsed, then LimitExceeded with HTTP 200).
  it('a value or metadata nested 1,000 or 100,000 levels deep is 400 before parsing, without a crash', async () => {
    for (const [field, levels] of [['value', 1000], ['value', 100_000], ['metadata', 1000]] as const) {
      const key = `very-deep-${randomUUID()}`;
      const deep = `${'['.repeat(levels)}1${']'.repeat(levels)}`;
      const input = field === 'value' ? `"value": ${deep}` : `"value": 1, "metadata": ${deep}`;
      const text = `{"query": ${JSON.stringify(PUT)}, "variables": {"input": {"namespace": "${NS}", "key": "${key}", ${input}}}}`;
      const res = await rawRequest(t, { headers: json(), body: text });
      expectClientError(res, 400);
      expect(res.body.errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
      expect(res.body).not.toHaveProperty('data');
      await expectNotWritten(key);
    }
  });

  it('U+0000 in a value is valueFormat and a control character in a key is keyFormat', async () => {
    const key = `nul-${randomUUID()}`;
    const nul = await t.gql(PUT, { input: { namespace: NS, key, value: { s: 'a\u0000b' } } }, { token });
    expect(nul.body.data.putRecord).toMatchObject({ __typename: 'LimitExceeded', limit: 'valueFormat' });
    await expectNotWritten(key);
    const control = await t.gql(PUT, { input: { namespace: NS, key: 'a\u0000b', value: 1 } }, { token });
    expect(control.body.data.putRecord).toMatchObject({ __typename: 'LimitExceeded', limit: 'keyFormat' });
  });

  it('a malformed cursor is BAD_USER_INPUT', async () => {
    for (const after of ['not-a-cursor', '%%%', Buffer.from('{"k":"r"}').toString('base64url'), 'A'.repeat(5000)]) {
      const res = await t.gql(`query($after: String) { recordList(namespace: "${NS}", after: $after) { edges { node { key } } } }`, { after }, { token });
      expectGraphQLError(res, 'BAD_USER_INPUT');
    }
  });
});

describe('a request carrying two credentials is refused', () => {
  it('Authorization and x-runner-auth together: 401, nothing read or written', async () => {
    const key = `two-creds-${randomUUID()}`;
    for (const headers of [
      { authorization: `Bearer ${token}`, 'x-runner-auth': t.runnerToken, 'x-install-id': install.id },
      { authorization: `Bearer ${await t.adminToken()}`, 'x-runner-auth': t.runnerToken, 'x-install-id': install.id },
    ]) {
      const res = await t.gql(PUT, { input: { namespace: NS, key, value: 1 } }, { headers });
      expectClientError(res, 401);
      expect(res.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
      expect(res.body).not.toHaveProperty('data');
    }
    await expectNotWritten(key);
  });
});

describe('refused input leaves no trace', () => {
  it('the audit log and the usage show only the accepted writes', async () => {
    const state = await adminView(t, install, NS, 'none');
    expect(state.auditOperations).toEqual([...expectedWrites, 'upsertInstall']);
    expect(state.usage.keys).toBe(expectedWrites.length);
  });

  it('the server is still healthy', async () => {
    expect((await fetch(`${t.url}/readyz`)).status).toBe(200);
  });
});
