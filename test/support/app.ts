/** A running gateway on a fresh database of this project's backend, with token helpers. */
import { randomBytes, randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import { mintToken } from '../../src/auth/credentials.js';
import { loadConfig, type Config } from '../../src/config.js';
import type { QueryObserver } from '../../src/db/database.js';
import { createApp, type App } from '../../src/http/server.js';
import { createLogger } from '../../src/logger.js';
import type { Caller } from '../../src/storage/principal.js';
import { openTestDatabase, type TestDatabase } from './db.js';

export interface GqlResult<T = any> {
  status: number;
  headers: Headers;
  body: { data?: T; errors?: Array<{ message: string; extensions?: Record<string, any> }> } & Record<string, any>;
}

/** `install { usage { … } namespace(name) { … } }` as the test clients read it. */
export interface UsageView {
  usage: { namespaces: number; keys: number; bytes: number };
  namespace: { keyCount: number; bytesUsed: number };
}

/** One audit event as the test clients read it. */
export interface AuditEventView {
  id: string;
  at: string;
  actor: string;
  operation: string;
  namespace: string | null;
  key: string | null;
  revision: number | null;
  bytesDelta: number;
}

/** Asserts a GraphQL response carries data and no errors, and returns the data. */
export function dataOf<T = any>(res: GqlResult): T {
  expect(res.body.errors, JSON.stringify(res.body.errors)).toBeUndefined();
  expect(res.status).toBe(200);
  return res.body.data as T;
}

export interface TestInstall {
  id: string;
  tenantId: string;
  token(scope?: string, extra?: Record<string, unknown>): Promise<string>;
}

export interface TestApp {
  app: App;
  url: string;
  config: Config;
  database: TestDatabase;
  secret: string;
  tenantId: string;
  runnerToken: string;
  adminToken(tenantId?: string): Promise<string>;
  /** An admin Caller for calling the storage core directly. */
  adminCaller(tenantId?: string): Caller;
  gql<T = any>(query: string, variables?: Record<string, unknown>, auth?: { token?: string; headers?: Record<string, string> }): Promise<GqlResult<T>>;
  /** Registers an install (through the core, as an admin of its tenant). */
  createInstall(opts?: { tenantId?: string; enabled?: boolean; canRead?: boolean; canWrite?: boolean; namespaces?: string[] | null; quota?: Record<string, number> }): Promise<TestInstall>;
  close(): Promise<void>;
}

/** openDatabase: the gateway's database when not a fresh test database (e.g. one reached through PgBouncer). */
export async function startTestApp(
  env: Record<string, string> = {},
  observers: QueryObserver[] = [],
  opts: { openDatabase?: (config: Config) => Promise<TestDatabase> } = {},
): Promise<TestApp> {
  const secret = randomBytes(32).toString('hex');
  const runnerToken = `runner-${randomBytes(12).toString('hex')}`;
  const config = loadConfig({
    NODE_ENV: 'test',
    STORAGE_JWT_SECRET: secret,
    RUNNER_AUTH_TOKENS: `${runnerToken},second-runner-token`,
    STORAGE_RATE_LIMIT_PER_SECOND: '0',
    LOG_LEVEL: 'silent',
    ...env,
  });
  const database = opts.openDatabase ? await opts.openDatabase(config) : await openTestDatabase(observers, config.db.poolMax);
  const app = createApp({ config, database: database.handle, logger: createLogger(config.logLevel), jwtSecret: secret });
  const url = await app.listen(0, '127.0.0.1');
  const tenantId: string = randomUUID();

  const adminToken = (tid = tenantId) => mintToken(secret, { sub: `admin-of-${tid.slice(0, 8)}`, tid, role: 'admin' });
  const adminCaller = (tid = tenantId): Caller => ({ principal: { kind: 'admin', tenantId: tid, actor: 'test-admin' }, requestId: null });

  return {
    app,
    url,
    config,
    database,
    secret,
    tenantId,
    runnerToken,
    adminToken,
    adminCaller,
    async gql(query, variables, auth) {
      const headers: Record<string, string> = { 'content-type': 'application/json', ...(auth?.headers ?? {}) };
      if (auth?.token) headers.authorization = `Bearer ${auth.token}`;
      const res = await fetch(`${url}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
      const text = await res.text();
      let body: any;
      try {
        body = JSON.parse(text);
      } catch {
        body = { raw: text };
      }
      return { status: res.status, headers: res.headers, body };
    },
    async createInstall(opts = {}) {
      const tid = opts.tenantId ?? tenantId;
      const id = randomUUID();
      await app.storage.upsertInstall(adminCaller(tid), {
        id,
        extensionId: 'test-extension',
        enabled: opts.enabled ?? true,
        canRead: opts.canRead ?? true,
        canWrite: opts.canWrite ?? true,
        namespaces: opts.namespaces ?? null,
        quota: opts.quota,
      });
      return {
        id,
        tenantId: tid,
        token: (scope = 'storage:read storage:write', extra = {}) =>
          mintToken(secret, { sub: `ext-${id.slice(0, 8)}`, tid, role: 'extension', iid: id, scope, ...extra }),
      };
    },
    async close() {
      // Every file that runs a gateway checks, at its end, that no write left the counters wrong.
      await database.assertCountersConsistent();
      await app.close(2000);
      // The Citus guard reports here: a statement that broke a rule fails the test file.
      await database.dispose();
    },
  };
}
