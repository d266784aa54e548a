import { beforeAll, describe, expect, it } from 'vitest';
import { checkSql, FAN_OUT_MARK, loadParser, loadVolatility } from '../support/citus-guard.js';

beforeAll(async () => {
  await loadParser();
});

const rules = (sql: string) => checkSql(sql).map((v) => v.rule);
const details = (sql: string) => checkSql(sql).map((v) => `[${v.rule}] ${v.detail}`);

describe('the Citus guard refuses statements that would not stay on one shard', () => {
  it('a distributed table read without a tenant filter', () => {
    expect(rules('SELECT key FROM ext_storage_records WHERE install_id = $1')).toEqual(['tenant-filter']);
  });

  it('a tenant filter under OR, through a function, or over several tenants', () => {
    expect(rules('SELECT 1 FROM ext_storage_records WHERE tenant_id = $1 OR install_id = $2')).toEqual(['tenant-filter']);
    expect(rules('SELECT 1 FROM ext_storage_records WHERE lower(tenant_id::text) = $1')).toEqual(['tenant-filter']);
    expect(rules('SELECT 1 FROM ext_storage_records WHERE tenant_id = ANY($1)')).toEqual(['tenant-filter']);
    expect(rules("SELECT 1 FROM ext_storage_records WHERE tenant_id = 'x'")).toEqual(['tenant-filter']);
  });

  it('a join of distributed tables without tenant equality', () => {
    const sql = `SELECT 1 FROM ext_storage_records r JOIN ext_storage_namespaces n ON n.namespace = r.namespace
                 WHERE r.tenant_id = $1`;
    expect(rules(sql)).toEqual(['tenant-filter']);
    const joined = `SELECT 1 FROM ext_storage_records r JOIN ext_storage_namespaces n
                    ON n.tenant_id = r.tenant_id AND n.namespace = r.namespace WHERE r.tenant_id = $1`;
    expect(rules(joined)).toEqual([]);
  });

  it('an unfiltered subquery or CTE inside an otherwise filtered statement', () => {
    expect(rules('SELECT 1 FROM ext_storage_records WHERE tenant_id = $1 AND key IN (SELECT key FROM ext_storage_audit)')).toEqual([
      'tenant-filter',
    ]);
    expect(rules('WITH d AS (DELETE FROM ext_storage_records WHERE key = $2 RETURNING key) SELECT * FROM d')).toEqual(['tenant-filter']);
  });

  it('an UPDATE or DELETE without a tenant filter, or one that changes tenant_id', () => {
    expect(rules('UPDATE ext_storage_namespaces SET key_count = 0 WHERE install_id = $1')).toEqual(['tenant-filter']);
    expect(rules('DELETE FROM ext_storage_records WHERE install_id = $1')).toEqual(['tenant-filter']);
    expect(rules('UPDATE ext_storage_records SET tenant_id = $2 WHERE tenant_id = $1')).toEqual(['tenant-update']);
  });

  it('volatile functions in ON CONFLICT DO UPDATE SET or RETURNING', () => {
    const upsert = `INSERT INTO ext_storage_records (tenant_id, install_id, namespace, key, updated_at) VALUES ($1, $2, $3, $4, now())
                    ON CONFLICT (tenant_id, install_id, namespace, key) DO UPDATE SET updated_at = now()`;
    expect(rules(upsert)).toEqual(['volatile']);
    expect(rules(upsert.replace('updated_at = now()', 'updated_at = CURRENT_TIMESTAMP'))).toEqual(['volatile']);
    expect(rules(upsert.replace('updated_at = now()', 'updated_at = EXCLUDED.updated_at'))).toEqual([]);
    expect(rules('DELETE FROM ext_storage_records WHERE tenant_id = $1 RETURNING clock_timestamp()')).toEqual(['volatile']);
  });

  it('inserts whose rows do not all carry the same tenant parameter', () => {
    expect(rules('INSERT INTO ext_storage_audit (tenant_id, install_id) VALUES ($1, $2), ($3, $2)')).toEqual(['tenant-filter']);
    expect(rules('INSERT INTO ext_storage_audit (install_id) VALUES ($1)')).toEqual(['tenant-filter']);
    expect(rules('INSERT INTO ext_storage_audit (tenant_id, install_id) VALUES ($1, $2), ($1, $3)')).toEqual([]);
  });

  it('unique keys and conflict targets without tenant_id', () => {
    expect(rules('CREATE TABLE ext_storage_schemas (tenant_id uuid, id int PRIMARY KEY)')).toEqual(['unique-key']);
    expect(rules('CREATE UNIQUE INDEX x ON ext_storage_records (install_id, key)')).toEqual(['unique-key']);
    expect(rules(`INSERT INTO ext_storage_namespaces (tenant_id, install_id) VALUES ($1, $2)
                  ON CONFLICT (install_id, namespace) DO NOTHING`)).toEqual(['unique-key']);
  });

  it('waives only the tenant filter for a statement marked as a deliberate fan-out (a migration backfill)', () => {
    const backfill = `UPDATE ext_storage_install_locks l SET bytes = s.bytes
      FROM (SELECT tenant_id, install_id, sum(bytes) AS bytes FROM ext_storage_namespaces GROUP BY 1, 2) s
     WHERE s.tenant_id = l.tenant_id AND s.install_id = l.install_id`;
    expect(rules(backfill)).toContain('tenant-filter');
    expect(rules(`${FAN_OUT_MARK} ${backfill}`)).toEqual([]);
    expect(rules(`${FAN_OUT_MARK} UPDATE ext_storage_records SET tenant_id = $1 WHERE key = $2`)).toEqual(['tenant-update']);
  });

  it('leaves global (reference) tables alone', () => {
    expect(rules('SELECT * FROM ext_storage_installs WHERE id = $1')).toEqual([]);
  });
});

/**
 * The one-statement write of src/storage/records.ts (writeStatement, WRITE_CHECKING_SCHEMA) that made
 * every write fail on Citus while passing on PostgreSQL and PGlite: a CASE around now() + interval
 * in an UPDATE's SET (rule 14) and INSERTs in data-modifying CTEs (rule 17). Kept verbatim.
 */
const ONE_STATEMENT_WRITE = `
    WITH input AS (
      SELECT x.* FROM jsonb_to_recordset($4::jsonb)
        AS x(key text, value jsonb, metadata jsonb, value_bytes int, metadata_bytes int, ttl_seconds int, if_revision int)
    ), prev AS (
      SELECT key, revision, (value_bytes + metadata_bytes)::bigint AS bytes, (ttl_expires_at IS NOT NULL AND ttl_expires_at <= now()) AS expired
        FROM ext_storage_records
       WHERE tenant_id = $1::uuid AND install_id = $2::uuid AND namespace = $3
         AND key = ANY(ARRAY(SELECT jsonb_array_elements_text($5::jsonb)))
    ), plan AS (
      SELECT input.*, prev.revision AS prev_revision, prev.bytes AS prev_bytes, coalesce(prev.revision, 0) + 1 AS revision,
             (input.value_bytes + input.metadata_bytes - coalesce(prev.bytes, 0))::bigint AS bytes_delta,
             (input.if_revision IS NULL OR input.if_revision = coalesce(prev.revision, 0)) AND NOT coalesce(prev.expired, false) AS ok
        FROM input LEFT JOIN prev ON prev.key = input.key
    ), totals AS (
      SELECT coalesce(sum(bytes_delta), 0)::bigint AS bytes_delta, (count(*) FILTER (WHERE prev_revision IS NULL))::int AS keys_delta,
             coalesce(bool_and(ok), false) AS ok
        FROM plan
    ), install_row AS (
      UPDATE ext_storage_install_locks l SET bytes = l.bytes + totals.bytes_delta
        FROM totals
       WHERE l.tenant_id = $1::uuid AND l.install_id = $2::uuid AND totals.ok
         AND l.seq = (SELECT seq FROM ext_storage_install_locks WHERE tenant_id = $1::uuid AND install_id = $2::uuid)
         AND (totals.bytes_delta <= 0 OR l.bytes + totals.bytes_delta <= $7::bigint)
         AND NOT EXISTS (SELECT 1 FROM ext_storage_records
                          WHERE tenant_id = $1::uuid AND install_id = $2::uuid AND ttl_expires_at <= now())
         AND EXISTS (SELECT 1 FROM ext_storage_namespaces
                      WHERE tenant_id = $1::uuid AND install_id = $2::uuid AND namespace = $3 AND key_count > 0)
         AND (SELECT max(version) FROM ext_storage_schemas
                  WHERE tenant_id = $1::uuid AND install_id = $2::uuid AND namespace = $3) IS NOT DISTINCT FROM $13::int
      RETURNING l.bytes, totals.bytes_delta, totals.keys_delta
    ), namespace_row AS (
      UPDATE ext_storage_namespaces n SET key_count = n.key_count + d.keys_delta, bytes = n.bytes + d.bytes_delta
        FROM install_row d
       WHERE n.tenant_id = $1::uuid AND n.install_id = $2::uuid AND n.namespace = $3 AND n.key_count > 0
         AND (d.keys_delta = 0 OR n.key_count + d.keys_delta <= $8::int)
      RETURNING n.key_count
    ), go AS (
      SELECT plan.* FROM plan WHERE EXISTS (SELECT 1 FROM namespace_row)
    ), inserted AS (
      INSERT INTO ext_storage_records AS r
        (tenant_id, install_id, namespace, key, value, metadata, value_bytes, metadata_bytes, revision,
         schema_version, ttl_expires_at, created_at, updated_at)
      SELECT $1::uuid, $2::uuid, $3, go.key, go.value, go.metadata, go.value_bytes, go.metadata_bytes, go.revision,
             $6::int, CASE WHEN go.ttl_seconds IS NULL THEN NULL ELSE now() + make_interval(secs => go.ttl_seconds) END,
             now(), now()
        FROM go WHERE go.prev_revision IS NULL
      ON CONFLICT (tenant_id, install_id, namespace, key) DO NOTHING
      RETURNING r.namespace, r.key, r.value, r.metadata, r.revision, r.schema_version, r.ttl_expires_at, r.created_at, r.updated_at
    ), updated AS (
      UPDATE ext_storage_records r SET
        value = go.value, metadata = go.metadata, value_bytes = go.value_bytes, metadata_bytes = go.metadata_bytes,
        revision = go.revision, schema_version = $6::int,
        ttl_expires_at = CASE WHEN go.ttl_seconds IS NULL THEN NULL ELSE now() + make_interval(secs => go.ttl_seconds) END,
        updated_at = now()
        FROM go
       WHERE r.tenant_id = $1::uuid AND r.install_id = $2::uuid AND r.namespace = $3 AND r.key = go.key
         AND go.prev_revision IS NOT NULL AND r.revision = go.prev_revision
         AND r.value_bytes + r.metadata_bytes = go.prev_bytes AND (r.ttl_expires_at IS NULL OR r.ttl_expires_at > now())
      RETURNING r.namespace, r.key, r.value, r.metadata, r.revision, r.schema_version, r.ttl_expires_at, r.created_at, r.updated_at
    ), written AS (
      SELECT * FROM inserted UNION ALL SELECT * FROM updated
    ), audited AS (
      INSERT INTO ext_storage_audit
        (tenant_id, install_id, namespace, key, operation, revision, bytes_delta, actor, request_id, at)
      SELECT $1::uuid, $2::uuid, $3, go.key, $9, go.revision, go.bytes_delta, $10, $11, now()
        FROM go JOIN written ON written.key = go.key
    ), checked AS (
      SELECT CAST(CASE WHEN NOT EXISTS (SELECT 1 FROM install_row) THEN '0'
                       WHEN count(*) = $12::int THEN '1'
                       ELSE count(*)::text || ' rows of ' || $12::int || ': optimistic write lost its race' END AS int) AS ok
        FROM written
    )
    SELECT written.*, checked.ok,
           (SELECT bytes FROM install_row) AS install_bytes, (SELECT bytes_delta FROM install_row) AS bytes_delta,
           (SELECT keys_delta FROM install_row) AS keys_delta, (SELECT key_count FROM namespace_row) AS namespace_keys
      FROM checked LEFT JOIN written ON true`;

describe('rule 14: no non-IMMUTABLE call inside CASE or COALESCE in a modification', () => {
  it('in an UPDATE SET value, with or without a column in it', () => {
    const sql = `UPDATE ext_storage_records SET ttl_expires_at = CASE WHEN $2::int IS NULL THEN NULL ELSE now() + make_interval(secs => $2::int) END
                  WHERE tenant_id = $1 AND key = $3`;
    expect(rules(sql)).toEqual(['case-non-immutable']);
    expect(details(sql)[0]).toMatch(/SET ttl_expires_at: CASE around timestamptz \+ interval, now\(\)/);
    expect(rules('UPDATE ext_storage_namespaces SET bytes = coalesce($2::bigint, 0) + extract(epoch FROM now())::bigint WHERE tenant_id = $1')).toEqual([]);
    expect(rules('UPDATE ext_storage_namespaces SET bytes = coalesce(bytes, extract(epoch FROM now())::bigint) WHERE tenant_id = $1')).toEqual([
      'case-non-immutable',
    ]);
  });

  it('in the WHERE of an UPDATE, a DELETE and an INSERT … ON CONFLICT, and in a data-modifying CTE', () => {
    expect(rules('DELETE FROM ext_storage_records WHERE tenant_id = $1 AND coalesce(ttl_expires_at, now()) < $2')).toEqual(['case-non-immutable']);
    // A text → timestamptz cast runs timestamptz_in, which is STABLE (it reads the TimeZone setting).
    expect(rules(`UPDATE ext_storage_records SET revision = revision + 1
                   WHERE tenant_id = $1 AND CASE WHEN $2::bool THEN ttl_expires_at < $3::text::timestamptz ELSE true END`)).toEqual(['case-non-immutable']);
    const upsert = `INSERT INTO ext_storage_namespaces AS n (tenant_id, install_id, namespace, key_count, bytes) VALUES ($1, $2, $3, 1, $4)
                    ON CONFLICT (tenant_id, install_id, namespace) DO UPDATE SET key_count = n.key_count + 1
                    WHERE coalesce(n.bytes, extract(epoch FROM now())::bigint) > 0`;
    expect(rules(upsert)).toEqual(['case-non-immutable']);
    expect(rules(`WITH u AS (UPDATE ext_storage_records SET updated_at = CASE WHEN $2::bool THEN now() ELSE updated_at END
                                WHERE tenant_id = $1 RETURNING key) SELECT count(*) FROM u`)).toEqual(['case-non-immutable']);
  });

  it('but not around IMMUTABLE calls, nor outside modifications', () => {
    expect(rules(`UPDATE ext_storage_records SET ttl_expires_at = CASE WHEN $2::int IS NULL THEN NULL ELSE $3::timestamptz END,
                    revision = coalesce(revision, 0) + 1 WHERE tenant_id = $1`)).toEqual([]);
    expect(rules(`DELETE FROM ext_storage_records WHERE tenant_id = $1 AND CASE WHEN $2::bool THEN ttl_expires_at <= $3::timestamptz END`)).toEqual([]);
    expect(rules(`SELECT CASE WHEN ttl_expires_at IS NULL THEN NULL ELSE now() + interval '1 day' END
                    FROM ext_storage_records WHERE tenant_id = $1 AND coalesce(ttl_expires_at, now()) > now()`)).toEqual([]);
    expect(rules(`UPDATE ext_storage_installs SET updated_at = CASE WHEN $2::bool THEN now() ELSE updated_at END WHERE id = $1`)).toEqual([]);
  });
});

describe('rule 15: no STABLE function or operator over a column in a modification', () => {
  it('in an UPDATE SET value (timestamptz + interval is STABLE)', () => {
    const sql = 'UPDATE ext_storage_records SET ttl_expires_at = updated_at + make_interval(secs => revision) WHERE tenant_id = $1';
    expect(rules(sql)).toEqual(['stable-column']);
    expect(details(sql)[0]).toMatch(/SET ttl_expires_at: STABLE timestamptz \+ interval called with a column reference/);
  });

  it('in a WHERE, including operators whose overload for these types is STABLE', () => {
    expect(rules("DELETE FROM ext_storage_records WHERE tenant_id = $1 AND updated_at + interval '1 day' < $2::timestamptz")).toEqual(['stable-column']);
    expect(rules('UPDATE ext_storage_records SET revision = 0 WHERE tenant_id = $1 AND ttl_expires_at <= $2::date')).toEqual(['stable-column']);
    expect(rules(`UPDATE ext_storage_records SET revision = 0 WHERE tenant_id = $1 AND to_char(updated_at, 'YYYY') = $2`)).toEqual(['stable-column']);
  });

  it('but IMMUTABLE operators over columns and STABLE calls over parameters are fine', () => {
    expect(rules('UPDATE ext_storage_namespaces SET key_count = key_count + 1, bytes = bytes + $2 WHERE tenant_id = $1')).toEqual([]);
    expect(rules('DELETE FROM ext_storage_records WHERE tenant_id = $1 AND ttl_expires_at <= $5::timestamptz')).toEqual([]);
    // An untyped parameter takes the column's type: timestamptz <= timestamptz.
    expect(rules('DELETE FROM ext_storage_records WHERE tenant_id = $1 AND ttl_expires_at <= $2')).toEqual([]);
    expect(rules('DELETE FROM ext_storage_records WHERE tenant_id = $1 AND ttl_expires_at <= now()')).toEqual([]);
    expect(rules(`UPDATE ext_storage_records SET ttl_expires_at = $2::timestamptz + make_interval(secs => $3::int), updated_at = now()
                   WHERE tenant_id = $1 AND (ttl_expires_at IS NULL OR ttl_expires_at > now() - interval '1 minute')`)).toEqual([]);
  });
});

describe('rule 16: no VOLATILE function in a modification', () => {
  it('in a WHERE (or a subquery of it)', () => {
    expect(rules('DELETE FROM ext_storage_records WHERE tenant_id = $1 AND random() < 0.5')).toEqual(['volatile-where']);
    expect(rules('UPDATE ext_storage_records SET revision = 0 WHERE tenant_id = $1 AND ttl_expires_at < clock_timestamp()')).toEqual(['volatile-where']);
    expect(rules(`DELETE FROM ext_storage_audit WHERE tenant_id = $1
                    AND id IN (SELECT id FROM ext_storage_audit WHERE tenant_id = $1 AND key = gen_random_uuid()::text)`)).toEqual(['volatile-where']);
    expect(rules("DELETE FROM ext_storage_audit WHERE tenant_id = $1 AND id = nextval('ext_storage_audit_id_seq')")).toEqual(['volatile-where']);
  });

  it('in an UPDATE SET value (Citus: "functions used in UPDATE queries … must not be VOLATILE")', () => {
    expect(rules('UPDATE ext_storage_records SET key = gen_random_uuid()::text WHERE tenant_id = $1')).toEqual(['volatile']);
  });

  it('but not in reads, nor in VALUES', () => {
    expect(rules('SELECT key FROM ext_storage_records WHERE tenant_id = $1 AND random() < 0.1')).toEqual([]);
    expect(rules('INSERT INTO ext_storage_audit (tenant_id, install_id, actor, at) VALUES ($1, $2, gen_random_uuid()::text, clock_timestamp())')).toEqual([]);
  });
});

describe('rule 17: no INSERT into a distributed table in a data-modifying CTE', () => {
  it('flags each such CTE, nested ones included', () => {
    expect(rules(`WITH i AS (INSERT INTO ext_storage_audit (tenant_id, install_id) VALUES ($1, $2) RETURNING id) SELECT id FROM i`)).toEqual(['insert-cte']);
    expect(rules(`WITH u AS (UPDATE ext_storage_namespaces SET key_count = key_count + 1 WHERE tenant_id = $1 RETURNING namespace),
                       a AS (INSERT INTO ext_storage_audit (tenant_id, namespace) SELECT $1, namespace FROM u RETURNING id)
                  UPDATE ext_storage_install_locks SET tenant_id = tenant_id WHERE tenant_id = $1 AND EXISTS (SELECT 1 FROM a)`)).toEqual([
      'insert-cte',
      'tenant-update',
    ]);
  });

  it('but not CTEs that only read, update or delete, nor INSERTs into global tables', () => {
    expect(rules(`WITH d AS (DELETE FROM ext_storage_records WHERE tenant_id = $1 AND key = $2 RETURNING namespace),
                       u AS (UPDATE ext_storage_namespaces n SET key_count = n.key_count - 1
                               FROM d WHERE n.tenant_id = $1 AND n.namespace = d.namespace RETURNING n.key_count)
                  SELECT * FROM u`)).toEqual([]);
    expect(rules(`WITH s AS (SELECT $1::uuid AS tenant_id) INSERT INTO ext_storage_audit (tenant_id, install_id) SELECT $1, $2 FROM s`)).toEqual([]);
    expect(rules(`WITH i AS (INSERT INTO ext_storage_installs (id, tenant_id) VALUES ($1, $2) RETURNING id) SELECT * FROM i`)).toEqual([]);
  });
});

describe('the statement that broke every write on Citus', () => {
  it('reports the CASE around now() + interval in UPDATE SET (rule 14) and its two INSERT CTEs (rule 17)', () => {
    const found = checkSql(ONE_STATEMENT_WRITE);
    expect(found.map((v) => v.rule)).toEqual(expect.arrayContaining(['case-non-immutable', 'insert-cte', 'insert-cte']));
    expect(found.find((v) => v.rule === 'case-non-immutable')?.detail).toMatch(
      /^UPDATE ext_storage_records SET ttl_expires_at: CASE around timestamptz \+ interval, now\(\)/,
    );
    expect(found.filter((v) => v.rule === 'insert-cte').map((v) => v.detail)).toEqual([
      expect.stringContaining('ext_storage_records in data-modifying CTE "inserted"'),
      expect.stringContaining('ext_storage_audit in data-modifying CTE "audited"'),
    ]);
    expect(found.map((v) => v.rule)).not.toContain('tenant-filter');
  });
});

/** A PL/pgSQL write function in the shape of the migrations' (variables and parameters are bound values). */
function plpgsql(body: string, declare = ''): string {
  return `CREATE OR REPLACE FUNCTION guard_probe(p_tenant_id uuid, p_install_id uuid, p_ttl int) RETURNS int
  LANGUAGE plpgsql AS $fn$
DECLARE
  v_now timestamptz := now();
  v_count int;
  v_row record;
  ${declare}
BEGIN
  ${body}
  RETURN v_count;
END
$fn$`;
}

describe('PL/pgSQL function bodies are checked statement by statement', () => {
  it('parameters and variables are bound values: they pin the tenant and are no column references', () => {
    expect(rules(plpgsql(`
      PERFORM 1 FROM ext_storage_install_locks WHERE tenant_id = p_tenant_id AND install_id = guard_probe.p_install_id FOR UPDATE;
      SELECT count(*) INTO v_count FROM ext_storage_records WHERE tenant_id = p_tenant_id AND ttl_expires_at <= v_now;
      DELETE FROM ext_storage_records WHERE tenant_id = p_tenant_id AND install_id = p_install_id AND ttl_expires_at <= v_now;
      UPDATE ext_storage_records SET ttl_expires_at = v_now + make_interval(secs => p_ttl), updated_at = v_now
       WHERE tenant_id = p_tenant_id AND key = 'k';
      INSERT INTO ext_storage_audit (tenant_id, install_id, at) VALUES (p_tenant_id, p_install_id, v_now);
      FOR v_row IN SELECT namespace, key_count FROM ext_storage_namespaces WHERE tenant_id = p_tenant_id LOOP
        DELETE FROM ext_storage_namespaces WHERE tenant_id = p_tenant_id AND namespace = v_row.namespace AND key_count = v_row.key_count;
      END LOOP;
      IF v_count > (SELECT count(*) FROM ext_storage_schemas WHERE tenant_id = p_tenant_id) THEN v_count := 0; END IF;`))).toEqual([]);
  });

  it('reports each rule in the statement it is broken in, with the function and line', () => {
    const sql = plpgsql(`
      UPDATE ext_storage_records SET ttl_expires_at = updated_at + make_interval(secs => p_ttl) WHERE tenant_id = p_tenant_id;
      UPDATE ext_storage_records SET ttl_expires_at = CASE WHEN p_ttl IS NULL THEN NULL ELSE v_now + make_interval(secs => p_ttl) END
       WHERE tenant_id = p_tenant_id;
      DELETE FROM ext_storage_records WHERE tenant_id = p_tenant_id AND ttl_expires_at <= clock_timestamp();
      v_count := (SELECT count(*) FROM ext_storage_records WHERE install_id = p_install_id);
      WITH a AS (INSERT INTO ext_storage_audit (tenant_id, install_id) VALUES (p_tenant_id, p_install_id) RETURNING id)
      SELECT count(*) INTO v_count FROM a;`);
    expect(rules(sql)).toEqual(['stable-column', 'case-non-immutable', 'volatile-where', 'tenant-filter', 'insert-cte']);
    expect(checkSql(sql)[0]).toMatchObject({
      detail: expect.stringMatching(/^in guard_probe\(\) line 9: UPDATE ext_storage_records SET ttl_expires_at: STABLE/),
      sql: expect.stringMatching(/^UPDATE ext_storage_records SET ttl_expires_at = updated_at/),
    });
  });

  it('a name is a variable unless a relation in scope has that column', () => {
    const update = (set: string, declare = '') =>
      rules(plpgsql(`UPDATE ext_storage_records r SET ttl_expires_at = ${set} WHERE tenant_id = p_tenant_id;`, declare));
    expect(update(`v_now + interval '1 minute'`)).toEqual([]);
    expect(update(`updated_at + interval '1 minute'`)).toEqual(['stable-column']);
    expect(update(`r.updated_at + interval '1 minute'`)).toEqual(['stable-column']);
    // Both at once is an error in PostgreSQL (#variable_conflict error); the guard takes the column, the stricter reading.
    expect(update(`updated_at + interval '1 minute'`, 'updated_at timestamptz;')).toEqual(['stable-column']);
  });

  it('LANGUAGE sql bodies too (their parameters are bound values)', () => {
    const fn = (where: string) => `CREATE FUNCTION guard_sql(p_tenant_id uuid) RETURNS bigint LANGUAGE sql STABLE
      AS $$ SELECT count(*) FROM ext_storage_records WHERE ${where} $$`;
    expect(rules(fn('tenant_id = p_tenant_id'))).toEqual([]);
    expect(rules(fn('install_id = p_tenant_id'))).toEqual(['tenant-filter']);
  });
});

describe('volatility comes from the database catalogue', () => {
  it('RETURNING and DO UPDATE SET must be IMMUTABLE: timestamptz output and timestamptz + interval are not', () => {
    expect(rules('UPDATE ext_storage_records SET updated_at = now() WHERE tenant_id = $1 RETURNING updated_at::text')).toEqual(['volatile']);
    expect(rules('UPDATE ext_storage_records SET updated_at = now() WHERE tenant_id = $1 RETURNING updated_at, revision + 1, value::text')).toEqual([]);
    expect(rules(`INSERT INTO ext_storage_records AS r (tenant_id, install_id, namespace, key, updated_at) VALUES ($1, $2, $3, $4, $5)
                  ON CONFLICT (tenant_id, install_id, namespace, key) DO UPDATE SET ttl_expires_at = EXCLUDED.updated_at + interval '1 day'`)).toEqual([
      'volatile',
    ]);
  });

  it("a project function counts with the volatility it was created with", async () => {
    const { openTestDatabase } = await import('../support/db.js');
    const { CompiledQuery } = await import('kysely');
    const t = await openTestDatabase();
    const run = (text: string) => t.handle.db.executeQuery(CompiledQuery.raw(text));
    const sql = 'UPDATE ext_storage_records SET revision = guard_bump(revision) WHERE tenant_id = $1';
    try {
      await run('CREATE FUNCTION guard_bump(n int) RETURNS int LANGUAGE sql STABLE AS $$ SELECT n + 1 $$');
      await loadVolatility(run);
      expect(rules(sql)).toEqual(['stable-column']);
      await run('CREATE OR REPLACE FUNCTION guard_bump(n int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT n + 1 $$');
      await loadVolatility(run);
      expect(rules(sql)).toEqual([]);
    } finally {
      await t.dispose();
    }
  });
});

describe('the guard watches every statement the test suite sends', () => {
  it('a test database that saw a violating statement fails on dispose', async () => {
    const { openTestDatabase } = await import('../support/db.js');
    const { sql } = await import('kysely');
    const t = await openTestDatabase();
    // On a real Citus cluster the statement also fails outright (it fans out); the guard reports it either way.
    await sql`SELECT count(*) FROM ext_storage_records WHERE install_id = ${'00000000-0000-0000-0000-000000000000'}::uuid`
      .execute(t.handle.db)
      .catch(() => undefined);
    await expect(t.dispose()).rejects.toThrow(/Citus guard: 1 statement/);
  });

  it('the storage core itself sends only clean statements (checked for every test file on dispose)', async () => {
    const { openTestDatabase } = await import('../support/db.js');
    const { Storage } = await import('../../src/storage/storage.js');
    const { loadConfig } = await import('../../src/config.js');
    const t = await openTestDatabase();
    const storage = new Storage(t.handle.db, loadConfig({ NODE_ENV: 'test' }));
    const tenantId = '6f1c2a52-0d5e-4a53-9d8e-3b1b2b7c0a11';
    const caller = { principal: { kind: 'admin' as const, tenantId, actor: 'guard' }, requestId: null };
    const install = await storage.upsertInstall(caller, { id: 'a3f1d7c0-6b9e-4a3c-8d41-2f3e5a6b7c8d', extensionId: 'x', enabled: true, canRead: true, canWrite: true });
    await storage.setNamespaceSchema(caller, { installId: install.id, namespace: 'ns', schema: { type: 'object' } });
    await storage.putRecord(caller, { installId: install.id, namespace: 'ns', key: 'a', value: {}, ttlSeconds: 60 });
    await storage.bulkPutRecords(caller, { installId: install.id, namespace: 'ns', items: [{ key: 'b', value: {} }, { key: 'c', value: {} }] });
    await storage.deleteRecord(caller, { installId: install.id, namespace: 'ns', key: 'b' });
    const scope = await storage.resolveInstall(caller, install.id, 'read');
    await storage.listRecords(scope, 'ns', { first: 10, prefix: 'a' });
    await storage.usage(caller, scope);
    await storage.auditLog(caller, scope, 10, null);
    await storage.listInstalls(caller, 10, null);
    await expect(t.dispose()).resolves.toBeUndefined();
  });
});
