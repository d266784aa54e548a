/**
 * Issue 11: logged fields from callers are truncated; a field never adds more than 1 KiB to a log
 * line. The Runner's `operation` field was logged whole (a 1 MB log line).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../../src/auth/credentials.js';
import { loadConfig } from '../../src/config.js';
import { clipForLog, errorForLog, MAX_LOG_FIELD_BYTES } from '../../src/http/log-fields.js';
import { createApp, type App } from '../../src/http/server.js';
import { openTestDatabase, type TestDatabase } from '../support/db.js';
import { raw } from '../support/raw-http.js';

let app: App;
let url: string;
let database: TestDatabase;
const lines: string[] = [];
const secret = randomBytes(32).toString('hex');
const runnerToken = `runner-${randomBytes(8).toString('hex')}`;
const tenantId = randomUUID();
const installId = randomUUID();
const RUNNER = '/api/internal/ext-storage/install/';

beforeAll(async () => {
  const config = loadConfig({ NODE_ENV: 'test', STORAGE_JWT_SECRET: secret, RUNNER_AUTH_TOKENS: runnerToken, STORAGE_RATE_LIMIT_PER_SECOND: '0', LOG_LEVEL: 'info' });
  database = await openTestDatabase();
  let pending = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const parts = (pending + chunk.toString('utf8')).split('\n');
      pending = parts.pop()!;
      lines.push(...parts.filter((l) => l.length > 0));
      done();
    },
  });
  app = createApp({ config, database: database.handle, logger: pino({ level: 'info' }, stream), jwtSecret: secret });
  url = await app.listen(0, '127.0.0.1');
  await app.storage.upsertInstall({ principal: { kind: 'admin', tenantId, actor: 'log-test' }, requestId: null }, { id: installId, extensionId: 'log-test', enabled: true, canRead: true, canWrite: true });
});
afterAll(async () => {
  await app?.close(2000);
  await database?.dispose();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function lineOf(requestId: string): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const line = lines.find((l) => (JSON.parse(l) as { requestId?: string; msg?: string }).requestId === requestId && l.includes('"msg":"request"'));
    if (line) return line;
    await sleep(20);
  }
  throw new Error(`no access line for ${requestId}`);
}

const jsonBytes = (v: unknown) => Buffer.byteLength(JSON.stringify(v));

describe('finding: the Runner operation field was logged untruncated (a 1 MB log line)', () => {
  for (const [name, operation] of [
    ['1 MB of ASCII', 'x'.repeat(1_000_000)],
    ['500,000 control characters (6 bytes each as JSON)', '\u0001'.repeat(500_000)],
    ['300,000 emoji', '😀'.repeat(300_000)],
  ] as const) {
    it(`${name}: the access line stays small and its operation field at most 1 KiB`, async () => {
      const requestId = `log-${randomUUID()}`;
      const res = await raw(url, {
        method: 'POST',
        target: RUNNER + installId,
        headers: [['Content-Type', 'application/json'], ['x-runner-auth', runnerToken], ['x-request-id', requestId]],
        body: JSON.stringify({ operation, namespace: 'ns', key: 'k' }),
      });
      expect(res.status).toBe(400);
      const line = await lineOf(requestId);
      expect(Buffer.byteLength(line)).toBeLessThan(2 * MAX_LOG_FIELD_BYTES);
      const parsed = JSON.parse(line) as { operation: string; route: string };
      expect(parsed.route).toBe('runner');
      expect(jsonBytes(parsed.operation)).toBeLessThanOrEqual(MAX_LOG_FIELD_BYTES);
      expect(parsed.operation.length).toBeGreaterThan(0);
    });
  }

  it('a known operation is logged as it is (control)', async () => {
    const requestId = `log-${randomUUID()}`;
    await raw(url, { method: 'POST', target: RUNNER + installId, headers: [['Content-Type', 'application/json'], ['x-runner-auth', runnerToken], ['x-request-id', requestId]], body: JSON.stringify({ operation: 'get', namespace: 'ns', key: 'k' }) });
    expect((JSON.parse(await lineOf(requestId)) as { operation: string }).operation).toBe('get');
  });
});

describe('every caller-controlled field that reaches the log is bounded', () => {
  it('a GraphQL operation name of 500,000 characters', async () => {
    const token = await mintToken(secret, { sub: 'log', tid: tenantId, role: 'extension', iid: installId, scope: 'storage:read' });
    const requestId = `log-${randomUUID()}`;
    await raw(url, {
      method: 'POST',
      target: '/graphql',
      headers: [['Content-Type', 'application/json'], ['Authorization', `Bearer ${token}`], ['x-request-id', requestId]],
      body: JSON.stringify({ query: `query ${'N'.repeat(500_000)} { __typename }` }),
    });
    const line = await lineOf(requestId);
    expect(Buffer.byteLength(line)).toBeLessThan(2 * MAX_LOG_FIELD_BYTES);
  });

  it('an x-request-id that is long or odd is replaced, not logged', async () => {
    const res = await raw(url, { method: 'POST', target: '/graphql', headers: [['Content-Type', 'application/json'], ['x-request-id', 'r'.repeat(10_000)]], body: '{}' });
    const requestId = res.header('x-request-id')!;
    expect(requestId.length).toBeLessThanOrEqual(128);
    expect(Buffer.byteLength(await lineOf(requestId))).toBeLessThan(2 * MAX_LOG_FIELD_BYTES);
  });

  it('no log line of this whole file is longer than 8 KiB', () => {
    for (const line of lines) expect(Buffer.byteLength(line), line.slice(0, 200)).toBeLessThan(8 * 1024);
  });
});

describe('clipForLog and errorForLog (what server.ts and runner-protocol.ts log through)', () => {
  it('a string is kept when it fits and cut to at most 1 KiB of JSON otherwise, saying how much was cut', () => {
    expect(clipForLog('short')).toBe('short');
    for (const s of ['a'.repeat(5000), '"'.repeat(5000), '\u0000'.repeat(5000), '😀'.repeat(5000), `${'a'.repeat(1023)}😀`]) {
      const clipped = clipForLog(s);
      expect(jsonBytes(clipped)).toBeLessThanOrEqual(MAX_LOG_FIELD_BYTES);
      expect(clipped).toMatch(/more characters\]$/);
      expect(clipped.isWellFormed()).toBe(true);
    }
  });

  it('an error quoting caller input (message, properties, cause) is clipped, and its stack keeps the frames', () => {
    const input = 'v'.repeat(1_000_000);
    const error = Object.assign(new Error(`invalid input syntax: "${input}"`, { cause: new Error(input) }), { detail: input, code: '22P02' });
    const logged = errorForLog(error) as Record<string, any>;
    expect(jsonBytes(logged.message)).toBeLessThanOrEqual(MAX_LOG_FIELD_BYTES);
    expect(jsonBytes(logged.detail)).toBeLessThanOrEqual(MAX_LOG_FIELD_BYTES);
    expect(jsonBytes(logged.cause.message)).toBeLessThanOrEqual(MAX_LOG_FIELD_BYTES);
    expect(logged.code).toBe('22P02');
    expect(logged.stack).toMatch(/\n\s+at /);
    expect((logged.stack as string).split('v').length - 1).toBeLessThan(MAX_LOG_FIELD_BYTES);
    expect(jsonBytes(logged)).toBeLessThan(12 * 1024);
  });
});
