/**
 * design/citus.md rule 18: a deadlock or serialization victim (SQLSTATE 40P01 / 40001; Citus
 * detects distributed deadlocks and cancels one side the same way) is retried by the write path,
 * and is never reported as INTERNAL.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mapDatabaseError, UnavailableError } from '../../src/storage/errors.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { backend } from '../support/db.js';
import { extensionClient } from '../records/client.js';

describe('deadlock and serialization victims', () => {
  it('map to the retryable "temporarily unavailable" error, not INTERNAL', () => {
    for (const code of ['40P01', '40001']) {
      expect(mapDatabaseError(Object.assign(new Error('deadlock detected'), { code }))).toBeInstanceOf(UnavailableError);
    }
  });
});

// PGlite has one connection: no second transaction can take part in a deadlock.
describe.skipIf(backend !== 'postgres')('a write chosen as a deadlock victim', () => {
  let t: TestApp;
  const calls: string[] = [];
  beforeAll(async () => {
    t = await startTestApp({}, [(e) => calls.push(e.query.sql)]);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('is retried and succeeds once the other transaction is gone', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'ns', key: 'k', value: 1 });
    const other = new pg.Client({ connectionString: t.database.url });
    await other.connect();
    try {
      // The gateway's session checks for the cycle first (default 1 s): the write is the victim.
      await other.query("SET deadlock_timeout = '10s'");
      await other.query('BEGIN');
      // The other side holds the record, then asks for the install lock the write holds: a cycle.
      await other.query("UPDATE ext_storage_records SET updated_at = now() WHERE tenant_id = $1 AND install_id = $2 AND key = 'k'", [c.install.tenantId, c.install.id]);
      calls.length = 0;
      const write = c.put({ namespace: 'ns', key: 'k', value: 2 });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const otherSide = other
        .query('SELECT 1 FROM ext_storage_install_locks WHERE tenant_id = $1 AND install_id = $2 FOR UPDATE', [c.install.tenantId, c.install.id])
        .then(() => other.query('COMMIT'))
        .catch(() => other.query('ROLLBACK'));
      const result = await write;
      await otherSide;
      expect(result).toMatchObject({ __typename: 'PutRecordSuccess', record: { revision: 2, value: 2 } });
      expect(calls.filter((sql) => sql.includes('ext_storage_write_v1'))).toHaveLength(2);
    } finally {
      await other.end();
    }
  });
});
