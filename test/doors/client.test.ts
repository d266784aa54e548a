/** The typed client (client/index.ts) against a running gateway: every method, errors as values. */
import { randomUUID } from 'node:crypto';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createStorageClient,
  type CommitError,
  type CommitResult,
  type Failure,
  type ListPage,
  type StorageClient,
  type StorageClientError,
  type StorageRecord,
  type TokenSource,
} from '../../client/index.js';
import { scrape, valueOf } from '../observability/prometheus.js';
import { startTestApp, type TestApp, type TestInstall } from '../support/app.js';

let t: TestApp;
let install: TestInstall;
let client: StorageClient;
beforeAll(async () => {
  t = await startTestApp();
  install = await t.createInstall();
  client = createStorageClient({ url: t.url, token: await install.token() });
});
afterAll(async () => {
  await t?.close();
});

/** Narrows a result to success, failing the test with the error otherwise. */
function ok<T extends { ok: boolean }>(result: T): Extract<T, { ok: true }> {
  if (!result.ok) expect.fail(`expected success, got ${JSON.stringify((result as unknown as { error: unknown }).error)}`);
  return result as Extract<T, { ok: true }>;
}

function failed(result: { ok: true } | Failure): StorageClientError {
  if (result.ok) return expect.fail(`expected an error, got ${JSON.stringify(result)}`);
  return result.error;
}

describe('client: reads and writes', () => {
  it('put creates a record at revision 1 and answers it in full', async () => {
    const { record } = ok(await client.put('prefs', 'theme', { mode: 'dark' }, { metadata: { by: 'sdk' } }));
    expect(record).toMatchObject({ namespace: 'prefs', key: 'theme', value: { mode: 'dark' }, metadata: { by: 'sdk' }, revision: 1, ttlExpiresAt: null, schemaVersion: null });
    expect(Date.parse(record.createdAt)).not.toBeNaN();
    expect(Date.parse(record.updatedAt)).not.toBeNaN();
  });

  it('get answers the stored record, and null for a missing key', async () => {
    const { record } = ok(await client.get('prefs', 'theme'));
    expect(record?.value).toEqual({ mode: 'dark' });
    expect(ok(await client.get('prefs', 'missing')).record).toBeNull();
  });

  it('put with ttlSeconds sets ttlExpiresAt', async () => {
    const { record } = ok(await client.put('prefs', 'session', 'abc', { ttlSeconds: 600 }));
    expect(Date.parse(record.ttlExpiresAt ?? '')).toBeGreaterThan(Date.now());
  });

  it('getMany answers in the order of the keys, null where missing', async () => {
    ok(await client.put('many', 'a', 1));
    ok(await client.put('many', 'b', 2));
    const { records } = ok(await client.getMany('many', ['b', 'nope', 'a']));
    expect(records.map((r) => r?.value ?? null)).toEqual([2, null, 1]);
  });

  it('bulkPut writes all items and answers them in input order', async () => {
    const { records } = ok(
      await client.bulkPut('bulk', [
        { key: 'z', value: 'last' },
        { key: 'a', value: 'first', metadata: { n: 1 } },
      ]),
    );
    expect(records.map((r) => [r.key, r.revision])).toEqual([
      ['z', 1],
      ['a', 1],
    ]);
    expect(ok(await client.get('bulk', 'a')).record?.metadata).toEqual({ n: 1 });
  });

  it('delete answers deleted: true, then deleted: false for the same key', async () => {
    ok(await client.put('del', 'k', 1));
    expect(ok(await client.delete('del', 'k')).deleted).toBe(true);
    expect(ok(await client.delete('del', 'k')).deleted).toBe(false);
    expect(ok(await client.get('del', 'k')).record).toBeNull();
  });

  it('accepts the endpoint URL as well as the base URL', async () => {
    const viaEndpoint = createStorageClient({ url: `${t.url}/graphql`, token: await install.token() });
    expect(ok(await viaEndpoint.get('prefs', 'theme')).record?.revision).toBe(1);
  });

  it('asks a token function for a token on every request', async () => {
    let calls = 0;
    const refreshing = createStorageClient({
      url: t.url,
      token: async () => {
        calls++;
        return install.token();
      },
    });
    ok(await refreshing.get('prefs', 'theme'));
    ok(await refreshing.get('prefs', 'theme'));
    expect(calls).toBe(2);
  });
});

describe('client: typed errors come back as values', () => {
  it('a create-only put of an existing key is a REVISION_MISMATCH with the current revision', async () => {
    ok(await client.put('conflict', 'k', 'v1'));
    ok(await client.put('conflict', 'k', 'v2'));
    const result = await client.put('conflict', 'k', 'v3', { ifRevision: 0 });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    // The union narrows on code: currentRevision only exists on REVISION_MISMATCH.
    if (result.error.code !== 'REVISION_MISMATCH') return expect.fail(`unexpected ${result.error.code}`);
    expect(result.error).toEqual({
      code: 'REVISION_MISMATCH',
      message: expect.any(String),
      namespace: 'conflict',
      key: 'k',
      expectedRevision: 0,
      currentRevision: 2,
    });
  });

  it('a stale delete is a REVISION_MISMATCH too', async () => {
    ok(await client.put('conflict', 'd', 1));
    const error = failed(await client.delete('conflict', 'd', { ifRevision: 9 }));
    expect(error).toMatchObject({ code: 'REVISION_MISMATCH', expectedRevision: 9, currentRevision: 1 });
  });

  it('an oversize value is LIMIT_EXCEEDED valueBytes', async () => {
    expect(failed(await client.put('limits', 'big', 'x'.repeat(70_000)))).toMatchObject({ code: 'LIMIT_EXCEEDED', limit: 'valueBytes', max: 65536, itemIndex: null });
  });

  it('a bulk item over a limit is LIMIT_EXCEEDED with its itemIndex, and nothing is written', async () => {
    const error = failed(await client.bulkPut('limits', [{ key: 'fine', value: 1 }, { key: 'bad\u0000', value: 2 }]));
    expect(error).toMatchObject({ code: 'LIMIT_EXCEEDED', limit: 'keyFormat', itemIndex: 1 });
    expect(ok(await client.get('limits', 'fine')).record).toBeNull();
  });

  it('a read over a request limit is LIMIT_EXCEEDED from the GraphQL error', async () => {
    const keys = Array.from({ length: 101 }, (_, i) => `k${i}`);
    expect(failed(await client.getMany('limits', keys))).toMatchObject({ code: 'LIMIT_EXCEEDED', limit: 'keysPerRead', max: 100, actual: 101 });
  });

  it('a value failing the namespace schema is VALIDATION_FAILED with its issues', async () => {
    await t.app.storage.setNamespaceSchema(t.adminCaller(), { installId: install.id, namespace: 'typed', schema: { type: 'integer' } });
    const error = failed(await client.put('typed', 'k', 'not a number'));
    expect(error).toMatchObject({ code: 'VALIDATION_FAILED', schemaVersion: 1, issues: [expect.objectContaining({ keyword: 'type' })] });
  });

  it('a write past a quota is QUOTA_EXCEEDED with allowed and used', async () => {
    const small = await t.createInstall({ quota: { maxKeysPerNamespace: 1 } });
    const c = createStorageClient({ url: t.url, token: await small.token() });
    ok(await c.put('q', 'one', 1));
    expect(failed(await c.put('q', 'two', 2))).toEqual({ code: 'QUOTA_EXCEEDED', message: expect.any(String), quota: 'keysPerNamespace', allowed: 1, used: 1, itemIndex: null });
  });

  it('an invalid token is UNAUTHENTICATED with HTTP status 401', async () => {
    const c = createStorageClient({ url: t.url, token: 'not.a.jwt' });
    expect(failed(await c.get('prefs', 'theme'))).toMatchObject({ code: 'UNAUTHENTICATED', status: 401, graphqlCode: 'UNAUTHENTICATED' });
  });

  it('a read-only token writing is FORBIDDEN', async () => {
    const c = createStorageClient({ url: t.url, token: await install.token('storage:read') });
    expect(failed(await c.put('prefs', 'x', 1))).toMatchObject({ code: 'FORBIDDEN' });
    expect(ok(await c.get('prefs', 'theme')).record).not.toBeNull();
  });

  it('a malformed cursor is BAD_USER_INPUT', async () => {
    expect(failed(await client.listPage('prefs', { after: 'garbage!' }))).toMatchObject({ code: 'BAD_USER_INPUT' });
  });

  it('a refused connection is NETWORK_ERROR, not a thrown exception', async () => {
    const closed = await startClosedPort();
    const c = createStorageClient({ url: `http://127.0.0.1:${closed}`, token: 'x' });
    expect(failed(await c.get('prefs', 'theme'))).toMatchObject({ code: 'NETWORK_ERROR', status: null });
  });

  it('an answer that is not GraphQL JSON is BAD_RESPONSE with its status', async () => {
    const c = createStorageClient({ url: t.url, token: 'x' }, async () => new Response('<html>502 Bad Gateway</html>', { status: 502, headers: { 'content-type': 'text/html' } }));
    expect(failed(await c.put('prefs', 'x', 1))).toMatchObject({ code: 'BAD_RESPONSE', status: 502 });
  });

  it('too many requests are RATE_LIMITED with retryAfterSeconds', async () => {
    const limited = await startTestApp({ STORAGE_RATE_LIMIT_PER_SECOND: '1', STORAGE_RATE_LIMIT_BURST: '1' });
    try {
      const i = await limited.createInstall();
      const c = createStorageClient({ url: limited.url, token: await i.token() });
      const results = [];
      for (let n = 0; n < 5; n++) results.push(await c.get('ns', 'k'));
      const refused = results.find((r) => !r.ok);
      expect(refused, 'five requests at 1/s with a burst of 1').toBeDefined();
      expect(failed(refused!)).toMatchObject({ code: 'RATE_LIMITED', status: 429 });
      const error = failed(refused!);
      expect(error.code === 'RATE_LIMITED' && error.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    } finally {
      await limited.close();
    }
  });
});

describe('client: local failures are CLIENT_ERROR and send nothing', () => {
  /** A client whose fetch is the real one, counted; and the server's own count of GraphQL requests. */
  async function counted(token: TokenSource) {
    let sent = 0;
    const c = createStorageClient({ url: t.url, token }, (input, init) => {
      sent++;
      return fetch(input, init);
    });
    const served = async () => valueOf(await scrape(t.url), 'ext_storage_http_requests_total', { route: 'graphql' });
    return { c, sent: () => sent, served };
  }

  function expectLocal(result: { ok: true } | Failure, causeMessage: RegExp): void {
    const error = failed(result);
    expect(error).toMatchObject({ code: 'CLIENT_ERROR', status: null });
    expect(error.message).toMatch(causeMessage);
    expect((error as { cause?: unknown }).cause).toBeDefined();
  }

  it('a token function that throws, or rejects: nothing sent, the cause in the message', async () => {
    const sync = await counted(() => {
      throw new Error('token store locked');
    });
    const before = await sync.served();
    expectLocal(await sync.c.get('prefs', 'theme'), /token store locked/);
    const async = await counted(async () => Promise.reject(new Error('refresh endpoint said no')));
    expectLocal(await async.c.put('prefs', 'x', 1), /refresh endpoint said no/);
    expect((failed(await async.c.put('prefs', 'x', 1)) as { cause?: unknown }).cause).toBeInstanceOf(Error);
    expect([sync.sent(), async.sent()]).toEqual([0, 0]);
    expect(await sync.served()).toBe(before);
  });

  it('a BigInt or a cycle in a value or metadata: nothing sent', async () => {
    const { c, sent, served } = await counted(await install.token());
    const before = await served();
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expectLocal(await c.put('prefs', 'big', { n: 10n }), /BigInt/i);
    expectLocal(await c.put('prefs', 'cyclic', cyclic), /circular|cyclic/i);
    expectLocal(await c.put('prefs', 'cyclic-meta', 1, { metadata: { loop: cyclic } }), /circular|cyclic/i);
    expectLocal(await c.bulkPut('prefs', [{ key: 'ok', value: 1 }, { key: 'big', value: [1n] }]), /BigInt/i);
    expect(sent()).toBe(0);
    expect(await served()).toBe(before);
  });

  it('NaN, Infinity and -Infinity anywhere in variables are refused, not sent as null', async () => {
    const { c, sent, served } = await counted(await install.token());
    const before = await served();
    const cases: Array<[string, () => Promise<{ ok: true } | Failure>, RegExp]> = [
      ['value', () => c.put('prefs', 'nan', NaN), /NaN/],
      ['nested value', () => c.put('prefs', 'nan', { a: [1, { b: Infinity }] }), /Infinity.*"b"/],
      ['metadata', () => c.put('prefs', 'nan', 1, { metadata: { score: -Infinity } }), /-Infinity.*"score"/],
      ['a boxed number', () => c.put('prefs', 'nan', { n: new Number(NaN) }), /NaN/],
      ['a bulk item', () => c.bulkPut('prefs', [{ key: 'a', value: 1 }, { key: 'nan', value: { x: [NaN] } }]), /NaN/],
      ['ttlSeconds', () => c.put('prefs', 'nan', 1, { ttlSeconds: NaN }), /NaN/],
      ['update', () => c.update('prefs', 'nan', () => ({ x: NaN })), /NaN/],
    ];
    for (const [what, call, message] of cases) {
      const result = await call();
      expect(failed(result).code, what).toBe('CLIENT_ERROR');
      expect(failed(result).message, what).toMatch(message);
    }
    // update read the record (one request) and sent no write; nothing else was sent.
    expect(sent()).toBe(1);
    expect(await served()).toBe(before + 1);
    expect(ok(await client.get('prefs', 'nan')).record).toBeNull();
    expect(ok(await client.get('prefs', 'a')).record).toBeNull();
  });

  it('an update whose updater throws is CLIENT_ERROR, and the write is not sent', async () => {
    const { c, sent } = await counted(await install.token());
    expectLocal(
      await c.update('prefs', 'never', () => {
        throw new Error('cannot compute');
      }),
      /cannot compute/,
    );
    expect(sent()).toBe(1);
    expect(ok(await client.get('prefs', 'never')).record).toBeNull();
  });

  it('finite numbers still go through (control), and a real network failure is still NETWORK_ERROR', async () => {
    const { c, sent } = await counted(await install.token());
    expect(ok(await c.put('prefs', 'finite', { max: Number.MAX_VALUE, min: -Number.MAX_VALUE, tiny: Number.MIN_VALUE, zero: -0 })).record.value).toEqual({
      max: Number.MAX_VALUE,
      min: -Number.MAX_VALUE,
      tiny: Number.MIN_VALUE,
      zero: 0,
    });
    expect(sent()).toBe(1);
    const closed = await startClosedPort();
    let attempts = 0;
    const offline = createStorageClient({ url: `http://127.0.0.1:${closed}`, token: await install.token() }, (input, init) => {
      attempts++;
      return fetch(input, init);
    });
    const error = failed(await offline.put('prefs', 'x', 1));
    expect(error).toMatchObject({ code: 'NETWORK_ERROR', status: null });
    expect(attempts).toBe(1);
  });
});

async function startClosedPort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('client: list', () => {
  const keys = Array.from({ length: 23 }, (_, i) => `page/${String(i).padStart(2, '0')}`);
  beforeAll(async () => {
    ok(await client.bulkPut('paged', keys.map((key, i) => ({ key, value: i }))));
    ok(await client.put('paged', 'zzz-other', 'outside the prefix'));
  });

  it('iterates over every page: 23 keys by 5 in five pages, each key once, in key order', async () => {
    const pages: StorageRecord[][] = [];
    for await (const page of client.list('paged', { prefix: 'page/', pageSize: 5 })) pages.push(ok(page).records);
    expect(pages.map((p) => p.length)).toEqual([5, 5, 5, 5, 3]);
    expect(pages.flat().map((r) => r.key)).toEqual(keys);
    expect(pages.flat().map((r) => r.value)).toEqual(keys.map((_, i) => i));
  });

  it('iterates without a prefix over the whole namespace', async () => {
    const seen: string[] = [];
    for await (const page of client.list('paged', { pageSize: 10 })) seen.push(...ok(page).records.map((r) => r.key));
    expect(seen).toEqual([...keys, 'zzz-other']);
  });

  it('yields a single empty page for an empty namespace', async () => {
    const pages: ListPage[] = [];
    for await (const page of client.list('nothing-here')) pages.push(page);
    expect(pages).toEqual([{ ok: true, records: [], nextCursor: null }]);
  });

  it('listPage answers nextCursor, null on the last page', async () => {
    const first = ok(await client.listPage('paged', { prefix: 'page/', pageSize: 20 }));
    expect(first.records).toHaveLength(20);
    expect(first.nextCursor).toEqual(expect.any(String));
    const last = ok(await client.listPage('paged', { prefix: 'page/', pageSize: 20, after: first.nextCursor }));
    expect(last.records.map((r) => r.key)).toEqual(keys.slice(20));
    expect(last.nextCursor).toBeNull();
  });

  it('yields a failed page as a value and stops there', async () => {
    const pages: ListPage[] = [];
    for await (const page of client.list('paged', { pageSize: 0 })) pages.push(page);
    expect(pages).toHaveLength(1);
    expect(failed(pages[0]!)).toMatchObject({ code: 'LIMIT_EXCEEDED', limit: 'pageSize' });
  });
});

describe('client: update', () => {
  it('creates a missing record from undefined', async () => {
    const result = ok(await client.update('counters', 'fresh', (current) => (current === undefined ? 'created' : 'existed')));
    expect(result.record).toMatchObject({ value: 'created', revision: 1 });
    expect(result.attempts).toBe(1);
  });

  it('keeps the metadata unless told otherwise', async () => {
    ok(await client.put('counters', 'meta', 1, { metadata: { owner: 'a' } }));
    expect(ok(await client.update('counters', 'meta', (v) => (v as number) + 1)).record).toMatchObject({ value: 2, metadata: { owner: 'a' } });
    expect(ok(await client.update('counters', 'meta', (v) => (v as number) + 1, { metadata: { owner: 'b' } })).record.metadata).toEqual({ owner: 'b' });
  });

  it('10 concurrent updaters incrementing a counter end at exactly 10', async () => {
    const increment = (current: unknown) => (typeof current === 'number' ? current + 1 : 1);
    // Separate clients, as separate browser tabs or Runner handlers would be.
    const clients = await Promise.all(Array.from({ length: 10 }, async () => createStorageClient({ url: t.url, token: await install.token() })));
    const results = await Promise.all(clients.map((c) => c.update('counters', 'hits', increment, { maxAttempts: 10 })));
    for (const r of results) ok(r);
    const { record } = ok(await client.get('counters', 'hits'));
    expect(record).toMatchObject({ value: 10, revision: 10 });
    // Each successful write replaced a distinct revision: the values written are exactly 1..10.
    expect(results.map((r) => ok(r).record.value).sort((a, b) => (a as number) - (b as number))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('gives up after maxAttempts with the last REVISION_MISMATCH', async () => {
    ok(await client.put('counters', 'contended', 0));
    let calls = 0;
    const result = await client.update(
      'counters',
      'contended',
      async (current) => {
        calls++;
        // Someone else writes between our read and our write, every time.
        ok(await client.put('counters', 'contended', 100 + calls));
        return (current as number) + 1;
      },
      { maxAttempts: 3 },
    );
    expect(calls).toBe(3);
    expect(failed(result)).toMatchObject({ code: 'REVISION_MISMATCH', key: 'contended' });
    expect(ok(await client.get('counters', 'contended')).record?.value).toBe(103);
  });

  it('stops at once on an error other than a conflict', async () => {
    let calls = 0;
    const result = await client.update('counters', 'oversize', () => {
      calls++;
      return 'x'.repeat(70_000);
    });
    expect(calls).toBe(1);
    expect(failed(result)).toMatchObject({ code: 'LIMIT_EXCEEDED', limit: 'valueBytes' });
  });
});

describe('client: increment', () => {
  it('starts a missing record at 0, adds exactly (0.1 + 0.2 stores 0.3), and keeps the metadata', async () => {
    expect(ok(await client.increment('incr', 'n', 0.1)).record).toMatchObject({ namespace: 'incr', key: 'n', value: 0.1, revision: 1 });
    const { record } = ok(await client.increment('incr', 'n', 0.2));
    expect(record).toMatchObject({ value: 0.3, revision: 2 });
    ok(await client.put('incr', 'meta', 10, { metadata: { unit: 'hits' } }));
    expect(ok(await client.increment('incr', 'meta', -3)).record).toMatchObject({ value: 7, metadata: { unit: 'hits' }, revision: 2 });
  });

  it('ttlSeconds sets the TTL; omitted clears it', async () => {
    expect(Date.parse(ok(await client.increment('incr', 'ttl', 1, { ttlSeconds: 600 })).record.ttlExpiresAt ?? '')).toBeGreaterThan(Date.now());
    expect(ok(await client.increment('incr', 'ttl', 1)).record).toMatchObject({ value: 2, ttlExpiresAt: null });
  });

  it('20 concurrent increments by 1 add exactly 20', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => client.increment('incr', 'shared', 1)));
    expect(results.map((r) => ok(r).record.value).sort((a, b) => (a as number) - (b as number))).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(ok(await client.get('incr', 'shared')).record).toMatchObject({ value: 20, revision: 20 });
  });

  it('a stored value that is not a number is LIMIT_EXCEEDED valueType, and it is left alone', async () => {
    ok(await client.put('incr', 'text', 'seven'));
    expect(failed(await client.increment('incr', 'text', 1))).toMatchObject({ code: 'LIMIT_EXCEEDED', limit: 'valueType' });
    expect(ok(await client.get('incr', 'text')).record).toMatchObject({ value: 'seven', revision: 1 });
  });

  it('NaN and Infinity are CLIENT_ERROR and nothing is sent', async () => {
    let sent = 0;
    const c = createStorageClient({ url: t.url, token: await install.token() }, (input, init) => {
      sent++;
      return fetch(input, init);
    });
    expect(failed(await c.increment('incr', 'nan', NaN))).toMatchObject({ code: 'CLIENT_ERROR', message: expect.stringMatching(/NaN/) });
    expect(failed(await c.increment('incr', 'nan', -Infinity))).toMatchObject({ code: 'CLIENT_ERROR', message: expect.stringMatching(/-Infinity/) });
    expect(sent).toBe(0);
    expect(ok(await client.get('incr', 'nan')).record).toBeNull();
  });
});

describe('client: commit', () => {
  function commitOk(result: CommitResult): Extract<CommitResult, { ok: true }> {
    if (!result.ok) return expect.fail(`expected success, got ${JSON.stringify(result.error)}`);
    return result;
  }
  function commitFailed(result: CommitResult): CommitError {
    if (result.ok) return expect.fail(`expected an error, got ${JSON.stringify(result)}`);
    return result.error;
  }

  it('checks, a put, a delete and an increment across namespaces, all applied; one record per operation, null for the delete', async () => {
    const a = ok(await client.put('cm-lists', 'a', ['x', 'y'])).record;
    ok(await client.put('cm-lists', 'old', 1));
    const result = commitOk(
      await client
        .commit()
        .check('cm-lists', 'a', a.revision)
        .check('cm-lists', 'b', 0)
        .put('cm-lists', 'b', ['x'], { metadata: { moved: true } })
        .delete('cm-lists', 'old')
        .increment('cm-stats', 'moves', 1)
        .run(),
    );
    expect(result.committed).toBe(true);
    expect(result.records.map((r) => (r === null ? null : [r.namespace, r.key, r.value, r.revision]))).toEqual([
      ['cm-lists', 'b', ['x'], 1],
      null,
      ['cm-stats', 'moves', 1, 1],
    ]);
    expect(result.records[0]?.metadata).toEqual({ moved: true });
    expect(ok(await client.get('cm-lists', 'old')).record).toBeNull();
    expect(ok(await client.get('cm-stats', 'moves')).record?.value).toBe(1);
  });

  it('failed checks are a REVISION_MISMATCH listing every failed check in order, and nothing is written', async () => {
    ok(await client.put('cm-conf', 'k1', 'v'));
    ok(await client.put('cm-conf', 'k1', 'v2'));
    const error = commitFailed(
      await client
        .commit()
        .check('cm-conf', 'k1', 1)
        .check('cm-conf', 'k1', 2)
        .check('cm-conf', 'absent', 3)
        .put('cm-conf', 'k2', 'new')
        .increment('cm-conf', 'n', 5)
        .run(),
    );
    if (error.code !== 'REVISION_MISMATCH') return expect.fail(`unexpected ${error.code}`);
    // The union narrows on code: a commit's REVISION_MISMATCH always carries its conflicts.
    expect(error).toEqual({
      code: 'REVISION_MISMATCH',
      message: expect.any(String),
      conflicts: [
        { index: 0, namespace: 'cm-conf', key: 'k1', expectedRevision: 1, currentRevision: 2 },
        { index: 2, namespace: 'cm-conf', key: 'absent', expectedRevision: 3, currentRevision: null },
      ],
    });
    expect(ok(await client.getMany('cm-conf', ['k2', 'n'])).records).toEqual([null, null]);
  });

  it('a dry run answers the records as they would be, committed false and cursor null, and writes nothing', async () => {
    ok(await client.put('cm-dry', 'c', 41));
    const result = commitOk(await client.commit().check('cm-dry', 'c', 1).increment('cm-dry', 'c', 1).put('cm-dry', 'p', 'v').run({ dryRun: true }));
    expect(result).toMatchObject({ committed: false, cursor: null });
    expect(result.records.map((r) => [r?.key, r?.value, r?.revision])).toEqual([
      ['c', 42, 2],
      ['p', 'v', 1],
    ]);
    expect(ok(await client.get('cm-dry', 'c')).record).toMatchObject({ value: 41, revision: 1 });
    expect(ok(await client.get('cm-dry', 'p')).record).toBeNull();
  });

  it('a key in two operations is LIMIT_EXCEEDED commitDuplicateKey naming the second operation', async () => {
    const error = commitFailed(await client.commit().put('cm-dup', 'k', 1).put('cm-dup', 'other', 2).increment('cm-dup', 'k', 1).run());
    expect(error).toMatchObject({ code: 'LIMIT_EXCEEDED', limit: 'commitDuplicateKey', itemIndex: 2 });
    expect(ok(await client.get('cm-dup', 'other')).record).toBeNull();
  });

  it('an operation failing the namespace schema is VALIDATION_FAILED and nothing is written', async () => {
    await t.app.storage.setNamespaceSchema(t.adminCaller(), { installId: install.id, namespace: 'cm-typed', schema: { type: 'integer' } });
    const error = commitFailed(await client.commit().put('cm-free', 'k', 'any').put('cm-typed', 'k', 'not a number').run());
    expect(error).toMatchObject({ code: 'VALIDATION_FAILED', schemaVersion: 1 });
    expect(ok(await client.get('cm-free', 'k')).record).toBeNull();
  });

  it('NaN in a put value or an increment is CLIENT_ERROR and nothing is sent', async () => {
    let sent = 0;
    const c = createStorageClient({ url: t.url, token: await install.token() }, (input, init) => {
      sent++;
      return fetch(input, init);
    });
    expect(commitFailed(await c.commit().put('cm-nan', 'a', { x: [NaN] }).run())).toMatchObject({ code: 'CLIENT_ERROR', message: expect.stringMatching(/NaN/) });
    expect(commitFailed(await c.commit().put('cm-nan', 'a', 1).increment('cm-nan', 'b', Infinity).run())).toMatchObject({ code: 'CLIENT_ERROR' });
    expect(sent).toBe(0);
    expect(ok(await client.get('cm-nan', 'a')).record).toBeNull();
  });

  it('a read-only token committing is FORBIDDEN', async () => {
    const reader = createStorageClient({ url: t.url, token: await install.token('storage:read') });
    expect(commitFailed(await reader.commit().put('cm-ro', 'k', 1).run())).toMatchObject({ code: 'FORBIDDEN' });
  });
});

describe('client: callers', () => {
  it('the Runner (runnerToken + installId) reads and writes its install', async () => {
    const runner = createStorageClient({ url: t.url, runnerToken: t.runnerToken, installId: install.id });
    ok(await runner.put('runner', 'k', { from: 'runner' }));
    expect(ok(await client.get('runner', 'k')).record?.value).toEqual({ from: 'runner' });
    expect(ok(await runner.update('runner', 'k', () => 'updated')).record.revision).toBe(2);
  });

  it('the Runner with an unknown install is FORBIDDEN (HTTP 403)', async () => {
    const runner = createStorageClient({ url: t.url, runnerToken: t.runnerToken, installId: randomUUID() });
    expect(failed(await runner.get('runner', 'k'))).toMatchObject({ code: 'FORBIDDEN', status: 403 });
  });

  it('an admin names the install it acts on', async () => {
    const admin = createStorageClient({ url: t.url, token: await t.adminToken(), installId: install.id });
    expect(ok(await admin.get('runner', 'k')).record?.value).toBe('updated');
    ok(await admin.put('admin', 'k', 1));
    expect(ok(await client.get('admin', 'k')).record?.value).toBe(1);
  });

  it('an admin of another tenant is FORBIDDEN', async () => {
    const stranger = createStorageClient({ url: t.url, token: await t.adminToken(randomUUID()), installId: install.id });
    expect(failed(await stranger.get('runner', 'k'))).toMatchObject({ code: 'FORBIDDEN' });
  });
});

describe('client: browser-safe', () => {
  it('bundles for the browser with no Node built-ins and no graphql-js', async () => {
    const result = await build({ entryPoints: ['client/index.ts'], bundle: true, format: 'esm', platform: 'browser', write: false, metafile: true, logLevel: 'silent' });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.filter((i) => i.includes('node_modules'))).toEqual([]);
    expect(inputs.sort()).toEqual(['client/cache.ts', 'client/generated/graphcache-schema.ts', 'client/generated/graphql.ts', 'client/generated/possible-types.ts', 'client/index.ts']);
    expect(result.outputFiles[0]!.text).not.toMatch(/\brequire\(|from "node:/);
  });

  it('an app that uses only createStorageClient bundles none of the cache configuration (Apollo, urql)', async () => {
    const result = await build({
      stdin: { contents: "export { createStorageClient } from './client/index.js';", resolveDir: process.cwd(), loader: 'ts' },
      bundle: true,
      format: 'esm',
      platform: 'browser',
      write: false,
      logLevel: 'silent',
    });
    const text = result.outputFiles[0]!.text;
    expect(text).toMatch(/createStorageClient/);
    expect(text).not.toMatch(/__schema|StorageError"|relayStylePagination|relayPagination/);
  });
});
