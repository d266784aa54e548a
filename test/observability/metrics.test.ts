import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../../src/auth/credentials.js';
import { loadConfig } from '../../src/config.js';
import { createApp, type App } from '../../src/http/server.js';
import { startTestApp, type TestApp, type TestInstall } from '../support/app.js';
import { openTestDatabase, type TestDatabase } from '../support/db.js';
import { delta, scrape, valueOf } from './prometheus.js';

const PUT = `mutation Put($input: PutRecordInput!) { putRecord(input: $input) { __typename
  ... on PutRecordSuccess { record { key revision } }
  ... on QuotaExceeded { quota }
  ... on RevisionMismatch { currentRevision }
  ... on ValidationFailed { issues { path } } } }`;
const GET = `query Get($ns: String!, $key: String!) { record(namespace: $ns, key: $key) { key value revision } }`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('GET /metrics', () => {
  let t: TestApp;
  const installs: TestInstall[] = [];
  const newInstall = async (quota?: Record<string, number>) => {
    const i = await t.createInstall({ quota });
    installs.push(i);
    return i;
  };
  const put = async (install: TestInstall, input: Record<string, unknown>) => {
    const res = await t.gql(PUT, { input }, { token: await install.token() });
    expect(res.status).toBe(200);
    return res.body.data.putRecord as { __typename: string } & Record<string, any>;
  };

  beforeAll(async () => {
    // A tiny rate limit (burst 5, then 1 per second per install): every test below stays within it
    // except the one that exceeds it on purpose. Admin calls (setup through the core) are not limited.
    t = await startTestApp({ STORAGE_MIN_TTL_SECONDS: '1', STORAGE_RATE_LIMIT_PER_SECOND: '1', STORAGE_RATE_LIMIT_BURST: '5' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('counts a put and a get: operations, latency, bytes written, GraphQL and HTTP requests', async () => {
    const install = await newInstall();
    const value = { theme: 'dark', size: 12 };
    const metadata = { by: 'metrics-test' };
    const before = await scrape(t.url);
    expect((await put(install, { namespace: 'prefs', key: 'theme', value, metadata })).__typename).toBe('PutRecordSuccess');
    const get = await t.gql(GET, { ns: 'prefs', key: 'theme' }, { token: await install.token() });
    expect(get.body.data.record).toMatchObject({ key: 'theme', value });
    const after = await scrape(t.url);

    expect(delta(before, after, 'ext_storage_operations_total', { operation: 'putRecord', outcome: 'ok' })).toBe(1);
    expect(delta(before, after, 'ext_storage_operations_total', { operation: 'getRecords', outcome: 'ok' })).toBe(1);
    expect(delta(before, after, 'ext_storage_operation_duration_seconds_count', { operation: 'putRecord' })).toBe(1);
    expect(delta(before, after, 'ext_storage_operation_duration_seconds_count', { operation: 'getRecords' })).toBe(1);
    expect(delta(before, after, 'ext_storage_bytes_written_total')).toBe(JSON.stringify(value).length + JSON.stringify(metadata).length);
    expect(delta(before, after, 'ext_storage_graphql_requests_total', { operation_type: 'mutation', outcome: 'ok' })).toBe(1);
    expect(delta(before, after, 'ext_storage_graphql_requests_total', { operation_type: 'query', outcome: 'ok' })).toBe(1);
    expect(delta(before, after, 'ext_storage_graphql_request_duration_seconds_count', { operation_type: 'mutation' })).toBe(1);
    expect(delta(before, after, 'ext_storage_graphql_request_duration_seconds_count', { operation_type: 'query' })).toBe(1);
    expect(delta(before, after, 'ext_storage_http_requests_total', { route: 'graphql', status: '200' })).toBe(2);
    // The first scrape itself is counted once it has been answered.
    expect(delta(before, after, 'ext_storage_http_requests_total', { route: 'metrics', status: '200' })).toBe(1);
    // Histogram buckets are cumulative: +Inf holds every observation.
    expect(delta(before, after, 'ext_storage_operation_duration_seconds_bucket', { operation: 'putRecord', le: '+Inf' })).toBe(1);
  });

  it('counts a quota rejection by quota, and quota pressure by threshold', async () => {
    const install = await newInstall({ maxKeysPerNamespace: 2 });
    await t.app.storage.putRecord(t.adminCaller(), { installId: install.id, namespace: 'q', key: 'a', value: 1 });
    const before = await scrape(t.url);
    // 1 → 2 keys of 2: past 80 % and 95 % at once.
    expect((await put(install, { namespace: 'q', key: 'b', value: 2 })).__typename).toBe('PutRecordSuccess');
    const between = await scrape(t.url);
    expect(delta(before, between, 'ext_storage_quota_pressure_total', { quota: 'keysPerNamespace', threshold: '0.8' })).toBe(1);
    expect(delta(before, between, 'ext_storage_quota_pressure_total', { quota: 'keysPerNamespace', threshold: '0.95' })).toBe(1);
    expect(delta(before, between, 'ext_storage_quota_rejections_total')).toBe(0);

    const refused = await put(install, { namespace: 'q', key: 'c', value: 3 });
    expect(refused).toMatchObject({ __typename: 'QuotaExceeded', quota: 'keysPerNamespace' });
    const after = await scrape(t.url);
    expect(delta(between, after, 'ext_storage_quota_rejections_total', { quota: 'keysPerNamespace' })).toBe(1);
    expect(delta(between, after, 'ext_storage_quota_rejections_total')).toBe(1);
    expect(delta(between, after, 'ext_storage_operations_total', { operation: 'putRecord', outcome: 'quota_exceeded' })).toBe(1);
    // A refused write neither writes bytes nor adds pressure.
    expect(delta(between, after, 'ext_storage_bytes_written_total')).toBe(0);
    expect(delta(between, after, 'ext_storage_quota_pressure_total')).toBe(0);
  });

  it('counts a JSON Schema validation failure', async () => {
    const install = await newInstall();
    await t.app.storage.setNamespaceSchema(t.adminCaller(), {
      installId: install.id,
      namespace: 'typed',
      schema: { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } },
    });
    const before = await scrape(t.url);
    const refused = await put(install, { namespace: 'typed', key: 'k', value: { n: 'not a number' } });
    expect(refused.__typename).toBe('ValidationFailed');
    const after = await scrape(t.url);
    expect(delta(before, after, 'ext_storage_validation_failures_total')).toBe(1);
    expect(delta(before, after, 'ext_storage_operations_total', { operation: 'putRecord', outcome: 'validation_failed' })).toBe(1);
    expect(delta(before, after, 'ext_storage_bytes_written_total')).toBe(0);
  });

  it('counts records removed by the TTL sweep, once, only when the sweep commits', async () => {
    const install = await newInstall();
    expect((await put(install, { namespace: 'ttl', key: 'soon', value: 'bye', ttlSeconds: 1 })).__typename).toBe('PutRecordSuccess');
    await sleep(1300);
    const before = await scrape(t.url);
    // A refused write rolls its sweep back: nothing was deleted, nothing may be counted.
    expect((await put(install, { namespace: 'ttl', key: 'other', value: 1, ifRevision: 7 })).__typename).toBe('RevisionMismatch');
    const between = await scrape(t.url);
    expect(delta(before, between, 'ext_storage_ttl_deleted_total')).toBe(0);

    expect((await put(install, { namespace: 'ttl', key: 'other', value: 1 })).__typename).toBe('PutRecordSuccess');
    const after = await scrape(t.url);
    expect(delta(before, after, 'ext_storage_ttl_deleted_total')).toBe(1);
    const audit = await t.app.storage.auditLog(t.adminCaller(), t.app.storage.scopeOf((await t.app.storage.loadInstall(null, install.id))!), 10, null);
    expect(audit.items.filter((e) => e.operation === 'ttlExpire').map((e) => e.key)).toEqual(['soon']);
  });

  it('counts rate-limited requests (HTTP 429)', async () => {
    const install = await newInstall();
    const token = await install.token();
    const before = await scrape(t.url);
    // Twelve at once against a bucket of five: at least a few are refused however slow the machine.
    const statuses = (await Promise.all(Array.from({ length: 12 }, () => t.gql(GET, { ns: 'prefs', key: 'x' }, { token })))).map((r) => r.status);
    const limited = statuses.filter((s) => s === 429).length;
    expect(statuses.filter((s) => s !== 429 && s !== 200)).toEqual([]);
    const after = await scrape(t.url);
    expect(limited).toBeGreaterThanOrEqual(1);
    expect(delta(before, after, 'ext_storage_rate_limited_total')).toBe(limited);
    expect(delta(before, after, 'ext_storage_http_requests_total', { route: 'graphql', status: '429' })).toBe(limited);
  });

  it('has no tenant or install labels, and no ids in any label value', async () => {
    const e = await scrape(t.url);
    expect(installs.length).toBeGreaterThanOrEqual(5);
    for (const s of e.samples) {
      for (const label of Object.keys(s.labels)) expect(label).not.toMatch(/tenant|install/i);
    }
    expect(e.text).not.toContain(t.tenantId);
    for (const i of installs) expect(e.text).not.toContain(i.id);
    expect(e.text).not.toMatch(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/);
  });

  it('serves the Prometheus text format with the process metrics and the pool gauges', async () => {
    const e = await scrape(t.url);
    expect(e.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const name of [
      'process_cpu_user_seconds_total',
      'process_cpu_system_seconds_total',
      'process_resident_memory_bytes',
      'process_start_time_seconds',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
      'nodejs_gc_duration_seconds_count',
      'ext_storage_db_pool_connections',
      'ext_storage_db_pool_idle',
      'ext_storage_db_pool_waiting',
    ]) {
      expect(e.seriesNames.has(name), name).toBe(true);
    }
    expect(valueOf(e, 'ext_storage_db_pool_waiting')).toBeGreaterThanOrEqual(0);
    expect(valueOf(e, 'process_start_time_seconds')).toBeGreaterThan(0);
    // Every gateway metric is named ext_storage_*; nothing else but the process metrics.
    for (const name of e.types.keys()) expect(name).toMatch(/^(ext_storage_|process_|nodejs_)/);
  });
});

describe('the request log', () => {
  let app: App;
  let database: TestDatabase;
  let url: string;
  const secret = randomBytes(32).toString('hex');
  const runnerToken = `runner-${randomBytes(12).toString('hex')}`;
  const lines: string[] = [];

  beforeAll(async () => {
    const config = loadConfig({ NODE_ENV: 'test', STORAGE_JWT_SECRET: secret, RUNNER_AUTH_TOKENS: runnerToken, STORAGE_RATE_LIMIT_PER_SECOND: '0' });
    database = await openTestDatabase([], config.db.poolMax);
    let pending = '';
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        pending += chunk.toString('utf8');
        const parts = pending.split('\n');
        pending = parts.pop()!;
        lines.push(...parts.filter((l) => l.length > 0));
        done();
      },
    });
    app = createApp({ config, database: database.handle, logger: pino({ level: 'info' }, stream), jwtSecret: secret });
    url = await app.listen(0, '127.0.0.1');
  });
  afterAll(async () => {
    await app?.close(2000);
    await database?.dispose();
  });

  /** The access line of one request (written just after the response, so wait for it). */
  async function requestLine(requestId: string): Promise<Record<string, any>> {
    for (let i = 0; i < 100; i++) {
      const line = lines.map((l) => JSON.parse(l) as Record<string, any>).find((l) => l.requestId === requestId && l.msg === 'request');
      if (line) return line;
      await sleep(20);
    }
    throw new Error(`no log line for ${requestId}; got ${lines.join('\n')}`);
  }

  it('is one JSON line per request with requestId, operation, installId, status and durationMs, and never a token or a value', async () => {
    const tenantId = randomUUID();
    const installId = randomUUID();
    await app.storage.upsertInstall(
      { principal: { kind: 'admin', tenantId, actor: 'log-test' }, requestId: null },
      { id: installId, extensionId: 'log-test', enabled: true, canRead: true, canWrite: true },
    );
    const token = await mintToken(secret, { sub: 'log-ext', tid: tenantId, role: 'extension', iid: installId, scope: 'storage:read storage:write' });
    const secretValue = `VALUE-${randomBytes(8).toString('hex')}`;
    const secretMeta = `META-${randomBytes(8).toString('hex')}`;
    const gql = (requestId: string, body: unknown, auth = `Bearer ${token}`) =>
      fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: auth, 'x-request-id': requestId },
        body: JSON.stringify(body),
      });

    const named = await gql('log-named-put', {
      query: `mutation SaveTheme($input: PutRecordInput!) { putRecord(input: $input) { __typename } }`,
      variables: { input: { namespace: 'prefs', key: 'theme', value: { secret: secretValue }, metadata: { note: secretMeta } } },
    });
    expect(named.status).toBe(200);
    const anonymous = await gql('log-anonymous-get', { query: `{ record(namespace: "prefs", key: "theme") { value } }` });
    expect(await anonymous.text()).toContain(secretValue);
    const runner = await fetch(`${url}/api/internal/ext-storage/install/${installId}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-runner-auth': runnerToken, 'x-request-id': 'log-runner-put' },
      body: JSON.stringify({ operation: 'put', namespace: 'prefs', key: 'runner', value: { secret: secretValue } }),
    });
    expect(runner.status).toBe(200);
    const bogus = `${token.slice(0, -4)}AAAA`;
    const refused = await gql('log-refused', { query: '{ record(namespace: "prefs", key: "theme") { value } }' }, `Bearer ${bogus}`);
    expect(refused.status).toBe(401);

    const put = await requestLine('log-named-put');
    expect(put).toMatchObject({ requestId: 'log-named-put', operation: 'SaveTheme', operationType: 'mutation', installId, status: 200, route: 'graphql' });
    expect(typeof put.durationMs).toBe('number');
    expect(put.durationMs).toBeGreaterThanOrEqual(0);
    // An anonymous operation is named by its root field(s).
    expect(await requestLine('log-anonymous-get')).toMatchObject({ operation: 'record', operationType: 'query', installId, status: 200 });
    expect(await requestLine('log-runner-put')).toMatchObject({ operation: 'put', route: 'runner', installId, status: 200 });
    const unauthenticated = await requestLine('log-refused');
    expect(unauthenticated).toMatchObject({ status: 401, route: 'graphql' });
    expect(unauthenticated.installId).toBeUndefined();

    const everything = lines.join('\n');
    for (const forbidden of [token, bogus, runnerToken, secret, secretValue, secretMeta, 'Bearer']) {
      expect(everything).not.toContain(forbidden);
    }
    for (const l of lines) expect(() => JSON.parse(l)).not.toThrow();
  });

  it('names the operation that ran when a document holds several', async () => {
    const admin = await mintToken(secret, { sub: 'log-admin', tid: randomUUID(), role: 'admin' });
    const res = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}`, 'x-request-id': 'log-two-ops' },
      body: JSON.stringify({ query: 'query First { __typename } mutation Second { __typename }', operationName: 'Second' }),
    });
    expect(res.status).toBe(200);
    expect(await requestLine('log-two-ops')).toMatchObject({ operation: 'Second', operationType: 'mutation', principal: 'admin', status: 200 });
  });
});

describe('per-install labels (STORAGE_METRICS_INSTALL_LABELS=true)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ STORAGE_METRICS_INSTALL_LABELS: 'true' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('count extension requests per install and status when turned on', async () => {
    const a = await t.createInstall();
    const b = await t.createInstall();
    for (const [install, n] of [[a, 3], [b, 1]] as const) {
      for (let i = 0; i < n; i++) {
        const res = await t.gql(GET, { ns: 'app', key: 'k' }, { token: await install.token() });
        expect(res.status).toBe(200);
      }
    }
    const e = await scrape(t.url);
    expect(valueOf(e, 'ext_storage_install_requests_total', { install_id: a.id, status: '200' })).toBe(3);
    expect(valueOf(e, 'ext_storage_install_requests_total', { install_id: b.id, status: '200' })).toBe(1);
  });
});
