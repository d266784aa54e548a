/** Start-up shared by the server and the CLI: config → database → migrations. */
import { randomBytes } from 'node:crypto';
import { mintToken } from './auth/credentials.js';
import type { Config } from './config.js';
import { openDatabase, type DatabaseHandle } from './db/database.js';
import { migrateToLatest } from './db/migrate.js';
import type { GraphiQLDemo } from './http/graphiql.js';
import { Storage } from './storage/storage.js';

export async function openMigratedDatabase(config: Config): Promise<DatabaseHandle> {
  const database = await openDatabase(config);
  try {
    await database.withSession(migrateToLatest);
  } catch (error) {
    await database.close();
    throw error;
  }
  return database;
}

export const DEMO_TENANT = '00000000-0000-4000-8000-000000000001';
export const DEMO_INSTALL = '00000000-0000-4000-8000-0000000000a1';

export interface DevSetup {
  secret: string;
  adminToken: string;
  extensionToken: string;
  demo: GraphiQLDemo;
}

/** Dev mode: a generated secret, a demo tenant and install, and tokens ready to paste. */
export async function setUpDevMode(storage: Storage): Promise<DevSetup> {
  const secret = randomBytes(32).toString('base64url');
  await storage.upsertInstall(
    { principal: { kind: 'admin', tenantId: DEMO_TENANT, actor: 'dev-setup' }, requestId: null },
    { id: DEMO_INSTALL, extensionId: 'demo-extension', enabled: true, canRead: true, canWrite: true },
  );
  const adminToken = await mintToken(secret, { sub: 'dev-admin', tid: DEMO_TENANT, role: 'admin', expiresIn: '12h' });
  const extensionToken = await mintToken(secret, {
    sub: 'dev-extension',
    tid: DEMO_TENANT,
    role: 'extension',
    iid: DEMO_INSTALL,
    scope: 'storage:read storage:write',
    expiresIn: '12h',
  });
  return { secret, adminToken, extensionToken, demo: { token: adminToken, installId: DEMO_INSTALL } };
}
