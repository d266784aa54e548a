/**
 * docs/citus.md rule 18: a deadlock or serialization victim (SQLSTATE 40P01 / 40001; Citus
 * detects distributed deadlocks and cancels one side the same way) is retried by the write path,
 * and is never reported as INTERNAL.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mapDatabaseError, UnavailableError } from '../../src/storage/errors.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { backend, onCitus, waitForLockWait } from '../support/db.js';
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
      // The gateway's session checks for the cycle first (default 1 s): the write is the victim. On
      // Citus the other side's statements run in a worker's session, which gets the setting only
      // as a propagated SET LOCAL (a placeholder setting on plain PostgreSQL).
      await other.query("SET citus.propagate_set_commands = 'local'");
      await other.query('BEGIN');
      await other.query("SET LOCAL deadlock_timeout = '10s'");
      // The other side holds the record, then asks for the install lock the write holds: a cycle.
      await other.query("UPDATE ext_storage_records SET updated_at = now() WHERE tenant_id = $1 AND install_id = $2 AND key = 'k'", [c.install.tenantId, c.install.id]);
      calls.length = 0;
      const write = c.put({ namespace: 'ns', key: 'k', value: 2 });
      // The cycle closes only once the write holds the install lock and waits for the record: wait
      // for that (on Citus the write waits in a worker's session), well within its 1 s check.
      await waitForLockWait(t.database.url!);
      const otherSide = other
        .query('SELECT 1 FROM ext_storage_install_locks WHERE tenant_id = $1 AND install_id = $2 FOR UPDATE', [c.install.tenantId, c.install.id])
        .then(async () => {
          await other.query('COMMIT');
          return 'committed' as const;
        })
        .catch(async (error: { code?: string }) => {
          await other.query('ROLLBACK');
          expect(error.code).toBe('40P01');
          return 'victim' as const;
        });
      const result = await write;
      const otherOutcome = await otherSide;
      expect(result).toMatchObject({ __typename: 'PutRecordSuccess', record: { revision: 2, value: 2 } });
      // On PostgreSQL the write's 1 s check finds the cycle first: the write is the victim and is
      // called again. On Citus the coordinator's distributed deadlock detector runs on its own
      // schedule (every 2 s here) and may cancel the other side first; then one call was enough.
      if (!onCitus) expect(otherOutcome).toBe('committed');
      expect(calls.filter((sql) => sql.includes('ext_storage_write_v1'))).toHaveLength(otherOutcome === 'committed' ? 2 : 1);
    } finally {
      await other.end();
    }
  });
});
