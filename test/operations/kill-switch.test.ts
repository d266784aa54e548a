import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../../src/auth/credentials.js';
import { loadConfig } from '../../src/config.js';
import { createApp, type App } from '../../src/http/server.js';
import { createLogger } from '../../src/logger.js';
import { openTestDatabase, type TestDatabase } from '../support/db.js';

const secret = randomBytes(32).toString('hex');
const runnerToken = 'kill-switch-runner-token';
const tenantId = randomUUID();
const installId = randomUUID();

let database: TestDatabase;

/** Starts a gateway on the shared test database with the kill switch on or off (the database outlives it). */
async function start(disabled: boolean): Promise<{ app: App; url: string }> {
  const config = loadConfig({
    NODE_ENV: 'test',
    STORAGE_JWT_SECRET: secret,
    RUNNER_AUTH_TOKENS: runnerToken,
    STORAGE_RATE_LIMIT_PER_SECOND: '0',
    STORAGE_EXTENSION_DOORS_DISABLED: disabled ? 'true' : 'false',
  });
  const shared = { ...database.handle, close: async () => undefined };
  const app = createApp({ config, database: shared, logger: createLogger('silent'), jwtSecret: secret });
  return { app, url: await app.listen(0, '127.0.0.1') };
}

async function gql(url: string, query: string, headers: Record<string, string>) {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query }),
  });
  return { status: res.status, body: (await res.json()) as any };
}

async function runner(url: string, body: object) {
  const res = await fetch(`${url}/api/internal/ext-storage/install/${installId}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-runner-auth': runnerToken },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

beforeAll(async () => {
  database = await openTestDatabase();
});
afterAll(async () => {
  await database?.dispose();
});

describe('the kill switch (STORAGE_EXTENSION_DOORS_DISABLED)', () => {
  it('turns the extension doors off and on again, keeping every byte and leaving admins working', async () => {
    const admin = { authorization: `Bearer ${await mintToken(secret, { sub: 'ops', tid: tenantId, role: 'admin' })}` };
    const extension = {
      authorization: `Bearer ${await mintToken(secret, { sub: 'ext', tid: tenantId, role: 'extension', iid: installId, scope: 'storage:read storage:write' })}`,
    };
    const read = '{ record(namespace: "app", key: "k") { value revision } }';

    // Doors open: register the install and write through the extension door.
    let gw = await start(false);
    const upsert = await gql(
      gw.url,
      `mutation { upsertInstall(input: { id: "${installId}", extensionId: "e", enabled: true, canRead: true, canWrite: true }) { id } }`,
      admin,
    );
    expect(upsert.body.data.upsertInstall.id).toBe(installId);
    const put = await gql(gw.url, 'mutation { putRecord(input: { namespace: "app", key: "k", value: [1, 2, 3] }) { __typename } }', extension);
    expect(put.body.data.putRecord.__typename).toBe('PutRecordSuccess');
    await gw.app.close(1000);

    // Switched off: extension tokens and the Runner are refused with a clear error; admins still read and write.
    gw = await start(true);
    const refused = await gql(gw.url, read, extension);
    expect(refused.status).toBe(403);
    expect(refused.body.data).toBeUndefined();
    expect(refused.body.errors[0].extensions.code).toBe('FORBIDDEN');
    expect(refused.body.errors[0].message).toMatch(/switched off by the operator/);
    const runnerRefused = await runner(gw.url, { operation: 'get', namespace: 'app', key: 'k' });
    expect(runnerRefused.status).toBe(403);
    expect(runnerRefused.body.code).toBe('FORBIDDEN');
    expect(runnerRefused.body.error).toMatch(/switched off/);
    const adminRead = await gql(gw.url, `{ record(installId: "${installId}", namespace: "app", key: "k") { value revision } }`, admin);
    expect(adminRead.body.data.record).toEqual({ value: [1, 2, 3], revision: 1 });
    const adminWrite = await gql(
      gw.url,
      `mutation { putRecord(input: { installId: "${installId}", namespace: "app", key: "k", value: [1, 2, 3, 4], ifRevision: 1 }) { __typename } }`,
      admin,
    );
    expect(adminWrite.body.data.putRecord.__typename).toBe('PutRecordSuccess');
    await gw.app.close(1000);

    // Back on: the extension sees its data, including the admin's write made meanwhile.
    gw = await start(false);
    const back = await gql(gw.url, read, extension);
    expect(back.status).toBe(200);
    expect(back.body.data.record).toEqual({ value: [1, 2, 3, 4], revision: 2 });
    const viaRunner = await runner(gw.url, { operation: 'get', namespace: 'app', key: 'k' });
    expect(viaRunner.status).toBe(200);
    expect(viaRunner.body.value).toEqual([1, 2, 3, 4]);
    await gw.app.close(1000);
  });
});
