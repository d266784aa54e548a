/**
 * The Runner's REST door (contract, "HTTP surface"): POST /api/internal/ext-storage/install/{installId}
 * with x-runner-auth. Exact success shapes, every status code and the {error, code, details} body.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JsonText } from '../../src/storage/json-text.js';
import { startTestApp, type TestApp, type TestInstall } from '../support/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

interface RunnerResponse {
  status: number;
  headers: Headers;
  body: any;
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

async function runner(
  installId: string,
  body: unknown,
  opts: { auth?: string | null; method?: string; rawBody?: string; contentType?: string } = {},
): Promise<RunnerResponse> {
  const headers: Record<string, string> = { 'content-type': opts.contentType ?? 'application/json' };
  const auth = opts.auth === undefined ? t.runnerToken : opts.auth;
  if (auth !== null) headers['x-runner-auth'] = auth;
  const method = opts.method ?? 'POST';
  const res = await fetch(`${t.url}/api/internal/ext-storage/install/${installId}`, {
    method,
    headers,
    body: method === 'GET' || method === 'HEAD' ? undefined : (opts.rawBody ?? JSON.stringify(body)),
  });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = { raw: text };
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** Every refusal has exactly this body: a message, a code, and details (null or an object). */
function expectError(res: RunnerResponse, status: number, code: string): any {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  expect(Object.keys(res.body).sort()).toEqual(['code', 'details', 'error']);
  expect(res.body.code).toBe(code);
  expect(typeof res.body.error).toBe('string');
  expect(res.body.error.length).toBeGreaterThan(0);
  return res.body.details;
}

describe('Runner REST: authentication', () => {
  let install: TestInstall;
  beforeAll(async () => {
    install = await t.createInstall();
  });

  it('refuses a request without x-runner-auth with 401 UNAUTHORIZED', async () => {
    const res = await runner(install.id, { operation: 'get', namespace: 'ns', key: 'k' }, { auth: null });
    expect(expectError(res, 401, 'UNAUTHORIZED')).toBeNull();
  });

  it('refuses a wrong x-runner-auth with 401 UNAUTHORIZED', async () => {
    const res = await runner(install.id, { operation: 'get', namespace: 'ns', key: 'k' }, { auth: 'not-the-token' });
    expectError(res, 401, 'UNAUTHORIZED');
  });

  it('refuses an extension JWT in place of the Runner token with 401', async () => {
    const res = await fetch(`${t.url}/api/internal/ext-storage/install/${install.id}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await install.token()}` },
      body: JSON.stringify({ operation: 'get', namespace: 'ns', key: 'k' }),
    });
    expect(res.status).toBe(401);
    expect((await res.json()).code).toBe('UNAUTHORIZED');
  });

  it('checks the credential before the body: a malformed body with a wrong token is 401', async () => {
    const res = await runner(install.id, null, { auth: 'wrong', rawBody: '{nope' });
    expectError(res, 401, 'UNAUTHORIZED');
  });

  it('accepts every configured Runner token (rotation)', async () => {
    const res = await runner(install.id, { operation: 'put', namespace: 'ns', key: 'rotated', value: 1 }, { auth: 'second-runner-token' });
    expect(res.status).toBe(200);
    expect(res.body.revision).toBe(1);
  });

  it('refuses an unknown install with 403 FORBIDDEN', async () => {
    const res = await runner(randomUUID(), { operation: 'get', namespace: 'ns', key: 'k' });
    expectError(res, 403, 'FORBIDDEN');
  });

  it('refuses a malformed install id with 403 FORBIDDEN, like an unknown one', async () => {
    expectError(await runner('not-a-uuid', { operation: 'get', namespace: 'ns', key: 'k' }), 403, 'FORBIDDEN');
    expectError(await runner('%E0%A4%A', { operation: 'get', namespace: 'ns', key: 'k' }), 403, 'FORBIDDEN');
  });

  it('refuses a disabled install with 403 FORBIDDEN and keeps its data', async () => {
    const other = await t.createInstall();
    expect((await runner(other.id, { operation: 'put', namespace: 'ns', key: 'kept', value: 'v' })).status).toBe(200);
    await t.app.storage.upsertInstall(t.adminCaller(), {
      id: other.id,
      extensionId: 'test-extension',
      enabled: false,
      canRead: true,
      canWrite: true,
    });
    expectError(await runner(other.id, { operation: 'get', namespace: 'ns', key: 'kept' }), 403, 'FORBIDDEN');
    const kept = await t.app.storage.getRecord(t.adminCaller(), { installId: other.id, namespace: 'ns', key: 'kept' });
    expect(kept?.value).toEqual(new JsonText('"v"'));
  });

  it('accepts the install id in upper case (ids compare case-insensitively)', async () => {
    const res = await runner(install.id.toUpperCase(), { operation: 'put', namespace: 'ns', key: 'upper', value: true });
    expect(res.status).toBe(200);
  });

  it('refuses a write to an install without the write capability with 403 FORBIDDEN', async () => {
    const readOnly = await t.createInstall({ canWrite: false });
    expectError(await runner(readOnly.id, { operation: 'put', namespace: 'ns', key: 'k', value: 1 }), 403, 'FORBIDDEN');
    expectError(await runner(readOnly.id, { operation: 'delete', namespace: 'ns', key: 'k' }), 403, 'FORBIDDEN');
    expectError(await runner(readOnly.id, { operation: 'bulkPut', namespace: 'ns', items: [{ key: 'k', value: 1 }] }), 403, 'FORBIDDEN');
  });

  it('refuses a read of an install without the read capability with 403 FORBIDDEN', async () => {
    const writeOnly = await t.createInstall({ canRead: false });
    expectError(await runner(writeOnly.id, { operation: 'get', namespace: 'ns', key: 'k' }), 403, 'FORBIDDEN');
    expectError(await runner(writeOnly.id, { operation: 'list', namespace: 'ns' }), 403, 'FORBIDDEN');
  });

  it('refuses a namespace the install may not touch with 403 FORBIDDEN', async () => {
    const narrow = await t.createInstall({ namespaces: ['allowed'] });
    expect((await runner(narrow.id, { operation: 'put', namespace: 'allowed', key: 'k', value: 1 })).status).toBe(200);
    expectError(await runner(narrow.id, { operation: 'put', namespace: 'other', key: 'k', value: 1 }), 403, 'FORBIDDEN');
    expectError(await runner(narrow.id, { operation: 'list', namespace: 'other' }), 403, 'FORBIDDEN');
  });
});

describe('Runner REST: put and get', () => {
  let install: TestInstall;
  beforeAll(async () => {
    install = await t.createInstall();
  });

  it('put answers exactly {namespace, key, revision, ttlExpiresAt, createdAt, updatedAt}', async () => {
    const res = await runner(install.id, { operation: 'put', namespace: 'prefs', key: 'theme', value: { mode: 'dark' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(Object.keys(res.body).sort()).toEqual(['createdAt', 'key', 'namespace', 'revision', 'ttlExpiresAt', 'updatedAt']);
    expect(res.body).toMatchObject({ namespace: 'prefs', key: 'theme', revision: 1, ttlExpiresAt: null });
    expect(res.body.createdAt).toMatch(ISO);
    expect(res.body.updatedAt).toMatch(ISO);
  });

  it('get answers the put shape plus value and metadata', async () => {
    await runner(install.id, { operation: 'put', namespace: 'prefs', key: 'full', value: [1, 'two', { three: 3 }], metadata: { by: 'runner' } });
    const res = await runner(install.id, { operation: 'get', namespace: 'prefs', key: 'full' });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(['createdAt', 'key', 'metadata', 'namespace', 'revision', 'ttlExpiresAt', 'updatedAt', 'value']);
    expect(res.body).toMatchObject({ namespace: 'prefs', key: 'full', revision: 1, value: [1, 'two', { three: 3 }], metadata: { by: 'runner' }, ttlExpiresAt: null });
  });

  it('get of a record written without metadata answers metadata {}', async () => {
    await runner(install.id, { operation: 'put', namespace: 'prefs', key: 'nometa', value: 'x' });
    const res = await runner(install.id, { operation: 'get', namespace: 'prefs', key: 'nometa' });
    expect(res.body.metadata).toEqual({});
  });

  it('every put adds exactly 1 to the revision and updates updatedAt, not createdAt', async () => {
    const first = await runner(install.id, { operation: 'put', namespace: 'prefs', key: 'count', value: 1 });
    const second = await runner(install.id, { operation: 'put', namespace: 'prefs', key: 'count', value: 2 });
    expect(second.body.revision).toBe(first.body.revision + 1);
    expect(second.body.createdAt).toBe(first.body.createdAt);
    expect(Date.parse(second.body.updatedAt)).toBeGreaterThanOrEqual(Date.parse(first.body.updatedAt));
    const got = await runner(install.id, { operation: 'get', namespace: 'prefs', key: 'count' });
    expect(got.body).toMatchObject({ value: 2, revision: 2 });
  });

  it('put with ttlSeconds answers ttlExpiresAt about that far ahead', async () => {
    const before = Date.now();
    const res = await runner(install.id, { operation: 'put', namespace: 'prefs', key: 'ttl', value: 1, ttlSeconds: 3600 });
    expect(res.status).toBe(200);
    expect(res.body.ttlExpiresAt).toMatch(ISO);
    const at = Date.parse(res.body.ttlExpiresAt);
    expect(at).toBeGreaterThanOrEqual(before + 3600_000 - 1000);
    expect(at).toBeLessThanOrEqual(Date.now() + 3600_000 + 1000);
  });

  it('put with ifRevision equal to the current revision succeeds', async () => {
    const a = await runner(install.id, { operation: 'put', namespace: 'prefs', key: 'cas', value: 'a', ifRevision: 0 });
    expect(a.body.revision).toBe(1);
    const b = await runner(install.id, { operation: 'put', namespace: 'prefs', key: 'cas', value: 'b', ifRevision: 1 });
    expect(b.status).toBe(200);
    expect(b.body.revision).toBe(2);
  });

  it('a stale ifRevision is 409 REVISION_MISMATCH naming the key and the current revision', async () => {
    await runner(install.id, { operation: 'put', namespace: 'prefs', key: 'stale', value: 1 });
    await runner(install.id, { operation: 'put', namespace: 'prefs', key: 'stale', value: 2 });
    const res = await runner(install.id, { operation: 'put', namespace: 'prefs', key: 'stale', value: 3, ifRevision: 1 });
    const details = expectError(res, 409, 'REVISION_MISMATCH');
    expect(details).toEqual({ namespace: 'prefs', key: 'stale', expectedRevision: 1, currentRevision: 2 });
    const got = await runner(install.id, { operation: 'get', namespace: 'prefs', key: 'stale' });
    expect(got.body).toMatchObject({ value: 2, revision: 2 });
  });

  it('create-only (ifRevision 0) of an existing record is 409 with its current revision', async () => {
    await runner(install.id, { operation: 'put', namespace: 'prefs', key: 'exists', value: 1 });
    const details = expectError(await runner(install.id, { operation: 'put', namespace: 'prefs', key: 'exists', value: 2, ifRevision: 0 }), 409, 'REVISION_MISMATCH');
    expect(details).toMatchObject({ key: 'exists', expectedRevision: 0, currentRevision: 1 });
  });

  it('ifRevision n > 0 on a missing record is 409 with currentRevision null, and writes nothing', async () => {
    const details = expectError(await runner(install.id, { operation: 'put', namespace: 'prefs', key: 'ghost', value: 1, ifRevision: 3 }), 409, 'REVISION_MISMATCH');
    expect(details).toMatchObject({ key: 'ghost', expectedRevision: 3, currentRevision: null });
    expectError(await runner(install.id, { operation: 'get', namespace: 'prefs', key: 'ghost' }), 404, 'NOT_FOUND');
  });

  it('get of a missing record is 404 NOT_FOUND', async () => {
    const details = expectError(await runner(install.id, { operation: 'get', namespace: 'prefs', key: 'missing' }), 404, 'NOT_FOUND');
    expect(details).toBeNull();
  });

  it('a value above the size limit is 400 LIMIT_EXCEEDED valueBytes, and nothing is written', async () => {
    const res = await runner(install.id, { operation: 'put', namespace: 'prefs', key: 'big', value: 'x'.repeat(70_000) });
    const details = expectError(res, 400, 'LIMIT_EXCEEDED');
    expect(details).toMatchObject({ limit: 'valueBytes', max: 65536, itemIndex: null });
    expect(details.actual).toBeGreaterThan(65536);
    expectError(await runner(install.id, { operation: 'get', namespace: 'prefs', key: 'big' }), 404, 'NOT_FOUND');
  });

  it('a top-level null value is 400 LIMIT_EXCEEDED valueType', async () => {
    const details = expectError(await runner(install.id, { operation: 'put', namespace: 'prefs', key: 'null', value: null }), 400, 'LIMIT_EXCEEDED');
    expect(details.limit).toBe('valueType');
  });

  it('a TTL out of range is 400 LIMIT_EXCEEDED ttlSeconds', async () => {
    const details = expectError(await runner(install.id, { operation: 'put', namespace: 'prefs', key: 'ttl0', value: 1, ttlSeconds: 1 }), 400, 'LIMIT_EXCEEDED');
    expect(details.limit).toBe('ttlSeconds');
  });

  it('a malformed namespace or key is 400 LIMIT_EXCEEDED naming the limit', async () => {
    expect(expectError(await runner(install.id, { operation: 'put', namespace: 'Bad Name', key: 'k', value: 1 }), 400, 'LIMIT_EXCEEDED').limit).toBe('namespaceFormat');
    expect(expectError(await runner(install.id, { operation: 'put', namespace: 'ns', key: 'a\u0001b', value: 1 }), 400, 'LIMIT_EXCEEDED').limit).toBe('keyFormat');
    expect(expectError(await runner(install.id, { operation: 'get', namespace: 'ns', key: 'k'.repeat(257) }), 400, 'LIMIT_EXCEEDED').limit).toBe('keyLength');
  });

  it('metadata that is not a JSON object is 400 LIMIT_EXCEEDED metadataType', async () => {
    const details = expectError(await runner(install.id, { operation: 'put', namespace: 'prefs', key: 'm', value: 1, metadata: ['a'] }), 400, 'LIMIT_EXCEEDED');
    expect(details.limit).toBe('metadataType');
  });

  it('an unknown field (a misspelt ifRevision, anywhere) is 400 VALIDATION_FAILED naming it, and nothing is written', async () => {
    const key = `cond-${randomUUID()}`;
    const first = await runner(install.id, { operation: 'put', namespace: 'prefs', key, value: 'v1' });
    expect(first.status).toBe(200);
    const refused: Array<[unknown, RegExp]> = [
      [{ operation: 'put', namespace: 'prefs', key, value: 'X', ifrevision: 7 }, /unknown field "ifrevision"/],
      [{ operation: 'delete', namespace: 'prefs', key, ifRevison: 7 }, /unknown field "ifRevison"/],
      [{ operation: 'get', namespace: 'prefs', key, includeValues: false }, /unknown field "includeValues"/],
      [{ operation: 'increment', namespace: 'prefs', key: `n-${key}`, by: 1, ifRevision: 0 }, /unknown field "ifRevision"/],
      [{ operation: 'bulkPut', namespace: 'prefs', items: [{ key: `b-${key}`, value: 1 }, { key, value: 'X', ifRevison: 7 }] }, /items\[1\]: unknown field "ifRevison"/],
      [{ operation: 'commit', operations: [{ put: { namespace: 'prefs', key, value: 'X', ifRevision: 7 } }] }, /operation 0 put: unknown field "ifRevision"/],
      [{ operation: 'commit', operations: [{ delete: { namespace: 'prefs', key, revision: 1 } }] }, /operation 0 delete: unknown field "revision"/],
      [{ operation: 'commit', operations: [{ put: { namespace: 'prefs', key, value: 'X' }, check: {} }] }, /operation 0: unknown field "check"/],
      [{ operation: 'commit', checks: [{ namespace: 'prefs', key, revision: 1, ifRevision: 1 }], operations: [{ delete: { namespace: 'prefs', key } }] }, /check 0: unknown field "ifRevision"/],
      [{ operation: 'commit', checks: [null], operations: [{ delete: { namespace: 'prefs', key } }] }, /check 0 must be an object/],
      [{ operation: 'changes', after: 'x' }, /unknown field "after"/],
    ];
    for (const [body, message] of refused) {
      const res = await runner(install.id, body);
      expectError(res, 400, 'VALIDATION_FAILED');
      expect(res.body.error, JSON.stringify(body)).toMatch(message);
    }
    const after = await runner(install.id, { operation: 'get', namespace: 'prefs', key });
    expect(after.status).toBe(200);
    expect(after.body).toMatchObject({ value: 'v1', revision: first.body.revision });
    expect((await runner(install.id, { operation: 'get', namespace: 'prefs', key: `b-${key}` })).status).toBe(404);
    expect((await runner(install.id, { operation: 'get', namespace: 'prefs', key: `n-${key}` })).status).toBe(404);
    // The known fields still work, `namespace` included where it is ignored (commit).
    const ok = await runner(install.id, { operation: 'commit', namespace: 'ignored', operations: [{ put: { namespace: 'prefs', key, value: 'v2' } }], dryRun: true });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
  });

  it('a negative ifRevision is 400 VALIDATION_FAILED', async () => {
    expectError(await runner(install.id, { operation: 'put', namespace: 'prefs', key: 'neg', value: 1, ifRevision: -1 }), 400, 'VALIDATION_FAILED');
  });

  it('a write against the namespace schema that fails is 400 VALIDATION_FAILED with the issues', async () => {
    await t.app.storage.setNamespaceSchema(t.adminCaller(), {
      installId: install.id,
      namespace: 'typed',
      schema: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] },
    });
    const details = expectError(await runner(install.id, { operation: 'put', namespace: 'typed', key: 'k', value: { n: 'one' } }), 400, 'VALIDATION_FAILED');
    expect(details.schemaVersion).toBe(1);
    expect(details.issues).toEqual(expect.arrayContaining([expect.objectContaining({ path: '/n', keyword: 'type' })]));
    expect((await runner(install.id, { operation: 'put', namespace: 'typed', key: 'k', value: { n: 1 } })).status).toBe(200);
  });
});

describe('Runner REST: malformed requests', () => {
  let install: TestInstall;
  beforeAll(async () => {
    install = await t.createInstall();
  });

  it('a body that is not JSON is 400 VALIDATION_FAILED', async () => {
    expectError(await runner(install.id, null, { rawBody: '{"operation": "get",' }), 400, 'VALIDATION_FAILED');
  });

  it('a body that is JSON but not an object is 400 VALIDATION_FAILED', async () => {
    expectError(await runner(install.id, [{ operation: 'get' }]), 400, 'VALIDATION_FAILED');
    expectError(await runner(install.id, 'get'), 400, 'VALIDATION_FAILED');
    expectError(await runner(install.id, null), 400, 'VALIDATION_FAILED');
    expectError(await runner(install.id, null, { rawBody: '' }), 400, 'VALIDATION_FAILED');
  });

  it('an unknown or missing operation is 400 VALIDATION_FAILED', async () => {
    expectError(await runner(install.id, { operation: 'drop', namespace: 'ns' }), 400, 'VALIDATION_FAILED');
    expectError(await runner(install.id, { namespace: 'ns', key: 'k' }), 400, 'VALIDATION_FAILED');
    expectError(await runner(install.id, { operation: 42, namespace: 'ns' }), 400, 'VALIDATION_FAILED');
  });

  it('a missing namespace or key is 400 VALIDATION_FAILED', async () => {
    expectError(await runner(install.id, { operation: 'get', key: 'k' }), 400, 'VALIDATION_FAILED');
    expectError(await runner(install.id, { operation: 'get', namespace: 'ns' }), 400, 'VALIDATION_FAILED');
    expectError(await runner(install.id, { operation: 'delete', namespace: 'ns' }), 400, 'VALIDATION_FAILED');
  });

  it('a put without a value is 400 VALIDATION_FAILED', async () => {
    expectError(await runner(install.id, { operation: 'put', namespace: 'ns', key: 'k' }), 400, 'VALIDATION_FAILED');
  });

  it('fields of the wrong type are 400 VALIDATION_FAILED and write nothing', async () => {
    const wrong: Array<Record<string, unknown>> = [
      { operation: 'put', namespace: 7, key: 'k', value: 1 },
      { operation: 'put', namespace: 'ns', key: 7, value: 1 },
      { operation: 'put', namespace: 'ns', key: 'k', value: 1, ttlSeconds: '3600' },
      { operation: 'put', namespace: 'ns', key: 'k', value: 1, ttlSeconds: 3600.5 },
      { operation: 'put', namespace: 'ns', key: 'k', value: 1, ifRevision: '1' },
      { operation: 'put', namespace: 'ns', key: 'k', value: 1, schemaVersion: true },
      { operation: 'get', namespace: ['ns'], key: 'k' },
      { operation: 'list', namespace: 'ns', limit: '10' },
      { operation: 'list', namespace: 'ns', limit: 2.5 },
      { operation: 'list', namespace: 'ns', cursor: 12 },
      { operation: 'list', namespace: 'ns', keyPrefix: { a: 1 } },
      { operation: 'list', namespace: 'ns', includeValues: 'false' },
      { operation: 'list', namespace: 'ns', includeMetadata: 0 },
      { operation: 'delete', namespace: 'ns', key: 'k', ifRevision: 'x' },
      { operation: 'bulkPut', namespace: 'ns', items: { key: 'k', value: 1 } },
      { operation: 'bulkPut', namespace: 'ns', items: ['k'] },
      { operation: 'bulkPut', namespace: 'ns', items: [{ key: 'k' }] },
      { operation: 'bulkPut', namespace: 'ns', items: [{ key: 1, value: 1 }] },
      { operation: 'bulkPut', namespace: 'ns' },
    ];
    for (const body of wrong) {
      const res = await runner(install.id, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expectError(res, 400, 'VALIDATION_FAILED');
    }
    expect((await runner(install.id, { operation: 'list', namespace: 'ns' })).body.items).toEqual([]);
  });

  it('GET on the Runner path is 405 and allows POST', async () => {
    const res = await runner(install.id, null, { method: 'GET' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
    expect(res.body).toMatchObject({ code: 'METHOD_NOT_ALLOWED', details: null });
  });

  it('PUT and DELETE on the Runner path are 405 too', async () => {
    expect((await runner(install.id, { operation: 'get', namespace: 'ns', key: 'k' }, { method: 'PUT' })).status).toBe(405);
    expect((await runner(install.id, { operation: 'get', namespace: 'ns', key: 'k' }, { method: 'DELETE' })).status).toBe(405);
  });

  it('a body above STORAGE_MAX_BODY_BYTES is refused with 413 before parsing', async () => {
    const res = await runner(install.id, null, { rawBody: JSON.stringify({ operation: 'put', namespace: 'ns', key: 'k', value: 'x'.repeat(t.config.maxBodyBytes) }) });
    expect(res.status).toBe(413);
    expect(res.body.code).toBe('PAYLOAD_TOO_LARGE');
  });
});

describe('Runner REST: list', () => {
  let install: TestInstall;
  const keys = Array.from({ length: 57 }, (_, i) => `item/${String(i).padStart(3, '0')}`);
  beforeAll(async () => {
    install = await t.createInstall();
    for (let i = 0; i < keys.length; i += 20) {
      const items = keys.slice(i, i + 20).map((key) => ({ key, value: { key }, metadata: { i: keys.indexOf(key) } }));
      const res = await runner(install.id, { operation: 'bulkPut', namespace: 'many', items });
      expect(res.status).toBe(200);
    }
    await runner(install.id, { operation: 'put', namespace: 'other', key: 'item/zzz', value: 'elsewhere' });
  });

  it('defaults to 25 items with values and metadata, each in the get shape', async () => {
    const res = await runner(install.id, { operation: 'list', namespace: 'many' });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(['items', 'nextCursor']);
    expect(res.body.items).toHaveLength(25);
    expect(typeof res.body.nextCursor).toBe('string');
    const first = res.body.items[0];
    expect(Object.keys(first).sort()).toEqual(['createdAt', 'key', 'metadata', 'namespace', 'revision', 'ttlExpiresAt', 'updatedAt', 'value']);
    expect(first).toMatchObject({ namespace: 'many', key: 'item/000', value: { key: 'item/000' }, metadata: { i: 0 }, revision: 1, ttlExpiresAt: null });
    expect(res.body.items.map((i: { key: string }) => i.key)).toEqual(keys.slice(0, 25));
  });

  it('leaves value out when includeValues is false, and metadata when includeMetadata is false', async () => {
    const noValues = await runner(install.id, { operation: 'list', namespace: 'many', limit: 3, includeValues: false });
    for (const item of noValues.body.items) {
      expect(item).not.toHaveProperty('value');
      expect(item).toHaveProperty('metadata');
    }
    const noMeta = await runner(install.id, { operation: 'list', namespace: 'many', limit: 3, includeMetadata: false });
    for (const item of noMeta.body.items) {
      expect(item).toHaveProperty('value');
      expect(item).not.toHaveProperty('metadata');
    }
    const neither = await runner(install.id, { operation: 'list', namespace: 'many', limit: 3, includeValues: false, includeMetadata: false });
    expect(Object.keys(neither.body.items[0]).sort()).toEqual(['createdAt', 'key', 'namespace', 'revision', 'ttlExpiresAt', 'updatedAt']);
  });

  it('pages a namespace of 57 keys by 10 with no row skipped or repeated, nextCursor null on the last page', async () => {
    const seen: string[] = [];
    const pageSizes: number[] = [];
    let cursor: string | null = null;
    do {
      const body: Record<string, unknown> = { operation: 'list', namespace: 'many', limit: 10, includeValues: false };
      if (cursor !== null) body.cursor = cursor;
      const res = await runner(install.id, body);
      expect(res.status).toBe(200);
      pageSizes.push(res.body.items.length);
      seen.push(...res.body.items.map((i: { key: string }) => i.key));
      cursor = res.body.nextCursor;
    } while (cursor !== null && pageSizes.length < 20);
    expect(pageSizes).toEqual([10, 10, 10, 10, 10, 7]);
    expect(seen).toEqual(keys);
  });

  it('answers nextCursor null when the page ends exactly at the last key', async () => {
    const res = await runner(install.id, { operation: 'list', namespace: 'many', limit: 57 });
    expect(res.body.items).toHaveLength(57);
    expect(res.body.nextCursor).toBeNull();
  });

  it('filters by keyPrefix', async () => {
    const res = await runner(install.id, { operation: 'list', namespace: 'many', keyPrefix: 'item/05', limit: 100 });
    expect(res.body.items.map((i: { key: string }) => i.key)).toEqual(['item/050', 'item/051', 'item/052', 'item/053', 'item/054', 'item/055', 'item/056']);
    expect(res.body.nextCursor).toBeNull();
    const none = await runner(install.id, { operation: 'list', namespace: 'many', keyPrefix: 'nothing/' });
    expect(none.body).toEqual({ items: [], nextCursor: null });
  });

  it('a keyPrefix with a control character is 400 LIMIT_EXCEEDED keyFormat, named as the prefix', async () => {
    const res = await runner(install.id, { operation: 'list', namespace: 'many', keyPrefix: 'item\u0001' });
    expect(expectError(res, 400, 'LIMIT_EXCEEDED').limit).toBe('keyFormat');
    expect(res.body.error).toBe('prefix contains a control character');
  });

  it('pages within a keyPrefix', async () => {
    const first = await runner(install.id, { operation: 'list', namespace: 'many', keyPrefix: 'item/01', limit: 6 });
    const second = await runner(install.id, { operation: 'list', namespace: 'many', keyPrefix: 'item/01', limit: 6, cursor: first.body.nextCursor });
    expect([...first.body.items, ...second.body.items].map((i: { key: string }) => i.key)).toEqual(keys.slice(10, 20));
    expect(second.body.nextCursor).toBeNull();
  });

  it('an empty namespace lists as {items: [], nextCursor: null}', async () => {
    expect((await runner(install.id, { operation: 'list', namespace: 'empty' })).body).toEqual({ items: [], nextCursor: null });
  });

  it('a limit of 0 or 101 is 400 LIMIT_EXCEEDED pageSize', async () => {
    for (const limit of [0, 101, -1]) {
      const details = expectError(await runner(install.id, { operation: 'list', namespace: 'many', limit }), 400, 'LIMIT_EXCEEDED');
      expect(details).toMatchObject({ limit: 'pageSize', max: 100, actual: limit });
    }
    expect((await runner(install.id, { operation: 'list', namespace: 'many', limit: 100 })).body.items).toHaveLength(57);
    expect((await runner(install.id, { operation: 'list', namespace: 'many', limit: 1 })).body.items).toHaveLength(1);
  });

  it('a malformed cursor is 400 VALIDATION_FAILED', async () => {
    expectError(await runner(install.id, { operation: 'list', namespace: 'many', cursor: 'not a cursor!' }), 400, 'VALIDATION_FAILED');
    expectError(await runner(install.id, { operation: 'list', namespace: 'many', cursor: 'bm9wZQ' }), 400, 'VALIDATION_FAILED');
  });

  it("another namespace's cursor is 400 VALIDATION_FAILED", async () => {
    const other = await runner(install.id, { operation: 'list', namespace: 'many', limit: 1 });
    expectError(await runner(install.id, { operation: 'list', namespace: 'other', cursor: other.body.nextCursor }), 400, 'VALIDATION_FAILED');
  });

  it("another install's cursor is 400 VALIDATION_FAILED", async () => {
    const page = await runner(install.id, { operation: 'list', namespace: 'many', limit: 1 });
    const stranger = await t.createInstall();
    expectError(await runner(stranger.id, { operation: 'list', namespace: 'many', cursor: page.body.nextCursor }), 400, 'VALIDATION_FAILED');
  });
});

describe('Runner REST: delete', () => {
  let install: TestInstall;
  beforeAll(async () => {
    install = await t.createInstall();
  });

  it('delete of an existing record answers {success: true} and the record is gone', async () => {
    await runner(install.id, { operation: 'put', namespace: 'ns', key: 'gone', value: 1 });
    const res = await runner(install.id, { operation: 'delete', namespace: 'ns', key: 'gone' });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ success: true });
    expectError(await runner(install.id, { operation: 'get', namespace: 'ns', key: 'gone' }), 404, 'NOT_FOUND');
  });

  it('delete of a missing record answers {success: false}', async () => {
    const res = await runner(install.id, { operation: 'delete', namespace: 'ns', key: 'never' });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ success: false });
  });

  it('delete with a stale ifRevision is 409 REVISION_MISMATCH and keeps the record', async () => {
    await runner(install.id, { operation: 'put', namespace: 'ns', key: 'keep', value: 1 });
    await runner(install.id, { operation: 'put', namespace: 'ns', key: 'keep', value: 2 });
    const details = expectError(await runner(install.id, { operation: 'delete', namespace: 'ns', key: 'keep', ifRevision: 1 }), 409, 'REVISION_MISMATCH');
    expect(details).toEqual({ namespace: 'ns', key: 'keep', expectedRevision: 1, currentRevision: 2 });
    expect((await runner(install.id, { operation: 'get', namespace: 'ns', key: 'keep' })).status).toBe(200);
    expect((await runner(install.id, { operation: 'delete', namespace: 'ns', key: 'keep', ifRevision: 2 })).body).toEqual({ success: true });
  });

  it('delete with ifRevision n > 0 of a missing record is 409 with currentRevision null', async () => {
    const details = expectError(await runner(install.id, { operation: 'delete', namespace: 'ns', key: 'absent', ifRevision: 1 }), 409, 'REVISION_MISMATCH');
    expect(details).toMatchObject({ key: 'absent', currentRevision: null });
  });

  it('delete with ifRevision 0 asserts absence: missing is {success: false}, present is 409', async () => {
    expect((await runner(install.id, { operation: 'delete', namespace: 'ns', key: 'absent0', ifRevision: 0 })).body).toEqual({ success: false });
    await runner(install.id, { operation: 'put', namespace: 'ns', key: 'present0', value: 1 });
    expectError(await runner(install.id, { operation: 'delete', namespace: 'ns', key: 'present0', ifRevision: 0 }), 409, 'REVISION_MISMATCH');
  });
});

describe('Runner REST: bulkPut', () => {
  let install: TestInstall;
  beforeAll(async () => {
    install = await t.createInstall();
  });

  it('answers {namespace, items: [{key, revision, ttlExpiresAt}]} in input order', async () => {
    const res = await runner(install.id, {
      operation: 'bulkPut',
      namespace: 'bulk',
      items: [
        { key: 'b', value: 2 },
        { key: 'a', value: 1, metadata: { m: true }, ttlSeconds: 600 },
      ],
    });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(['items', 'namespace']);
    expect(res.body.namespace).toBe('bulk');
    expect(res.body.items).toHaveLength(2);
    expect(res.body.items[0]).toEqual({ key: 'b', revision: 1, ttlExpiresAt: null });
    expect(Object.keys(res.body.items[1]).sort()).toEqual(['key', 'revision', 'ttlExpiresAt']);
    expect(res.body.items[1]).toMatchObject({ key: 'a', revision: 1 });
    expect(res.body.items[1].ttlExpiresAt).toMatch(ISO);
    const got = await runner(install.id, { operation: 'get', namespace: 'bulk', key: 'a' });
    expect(got.body).toMatchObject({ value: 1, metadata: { m: true } });
  });

  it('is atomic: a stale item is 409 naming its key and nothing of the batch is written', async () => {
    await runner(install.id, { operation: 'put', namespace: 'atomic', key: 'x', value: 'x1' });
    const res = await runner(install.id, {
      operation: 'bulkPut',
      namespace: 'atomic',
      items: [
        { key: 'new', value: 1 },
        { key: 'x', value: 'x2', ifRevision: 5 },
      ],
    });
    const details = expectError(res, 409, 'REVISION_MISMATCH');
    expect(details).toMatchObject({ namespace: 'atomic', key: 'x', expectedRevision: 5, currentRevision: 1 });
    expectError(await runner(install.id, { operation: 'get', namespace: 'atomic', key: 'new' }), 404, 'NOT_FOUND');
    expect((await runner(install.id, { operation: 'get', namespace: 'atomic', key: 'x' })).body).toMatchObject({ value: 'x1', revision: 1 });
  });

  it('an oversize item is 400 LIMIT_EXCEEDED with its itemIndex', async () => {
    const details = expectError(
      await runner(install.id, {
        operation: 'bulkPut',
        namespace: 'bulk',
        items: [
          { key: 'ok', value: 1 },
          { key: 'big', value: 'x'.repeat(70_000) },
        ],
      }),
      400,
      'LIMIT_EXCEEDED',
    );
    expect(details).toMatchObject({ limit: 'valueBytes', itemIndex: 1 });
  });

  it('an empty batch, a duplicate key and 101 items are 400 LIMIT_EXCEEDED', async () => {
    expect(expectError(await runner(install.id, { operation: 'bulkPut', namespace: 'bulk', items: [] }), 400, 'LIMIT_EXCEEDED').limit).toBe('bulkItems');
    expect(
      expectError(
        await runner(install.id, { operation: 'bulkPut', namespace: 'bulk', items: [{ key: 'd', value: 1 }, { key: 'd', value: 2 }] }),
        400,
        'LIMIT_EXCEEDED',
      ).limit,
    ).toBe('bulkDuplicateKey');
    const items = Array.from({ length: 101 }, (_, i) => ({ key: `k${i}`, value: i }));
    expect(expectError(await runner(install.id, { operation: 'bulkPut', namespace: 'bulk', items }), 400, 'LIMIT_EXCEEDED')).toMatchObject({ limit: 'bulkItems', max: 100, actual: 101 });
  });
});

describe('Runner REST: increment', () => {
  let install: TestInstall;
  beforeAll(async () => {
    install = await t.createInstall();
  });
  const GET_SHAPE = ['createdAt', 'key', 'metadata', 'namespace', 'revision', 'ttlExpiresAt', 'updatedAt', 'value'];

  it('answers the get shape: a missing record starts at 0 and is created at revision 1', async () => {
    const res = await runner(install.id, { operation: 'increment', namespace: 'counters', key: 'visits', by: 5 });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(GET_SHAPE);
    expect(res.body).toMatchObject({ namespace: 'counters', key: 'visits', value: 5, metadata: {}, revision: 1, ttlExpiresAt: null });
    expect(res.body.createdAt).toMatch(ISO);
    expect(res.body.updatedAt).toMatch(ISO);
    const again = await runner(install.id, { operation: 'increment', namespace: 'counters', key: 'visits', by: -2 });
    expect(again.body).toMatchObject({ value: 3, revision: 2, createdAt: res.body.createdAt });
    expect((await runner(install.id, { operation: 'get', namespace: 'counters', key: 'visits' })).body).toMatchObject({ value: 3, revision: 2 });
  });

  it('adds in exact decimal and keeps metadata; ttlSeconds sets the TTL', async () => {
    await runner(install.id, { operation: 'put', namespace: 'counters', key: 'dec', value: 0.1, metadata: { unit: 'eur' } });
    const res = await runner(install.id, { operation: 'increment', namespace: 'counters', key: 'dec', by: 0.2, ttlSeconds: 3600 });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ value: 0.3, metadata: { unit: 'eur' }, revision: 2 });
    expect(res.body.ttlExpiresAt).toMatch(ISO);
  });

  it('an increment of a value that is not a number is 400 LIMIT_EXCEEDED valueType and changes nothing', async () => {
    await runner(install.id, { operation: 'put', namespace: 'counters', key: 'text', value: 'seven' });
    const details = expectError(await runner(install.id, { operation: 'increment', namespace: 'counters', key: 'text', by: 1 }), 400, 'LIMIT_EXCEEDED');
    expect(details).toMatchObject({ limit: 'valueType', itemIndex: null });
    expect((await runner(install.id, { operation: 'get', namespace: 'counters', key: 'text' })).body).toMatchObject({ value: 'seven', revision: 1 });
  });

  it('a malformed increment is 400 and writes nothing', async () => {
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ operation: 'increment', namespace: 'counters', key: 'bad' }, 'VALIDATION_FAILED'],
      [{ operation: 'increment', namespace: 'counters', key: 'bad', by: '1' }, 'VALIDATION_FAILED'],
      [{ operation: 'increment', namespace: 'counters', key: 'bad', by: null }, 'VALIDATION_FAILED'],
      [{ operation: 'increment', namespace: 'counters', key: 'bad', by: [1] }, 'VALIDATION_FAILED'],
      [{ operation: 'increment', namespace: 'counters', key: 'bad', by: 1, ttlSeconds: '60' }, 'VALIDATION_FAILED'],
      [{ operation: 'increment', namespace: 'counters', key: 7, by: 1 }, 'VALIDATION_FAILED'],
      [{ operation: 'increment', key: 'bad', by: 1 }, 'VALIDATION_FAILED'],
      [{ operation: 'increment', namespace: 'Bad NS', key: 'bad', by: 1 }, 'LIMIT_EXCEEDED'],
      [{ operation: 'increment', namespace: 'counters', key: 'bad', by: 1, ttlSeconds: 1 }, 'LIMIT_EXCEEDED'],
    ];
    for (const [body, code] of bad) expectError(await runner(install.id, body), 400, code);
    // 1e400 is Infinity once parsed: not a finite number.
    const raw = await runner(install.id, null, { rawBody: '{"operation":"increment","namespace":"counters","key":"bad","by":1e400}' });
    expectError(raw, 400, 'VALIDATION_FAILED');
    expectError(await runner(install.id, { operation: 'get', namespace: 'counters', key: 'bad' }), 404, 'NOT_FOUND');
  });

  it('refuses an install without the write capability with 403 FORBIDDEN', async () => {
    const readOnly = await t.createInstall({ canWrite: false });
    expectError(await runner(readOnly.id, { operation: 'increment', namespace: 'counters', key: 'k', by: 1 }), 403, 'FORBIDDEN');
  });
});

describe('Runner REST: commit', () => {
  let install: TestInstall;
  beforeAll(async () => {
    install = await t.createInstall();
  });
  const get = (namespace: string, key: string) => runner(install.id, { operation: 'get', namespace, key });

  it('answers {records, committed, cursor}: one get-shaped record per operation, null for a delete, across namespaces', async () => {
    await runner(install.id, { operation: 'put', namespace: 'orders', key: 'old', value: 'bye' });
    await runner(install.id, { operation: 'put', namespace: 'stock', key: 'apples', value: 10 });
    const res = await runner(install.id, {
      operation: 'commit',
      checks: [{ namespace: 'stock', key: 'apples', revision: 1 }],
      operations: [
        { put: { namespace: 'orders', key: 'o-1', value: { items: 3 }, metadata: { by: 'runner' } } },
        { increment: { namespace: 'stock', key: 'apples', by: -3 } },
        { delete: { namespace: 'orders', key: 'old' } },
      ],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(['committed', 'cursor', 'records']);
    expect(res.body.committed).toBe(true);
    expect(res.body.records).toHaveLength(3);
    const GET_SHAPE = ['createdAt', 'key', 'metadata', 'namespace', 'revision', 'ttlExpiresAt', 'updatedAt', 'value'];
    expect(Object.keys(res.body.records[0]).sort()).toEqual(GET_SHAPE);
    expect(Object.keys(res.body.records[1]).sort()).toEqual(GET_SHAPE);
    expect(res.body.records[0]).toMatchObject({ namespace: 'orders', key: 'o-1', value: { items: 3 }, metadata: { by: 'runner' }, revision: 1, ttlExpiresAt: null });
    expect(res.body.records[0].createdAt).toMatch(ISO);
    expect(res.body.records[1]).toMatchObject({ namespace: 'stock', key: 'apples', value: 7, revision: 2 });
    expect(res.body.records[2]).toBeNull();
    expect((await get('orders', 'o-1')).body).toMatchObject({ value: { items: 3 }, revision: 1 });
    expect((await get('stock', 'apples')).body).toMatchObject({ value: 7, revision: 2 });
    expectError(await get('orders', 'old'), 404, 'NOT_FOUND');
  });

  it('ignores the top-level namespace, present or not, valid or not', async () => {
    const without = await runner(install.id, { operation: 'commit', operations: [{ put: { namespace: 'a', key: 'no-ns', value: 1 } }] });
    expect(without.status, JSON.stringify(without.body)).toBe(200);
    const odd = await runner(install.id, { operation: 'commit', namespace: 'Not A Namespace', operations: [{ put: { namespace: 'a', key: 'odd-ns', value: 1 } }] });
    expect(odd.status, JSON.stringify(odd.body)).toBe(200);
    expect(odd.body.records[0]).toMatchObject({ namespace: 'a', key: 'odd-ns' });
  });

  it('failed checks are 409 REVISION_MISMATCH listing every conflict in details.conflicts, and nothing is written', async () => {
    await runner(install.id, { operation: 'put', namespace: 'cas', key: 'x', value: 'x1' });
    await runner(install.id, { operation: 'put', namespace: 'cas', key: 'x', value: 'x2' });
    await runner(install.id, { operation: 'put', namespace: 'cas', key: 'y', value: 'y1' });
    const res = await runner(install.id, {
      operation: 'commit',
      checks: [
        { namespace: 'cas', key: 'x', revision: 1 },
        { namespace: 'cas', key: 'y', revision: 1 },
        { namespace: 'cas', key: 'ghost', revision: 4 },
        { namespace: 'cas', key: 'y', revision: 0 },
      ],
      operations: [
        { put: { namespace: 'cas', key: 'new', value: 1 } },
        { delete: { namespace: 'cas', key: 'y' } },
      ],
    });
    const details = expectError(res, 409, 'REVISION_MISMATCH');
    expect(details).toEqual({
      conflicts: [
        { index: 0, namespace: 'cas', key: 'x', expectedRevision: 1, currentRevision: 2 },
        { index: 2, namespace: 'cas', key: 'ghost', expectedRevision: 4, currentRevision: null },
        { index: 3, namespace: 'cas', key: 'y', expectedRevision: 0, currentRevision: 1 },
      ],
    });
    expectError(await get('cas', 'new'), 404, 'NOT_FOUND');
    expect((await get('cas', 'y')).body).toMatchObject({ value: 'y1', revision: 1 });
  });

  it('dryRun answers the records as they would be with committed false and cursor null, and writes nothing', async () => {
    await runner(install.id, { operation: 'put', namespace: 'dry', key: 'n', value: 1 });
    const res = await runner(install.id, {
      operation: 'commit',
      dryRun: true,
      checks: [{ namespace: 'dry', key: 'n', revision: 1 }],
      operations: [{ increment: { namespace: 'dry', key: 'n', by: 1 } }, { put: { namespace: 'dry', key: 'fresh', value: 'v' } }],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.committed).toBe(false);
    expect(res.body.cursor).toBeNull();
    expect(res.body.records[0]).toMatchObject({ namespace: 'dry', key: 'n', value: 2, revision: 2 });
    expect(res.body.records[1]).toMatchObject({ namespace: 'dry', key: 'fresh', value: 'v', revision: 1 });
    expect((await get('dry', 'n')).body).toMatchObject({ value: 1, revision: 1 });
    expectError(await get('dry', 'fresh'), 404, 'NOT_FOUND');
    // A dry run still answers a failed check with the 409.
    const conflict = await runner(install.id, {
      operation: 'commit',
      dryRun: true,
      checks: [{ namespace: 'dry', key: 'n', revision: 7 }],
      operations: [{ delete: { namespace: 'dry', key: 'n' } }],
    });
    expect(expectError(conflict, 409, 'REVISION_MISMATCH').conflicts).toEqual([{ index: 0, namespace: 'dry', key: 'n', expectedRevision: 7, currentRevision: 1 }]);
  });

  it('malformed commits are 400 VALIDATION_FAILED and write nothing', async () => {
    const put = { put: { namespace: 'bad', key: 'k', value: 1 } };
    const bad: Array<Record<string, unknown>> = [
      { operation: 'commit' },
      { operation: 'commit', operations: null },
      { operation: 'commit', operations: put },
      { operation: 'commit', operations: 'put' },
      { operation: 'commit', operations: [put], checks: { namespace: 'bad', key: 'k', revision: 0 } },
      { operation: 'commit', operations: [put], checks: 'none' },
      { operation: 'commit', operations: [put], dryRun: 'yes' },
      { operation: 'commit', operations: [put], dryRun: 1 },
      { operation: 'commit', operations: [{}] },
      { operation: 'commit', operations: [null] },
      { operation: 'commit', operations: [7] },
      { operation: 'commit', operations: [[put]] },
      { operation: 'commit', operations: [{ ...put, delete: { namespace: 'bad', key: 'j' } }] },
      { operation: 'commit', operations: [{ put: 'k' }] },
      { operation: 'commit', operations: [{ increment: { namespace: 'bad', key: 'n' } }] },
      { operation: 'commit', operations: [{ increment: { namespace: 'bad', key: 'n', by: '1' } }] },
      { operation: 'commit', operations: [{ increment: { namespace: 'bad', key: 'n', by: true } }] },
      { operation: 'commit', operations: [{ put: { namespace: 'bad', key: 'k', value: 1, ttlSeconds: '60' } }] },
      { operation: 'commit', operations: [put], checks: [null] },
      { operation: 'commit', operations: [put], checks: [{ namespace: 'bad', key: 'k' }] },
      { operation: 'commit', operations: [put], checks: [{ namespace: 'bad', key: 'k', revision: -1 }] },
      { operation: 'commit', operations: [put], checks: [{ namespace: 'bad', key: 'k', revision: 1.5 }] },
    ];
    for (const body of bad) {
      const res = await runner(install.id, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expectError(res, 400, 'VALIDATION_FAILED');
    }
    const raw = await runner(install.id, null, { rawBody: '{"operation":"commit","operations":[{"increment":{"namespace":"bad","key":"n","by":1e400}}]}' });
    expectError(raw, 400, 'VALIDATION_FAILED');
    expect((await runner(install.id, { operation: 'list', namespace: 'bad' })).body.items).toEqual([]);
  });

  it('commit limits are 400 LIMIT_EXCEEDED with the limit and the itemIndex', async () => {
    const limit = async (body: Record<string, unknown>) => expectError(await runner(install.id, { operation: 'commit', ...body }), 400, 'LIMIT_EXCEEDED');
    expect(await limit({ operations: [] })).toMatchObject({ limit: 'commitOperations', itemIndex: null });
    const many = Array.from({ length: 101 }, (_, i) => ({ put: { namespace: 'lim', key: `k${i}`, value: i } }));
    expect(await limit({ operations: many })).toMatchObject({ limit: 'commitOperations', max: 100, actual: 101, itemIndex: null });
    const checks = Array.from({ length: 101 }, (_, i) => ({ namespace: 'lim', key: `k${i}`, revision: 0 }));
    expect(await limit({ operations: many.slice(0, 1), checks })).toMatchObject({ limit: 'commitChecks', max: 100, actual: 101, itemIndex: null });
    expect(
      await limit({ operations: [{ put: { namespace: 'lim', key: 'd', value: 1 } }, { increment: { namespace: 'lim', key: 'e', by: 1 } }, { delete: { namespace: 'lim', key: 'd' } }] }),
    ).toMatchObject({ limit: 'commitDuplicateKey', itemIndex: 2 });
    expect(await limit({ operations: [{ put: { namespace: 'lim', key: 'ok', value: 1 } }, { put: { namespace: 'lim', key: 'big', value: 'x'.repeat(70_000) } }] })).toMatchObject({
      limit: 'valueBytes',
      max: 65536,
      itemIndex: 1,
    });
    expect(await limit({ operations: [{ delete: { namespace: 'lim', key: 'a' } }, { put: { namespace: 'Bad NS', key: 'k', value: 1 } }] })).toMatchObject({
      limit: 'namespaceFormat',
      itemIndex: 1,
    });
    expect(await limit({ operations: [{ put: { namespace: 'lim', key: 'n', value: null } }] })).toMatchObject({ limit: 'valueType', itemIndex: 0 });
    expect(await limit({ operations: many.slice(0, 1), checks: [{ namespace: 'lim', key: 'k'.repeat(257), revision: 0 }] })).toMatchObject({ limit: 'keyLength', itemIndex: null });
    const big = Array.from({ length: 17 }, (_, i) => ({ put: { namespace: 'lim', key: `big${i}`, value: 'x'.repeat(65_000) } }));
    expect(await limit({ operations: big })).toMatchObject({ limit: 'commitBytes', max: 1_048_576, itemIndex: null });
    await runner(install.id, { operation: 'put', namespace: 'lim', key: 'word', value: 'text' });
    expect(await limit({ operations: [{ put: { namespace: 'lim', key: 'p', value: 1 } }, { increment: { namespace: 'lim', key: 'word', by: 1 } }] })).toMatchObject({
      limit: 'valueType',
      itemIndex: 1,
    });
    const items = (await runner(install.id, { operation: 'list', namespace: 'lim', includeValues: false })).body.items;
    expect(items.map((i: { key: string }) => i.key)).toEqual(['word']);
  });

  it('capability and quotas map as for the other writes: 403 FORBIDDEN, 429 QUOTA_EXCEEDED', async () => {
    const readOnly = await t.createInstall({ canWrite: false });
    expectError(await runner(readOnly.id, { operation: 'commit', operations: [{ put: { namespace: 'ns', key: 'k', value: 1 } }] }), 403, 'FORBIDDEN');
    const narrow = await t.createInstall({ namespaces: ['allowed'] });
    expectError(
      await runner(narrow.id, { operation: 'commit', operations: [{ put: { namespace: 'allowed', key: 'k', value: 1 } }, { put: { namespace: 'other', key: 'k', value: 1 } }] }),
      403,
      'FORBIDDEN',
    );
    expectError(
      await runner(narrow.id, { operation: 'commit', checks: [{ namespace: 'other', key: 'k', revision: 0 }], operations: [{ put: { namespace: 'allowed', key: 'k', value: 1 } }] }),
      403,
      'FORBIDDEN',
    );
    const small = await t.createInstall({ quota: { maxKeysPerNamespace: 2 } });
    const ops = ['a', 'b', 'c'].map((key) => ({ put: { namespace: 'q', key, value: 1 } }));
    expect(expectError(await runner(small.id, { operation: 'commit', operations: ops }), 429, 'QUOTA_EXCEEDED')).toMatchObject({ quota: 'keysPerNamespace', allowed: 2, itemIndex: null });
    expect((await runner(small.id, { operation: 'list', namespace: 'q' })).body.items).toEqual([]);
  });
});

describe('Runner REST: quotas and rate limits', () => {
  it('a write past the keys-per-namespace quota is 429 QUOTA_EXCEEDED with details', async () => {
    const small = await t.createInstall({ quota: { maxKeysPerNamespace: 2 } });
    expect((await runner(small.id, { operation: 'put', namespace: 'q', key: 'a', value: 1 })).status).toBe(200);
    expect((await runner(small.id, { operation: 'put', namespace: 'q', key: 'b', value: 1 })).status).toBe(200);
    const details = expectError(await runner(small.id, { operation: 'put', namespace: 'q', key: 'c', value: 1 }), 429, 'QUOTA_EXCEEDED');
    expect(details).toEqual({ quota: 'keysPerNamespace', allowed: 2, used: 2, itemIndex: null });
    // Overwriting an existing key does not grow the key count.
    expect((await runner(small.id, { operation: 'put', namespace: 'q', key: 'a', value: 2 })).status).toBe(200);
  });

  it('a bulkPut past the bytes quota is 429 QUOTA_EXCEEDED and writes nothing', async () => {
    const small = await t.createInstall({ quota: { maxBytes: 100 } });
    const res = await runner(small.id, {
      operation: 'bulkPut',
      namespace: 'q',
      items: [
        // 52 + 2 bytes each ("xxx…" and {}): 108 in all, above 100.
        { key: 'a', value: 'x'.repeat(50) },
        { key: 'b', value: 'x'.repeat(50) },
      ],
    });
    const details = expectError(res, 429, 'QUOTA_EXCEEDED');
    expect(details).toMatchObject({ quota: 'bytes', allowed: 100, used: 0 });
    expect((await runner(small.id, { operation: 'list', namespace: 'q' })).body.items).toEqual([]);
  });

  it('a write past the namespaces quota is 429 QUOTA_EXCEEDED', async () => {
    const small = await t.createInstall({ quota: { maxNamespaces: 1 } });
    expect((await runner(small.id, { operation: 'put', namespace: 'one', key: 'k', value: 1 })).status).toBe(200);
    expect(expectError(await runner(small.id, { operation: 'put', namespace: 'two', key: 'k', value: 1 }), 429, 'QUOTA_EXCEEDED').quota).toBe('namespaces');
  });

  it('requests above the per-install rate are 429 RATE_LIMITED with Retry-After', async () => {
    const limited = await startTestApp({ STORAGE_RATE_LIMIT_PER_SECOND: '1', STORAGE_RATE_LIMIT_BURST: '1' });
    try {
      const install = await limited.createInstall();
      const statuses: RunnerResponse[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await fetch(`${limited.url}/api/internal/ext-storage/install/${install.id}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-runner-auth': limited.runnerToken },
          body: JSON.stringify({ operation: 'delete', namespace: 'ns', key: 'k' }),
        });
        statuses.push({ status: res.status, headers: res.headers, body: await res.json() });
      }
      const refused = statuses.find((r) => r.status === 429);
      expect(refused, 'five requests at a rate of 1/s with a burst of 1').toBeDefined();
      expect(refused!.body).toMatchObject({ code: 'RATE_LIMITED', details: null });
      expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    } finally {
      await limited.close();
    }
  });
});

describe('Runner REST: changes', () => {
  let install: TestInstall;
  const CHANGE_SHAPE = ['actor', 'at', 'cursor', 'key', 'namespace', 'operation', 'revision'];
  const changes = (id: string, body: Record<string, unknown> = {}) => runner(id, { operation: 'changes', ...body });
  /** Every page from `cursor` on, by `limit`, until an empty page; the cursors each page answered. */
  async function drain(id: string, body: Record<string, unknown>, limit: number, cursor?: string): Promise<{ items: any[]; nextCursors: string[] }> {
    const items: any[] = [];
    const nextCursors: string[] = [];
    for (let i = 0; i < 200; i++) {
      const res = await changes(id, { ...body, limit, ...(cursor === undefined ? {} : { cursor }) });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(typeof res.body.nextCursor).toBe('string');
      expect(res.body.items.length).toBeLessThanOrEqual(limit);
      nextCursors.push(res.body.nextCursor);
      cursor = res.body.nextCursor;
      if (res.body.items.length === 0) return { items, nextCursors };
      items.push(...res.body.items);
    }
    throw new Error('no empty page after 200 pages');
  }

  beforeAll(async () => {
    install = await t.createInstall();
    // 1..3 put, put, delete on a/k1; 4 put a/other; 5 put b/k1; 6..30: 25 puts in c.
    await runner(install.id, { operation: 'put', namespace: 'a', key: 'k1', value: 1 });
    await runner(install.id, { operation: 'put', namespace: 'a', key: 'k1', value: 2 });
    await runner(install.id, { operation: 'delete', namespace: 'a', key: 'k1' });
    await runner(install.id, { operation: 'put', namespace: 'a', key: 'other', value: 1 });
    await runner(install.id, { operation: 'put', namespace: 'b', key: 'k1', value: 1 });
    for (let i = 0; i < 25; i++) await runner(install.id, { operation: 'put', namespace: 'c', key: `n${String(i).padStart(2, '0')}`, value: i });
  });

  it('answers {items: [{cursor, at, operation, namespace, key, revision, actor}], nextCursor}, oldest first, operation lower-case', async () => {
    const res = await changes(install.id, { limit: 5 });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(['items', 'nextCursor']);
    expect(res.body.items).toHaveLength(5);
    for (const item of res.body.items) {
      expect(Object.keys(item).sort()).toEqual(CHANGE_SHAPE);
      expect(item.at).toMatch(ISO);
      expect(typeof item.cursor).toBe('string');
      expect(item.actor).toBe('runner');
    }
    expect(res.body.items.map((c: any) => [c.operation, c.namespace, c.key, c.revision])).toEqual([
      ['put', 'a', 'k1', 1],
      ['put', 'a', 'k1', 2],
      ['delete', 'a', 'k1', 2],
      ['put', 'a', 'other', 1],
      ['put', 'b', 'k1', 1],
    ]);
    // A full page resumes after its last change.
    expect(res.body.nextCursor).toBe(res.body.items[4].cursor);
  });

  it('the top-level namespace is optional: without it the page covers every namespace; an item cursor resumes after that item', async () => {
    const all = await changes(install.id, { limit: 100 });
    expect(all.body.items).toHaveLength(30);
    const from = await changes(install.id, { cursor: all.body.items[2].cursor, limit: 2 });
    expect(from.body.items.map((c: any) => c.key)).toEqual(['other', 'k1']);
    expect(from.body.items.map((c: any) => c.namespace)).toEqual(['a', 'b']);
  });

  it('defaults to 100 changes a page', async () => {
    const big = await t.createInstall();
    const items = Array.from({ length: 100 }, (_, i) => ({ key: `k${i}`, value: i }));
    await runner(big.id, { operation: 'bulkPut', namespace: 'x', items });
    await runner(big.id, { operation: 'put', namespace: 'x', key: 'last', value: 1 });
    const res = await changes(big.id);
    expect(res.status).toBe(200);
    expect(res.body.items).toHaveLength(100);
    const rest = await changes(big.id, { cursor: res.body.nextCursor });
    expect(rest.body.items.map((c: any) => c.key)).toEqual(['last']);
  });

  it('pages by 7 with no change skipped or repeated; the empty last page still answers the resume point', async () => {
    const { items, nextCursors } = await drain(install.id, {}, 7);
    expect(items).toHaveLength(30);
    expect(new Set(items.map((c) => c.cursor)).size).toBe(30);
    expect(items.slice(5).map((c) => c.key)).toEqual(Array.from({ length: 25 }, (_, i) => `n${String(i).padStart(2, '0')}`));
    // The empty page answers the same position it was asked from: the head.
    expect(nextCursors.at(-1)).toBe(nextCursors.at(-2));
    expect(nextCursors.at(-1)).toBe(items.at(-1).cursor);
    // Following from it: a later write, and only it.
    await runner(install.id, { operation: 'put', namespace: 'c', key: 'later', value: 1 });
    const next = await changes(install.id, { cursor: nextCursors.at(-1) });
    expect(next.body.items.map((c: any) => [c.namespace, c.key])).toEqual([['c', 'later']]);
    await runner(install.id, { operation: 'delete', namespace: 'c', key: 'later' });
  });

  it('filters by namespace, and by keyPrefix within it; a filtered empty page still moves the resume point forward', async () => {
    const a = await changes(install.id, { namespace: 'a' });
    expect(a.body.items.map((c: any) => [c.operation, c.key])).toEqual([
      ['put', 'k1'],
      ['put', 'k1'],
      ['delete', 'k1'],
      ['put', 'other'],
    ]);
    const k = await changes(install.id, { namespace: 'a', keyPrefix: 'k' });
    expect(k.body.items.map((c: any) => c.key)).toEqual(['k1', 'k1', 'k1']);
    const c1 = await drain(install.id, { namespace: 'c', keyPrefix: 'n1' }, 3);
    expect(c1.items.map((c) => c.key)).toEqual(['n10', 'n11', 'n12', 'n13', 'n14', 'n15', 'n16', 'n17', 'n18', 'n19']);
    // Nothing in namespace "b" after its one change, yet the answer is a position, not null.
    const b = await changes(install.id, { namespace: 'b' });
    expect(b.body.items).toHaveLength(1);
    const none = await changes(install.id, { namespace: 'b', cursor: b.body.nextCursor });
    expect(none.body).toEqual({ items: [], nextCursor: expect.any(String) });
    const nothing = await changes(install.id, { namespace: 'nope' });
    expect(nothing.body.items).toEqual([]);
    expect(typeof nothing.body.nextCursor).toBe('string');
    // Resuming the filter from there sees a later change in "b" only.
    await runner(install.id, { operation: 'put', namespace: 'b', key: 'k2', value: 1 });
    const later = await changes(install.id, { namespace: 'b', cursor: none.body.nextCursor });
    expect(later.body.items.map((c: any) => c.key)).toEqual(['k2']);
  });

  it('a keyPrefix without namespace is 400 VALIDATION_FAILED', async () => {
    expectError(await changes(install.id, { keyPrefix: 'k' }), 400, 'VALIDATION_FAILED');
  });

  it('a limit of 0 or 1001 is 400 LIMIT_EXCEEDED; 1000 is accepted; a non-integer limit is 400 VALIDATION_FAILED', async () => {
    expect(expectError(await changes(install.id, { limit: 0 }), 400, 'LIMIT_EXCEEDED')).toMatchObject({ limit: 'pageSize', max: 1000 });
    expect(expectError(await changes(install.id, { limit: 1001 }), 400, 'LIMIT_EXCEEDED')).toMatchObject({ limit: 'pageSize', max: 1000, actual: 1001 });
    expect((await changes(install.id, { limit: 1000 })).status).toBe(200);
    expectError(await changes(install.id, { limit: 2.5 }), 400, 'VALIDATION_FAILED');
    expectError(await changes(install.id, { limit: '10' }), 400, 'VALIDATION_FAILED');
  });

  it("a malformed cursor, another install's cursor or a record-list cursor is 400 VALIDATION_FAILED", async () => {
    expectError(await changes(install.id, { cursor: 'not-a-cursor' }), 400, 'VALIDATION_FAILED');
    expectError(await changes(install.id, { cursor: 42 }), 400, 'VALIDATION_FAILED');
    const other = await t.createInstall();
    await runner(other.id, { operation: 'put', namespace: 'a', key: 'k', value: 1 });
    const foreign = (await changes(other.id)).body.nextCursor;
    expectError(await changes(install.id, { cursor: foreign }), 400, 'VALIDATION_FAILED');
    const list = await runner(install.id, { operation: 'list', namespace: 'c', limit: 1 });
    expectError(await changes(install.id, { cursor: list.body.nextCursor }), 400, 'VALIDATION_FAILED');
  });

  it('an install restricted to namespaces never sees the others, and naming one is 403 FORBIDDEN', async () => {
    // One install, written by an admin in every namespace; the Runner sees it through its allow-list.
    const narrow = await t.createInstall({ namespaces: ['seen', 'also'] });
    const admin = t.adminCaller();
    for (const namespace of ['seen', 'hidden', 'also', 'hidden']) {
      await t.app.storage.putRecord(admin, { installId: narrow.id, namespace, key: `${namespace}-k`, value: 1 });
    }
    const { items } = await drain(narrow.id, {}, 1);
    expect(items.map((c) => c.namespace)).toEqual(['seen', 'also']);
    expect(items.every((c) => c.actor !== 'runner')).toBe(true);
    expectError(await changes(narrow.id, { namespace: 'hidden' }), 403, 'FORBIDDEN');
    const readless = await t.createInstall({ canRead: false });
    expectError(await changes(readless.id), 403, 'FORBIDDEN');
  });

  it("accepts a commit's cursor from either door (cursors are shared): the changes after it", async () => {
    const shared = await t.createInstall();
    await runner(shared.id, { operation: 'put', namespace: 's', key: 'before', value: 1 });
    const rest = await runner(shared.id, { operation: 'commit', operations: [{ put: { namespace: 's', key: 'rest', value: 1 } }] });
    expect(rest.status).toBe(200);
    const gql = await t.gql(
      `mutation { commit(input: { operations: [{ put: { namespace: "s", key: "gql", value: 1 } }] }) {
        __typename ... on CommitSuccess { cursor } } }`,
      {},
      { token: await shared.token() },
    );
    expect(gql.body.data.commit.__typename).toBe('CommitSuccess');
    await runner(shared.id, { operation: 'put', namespace: 's', key: 'after', value: 1 });
    const fromRest = await changes(shared.id, { cursor: rest.body.cursor });
    expect(fromRest.status, JSON.stringify(fromRest.body)).toBe(200);
    expect(fromRest.body.items.map((c: any) => c.key)).toEqual(['gql', 'after']);
    const fromGql = await changes(shared.id, { cursor: gql.body.data.commit.cursor });
    expect(fromGql.body.items.map((c: any) => [c.key, c.actor])).toEqual([['after', 'runner']]);
    // The commit's own change carries the commit's cursor.
    const all = await changes(shared.id);
    expect(all.body.items.find((c: any) => c.key === 'rest').cursor).toBe(rest.body.cursor);
    expect(all.body.items.find((c: any) => c.key === 'gql').cursor).toBe(gql.body.data.commit.cursor);
  });

  it('a changes page is charged by its limit against the rate limit', async () => {
    const limited = await startTestApp({ STORAGE_RATE_LIMIT_PER_SECOND: '1', STORAGE_RATE_LIMIT_BURST: '20' });
    try {
      const call = (installId: string, limit: number) =>
        fetch(`${limited.url}/api/internal/ext-storage/install/${installId}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-runner-auth': limited.runnerToken },
          body: JSON.stringify({ operation: 'changes', limit }),
        });
      // Pages of 1 are cheap: five fit in a burst of 20.
      const small = await limited.createInstall();
      for (let i = 0; i < 5; i++) expect((await call(small.id, 1)).status).toBe(200);
      // A page of 1000 costs the whole burst: the next request right after it is refused.
      const large = await limited.createInstall();
      expect((await call(large.id, 1000)).status).toBe(200);
      const refused = await call(large.id, 1);
      expect(refused.status).toBe(429);
      expect((await refused.json()).code).toBe('RATE_LIMITED');
    } finally {
      await limited.close();
    }
  });
});

describe('Runner REST: changes past retention', () => {
  it('a cursor before the oldest retained change is 410 CURSOR_EXPIRED; without a cursor the page starts at the oldest retained', async () => {
    const short = await startTestApp({ STORAGE_CHANGES_RETENTION_SECONDS: '1' });
    try {
      const install = await short.createInstall();
      const call = async (body: Record<string, unknown>) => {
        const res = await fetch(`${short.url}/api/internal/ext-storage/install/${install.id}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-runner-auth': short.runnerToken },
          body: JSON.stringify(body),
        });
        return { status: res.status, headers: res.headers, body: (await res.json()) as any };
      };
      await call({ operation: 'put', namespace: 'r', key: 'one', value: 1 });
      await call({ operation: 'put', namespace: 'r', key: 'two', value: 1 });
      const first = await call({ operation: 'changes' });
      expect(first.body.items.map((c: any) => c.key)).toEqual(['one', 'two']);
      const afterOne = first.body.items[0].cursor;
      const afterTwo = first.body.nextCursor;
      await new Promise((r) => setTimeout(r, 2100));
      // A write removes the changes older than the retention.
      expect((await call({ operation: 'put', namespace: 'r', key: 'three', value: 1 })).status).toBe(200);
      const expired = await call({ operation: 'changes', cursor: afterOne });
      expect(expectError(expired, 410, 'CURSOR_EXPIRED')).toBeNull();
      // A cursor at the retention point lost nothing: it still pages.
      const kept = await call({ operation: 'changes', cursor: afterTwo });
      expect(kept.status).toBe(200);
      expect(kept.body.items.map((c: any) => c.key)).toEqual(['three']);
      const fresh = await call({ operation: 'changes' });
      expect(fresh.body.items.map((c: any) => c.key)).toEqual(['three']);
    } finally {
      await short.close();
    }
  });
});

describe('Runner REST: the door is closed without RUNNER_AUTH_TOKENS', () => {
  it('answers 401 UNAUTHORIZED to any token when no Runner token is configured', async () => {
    const closed = await startTestApp({ RUNNER_AUTH_TOKENS: '' });
    try {
      const install = await closed.createInstall();
      const res = await fetch(`${closed.url}/api/internal/ext-storage/install/${install.id}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-runner-auth': '' },
        body: JSON.stringify({ operation: 'get', namespace: 'ns', key: 'k' }),
      });
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ code: 'UNAUTHORIZED', details: null });
    } finally {
      await closed.close();
    }
  });
});

describe('Runner REST and GraphQL share one store', () => {
  it('a record written over REST is read over GraphQL by an extension of the same install, at the same revision', async () => {
    const install = await t.createInstall();
    await runner(install.id, { operation: 'put', namespace: 'shared', key: 'k', value: { from: 'rest' } });
    const res = await t.gql(`{ record(namespace: "shared", key: "k") { value revision } }`, {}, { token: await install.token() });
    expect(res.body.data.record).toEqual({ value: { from: 'rest' }, revision: 1 });
  });

  it('writes over REST are audited with actor "runner"', async () => {
    const install = await t.createInstall();
    await runner(install.id, { operation: 'put', namespace: 'audited', key: 'k', value: 1 });
    const res = await t.gql(
      `query($id: ID!) { install(id: $id) { auditLog(first: 5) { edges { node { actor operation namespace key revision } } } } }`,
      { id: install.id },
      { token: await t.adminToken() },
    );
    const events = res.body.data.install.auditLog.edges.map((e: { node: unknown }) => e.node);
    expect(events).toContainEqual({ actor: 'runner', operation: 'putRecord', namespace: 'audited', key: 'k', revision: 1 });
  });
});

describe('the Runner over GraphQL (x-runner-auth + x-install-id)', () => {
  let install: TestInstall;
  beforeAll(async () => {
    install = await t.createInstall();
  });
  const runnerHeaders = (installId: string, token = t.runnerToken) => ({ headers: { 'x-runner-auth': token, 'x-install-id': installId } });

  it('writes a record of the named install', async () => {
    const res = await t.gql(
      `mutation($v: JSON!) { putRecord(input: { namespace: "gql", key: "k", value: $v }) {
        __typename ... on PutRecordSuccess { record { namespace key value revision } } } }`,
      { v: { via: 'graphql' } },
      runnerHeaders(install.id),
    );
    expect(res.status).toBe(200);
    expect(res.body.data.putRecord).toEqual({ __typename: 'PutRecordSuccess', record: { namespace: 'gql', key: 'k', value: { via: 'graphql' }, revision: 1 } });
  });

  it('reads a record of the named install', async () => {
    const res = await t.gql(`{ record(namespace: "gql", key: "k") { value revision } install { id } }`, {}, runnerHeaders(install.id));
    expect(res.status).toBe(200);
    expect(res.body.data).toEqual({ record: { value: { via: 'graphql' }, revision: 1 }, install: { id: install.id } });
  });

  it('answers a typed RevisionMismatch over GraphQL', async () => {
    const res = await t.gql(
      `mutation { putRecord(input: { namespace: "gql", key: "k", value: 2, ifRevision: 0 }) {
        __typename ... on RevisionMismatch { key currentRevision } } }`,
      {},
      runnerHeaders(install.id),
    );
    expect(res.body.data.putRecord).toEqual({ __typename: 'RevisionMismatch', key: 'k', currentRevision: 1 });
  });

  it('refuses a Runner request without x-install-id with HTTP 403 FORBIDDEN', async () => {
    const res = await t.gql(`{ record(namespace: "gql", key: "k") { value } }`, {}, { headers: { 'x-runner-auth': t.runnerToken } });
    expect(res.status).toBe(403);
    expect(res.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it('refuses a wrong Runner token with HTTP 401 UNAUTHENTICATED', async () => {
    const res = await t.gql(`{ record(namespace: "gql", key: "k") { value } }`, {}, runnerHeaders(install.id, 'wrong'));
    expect(res.status).toBe(401);
    expect(res.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('refuses an unknown install with HTTP 403 FORBIDDEN', async () => {
    const res = await t.gql(`{ record(namespace: "gql", key: "k") { value } }`, {}, runnerHeaders(randomUUID()));
    expect(res.status).toBe(403);
    expect(res.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it("refuses another install's id as an argument with FORBIDDEN", async () => {
    const other = await t.createInstall();
    const res = await t.gql(`query($id: ID!) { record(installId: $id, namespace: "gql", key: "k") { value } }`, { id: other.id }, runnerHeaders(install.id));
    expect(res.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(res.body.data?.record ?? null).toBeNull();
  });
});
