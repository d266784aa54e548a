import { sql, type Kysely } from 'kysely';
import { hasCitus } from '../src/db/citus.js';
import {
  EXPIRY_BUCKET_FUNCTION as EXPIRY_BUCKET_FUNCTION_005,
  LIVE_USAGE_FUNCTION as LIVE_USAGE_FUNCTION_005,
  WRITE_FUNCTION as WRITE_FUNCTION_005,
} from './005_write_function.js';
import { BATCH_FUNCTION as BATCH_FUNCTION_006 } from './006_write_batch.js';

/**
 * ext_storage_write_v1 again (issue 12: a write's cost in PostgreSQL), with the same request, the
 * same answers and the same invariants I1–I4 as migration 005. What changes is how it applies:
 *
 * - **Set-based.** The checks and the inserts are one statement for the whole call, not one to
 *   three statements per item: one read of the targets, one upsert of every put, one audit insert,
 *   one counter upsert and one expiry upsert. A bulk of 100 puts runs about the same statements as
 *   a single put.
 * - **Every statement has one plan whatever the data and its statistics.** Rows are found by their
 *   full primary key: the targets by a LATERAL lookup per item, and the rows a call removes (the
 *   sweep, deleted items, old audit events) by first collecting a bounded list of keys or ids, then
 *   deleting each by its key. Never a list joined to a table, or `key = ANY(…)` over a prefix: with
 *   a generic plan the planner may run those as a scan of every record of the install (migration
 *   007 of the last stop, taken back: 34× slower puts behind an expired backlog; and this one's first
 *   draft, 22 ms per put once an install held 10,000 records).
 * - **Generic plans on PostgreSQL and PGlite** (`plan_cache_mode = force_generic_plan` on the
 *   function): each statement is planned once per connection instead of on every call, which was
 *   most of a put's time in PostgreSQL. Not on Citus: it cannot build a distributed plan for the
 *   generic form of these statements, and there the function runs on the worker anyway.
 *
 * Namespaces cannot contain '/' (src/storage/limits.ts), so `namespace || '/' || key` (the key of
 * `v_targets`) names one record exactly.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql.raw(EXPIRY_BUCKET_FUNCTION).execute(db);
  await sql.raw(LIVE_USAGE_FUNCTION).execute(db);
  await sql.raw(WRITE_FUNCTION()).execute(db);
  await sql.raw(BATCH_FUNCTION).execute(db);
  if (!(await hasCitus(db))) {
    await sql.raw(`ALTER FUNCTION ${ENTRY_POINT} SET plan_cache_mode = force_generic_plan`).execute(db);
  }
}

/**
 * Back to the functions of migrations 005 and 006, without the forced generic plans (CREATE OR
 * REPLACE keeps Citus's distribution of each).
 */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql.raw(BATCH_FUNCTION_006.replace(/^CREATE FUNCTION/, 'CREATE OR REPLACE FUNCTION')).execute(db);
  await sql.raw(LIVE_USAGE_FUNCTION_005.replace(/^CREATE FUNCTION/, 'CREATE OR REPLACE FUNCTION')).execute(db);
  await sql.raw(EXPIRY_BUCKET_FUNCTION_005.replace(/^CREATE FUNCTION/, 'CREATE OR REPLACE FUNCTION')).execute(db);
  await sql.raw(WRITE_FUNCTION_005().replace(/^CREATE FUNCTION/, 'CREATE OR REPLACE FUNCTION')).execute(db);
  await sql.raw(`ALTER FUNCTION ${ENTRY_POINT} RESET plan_cache_mode`).execute(db);
}

const ENTRY_POINT = 'ext_storage_write_v1(uuid, uuid, jsonb)';

/**
 * A batch of combined writes (migration 006) sweeps like one write: the first request sweeps up to
 * its `sweep` expired records, the others only their own expired targets. Each write still pays for
 * at most one sweep, and a busy install's batch no longer removes 10 records per request in it
 * (which made puts behind an expired backlog twice as slow as without one: bench ttl-backlog).
 */
export const BATCH_FUNCTION = `CREATE OR REPLACE FUNCTION ext_storage_write_batch_v1(p_tenant_id uuid, p_install_id uuid, p_requests jsonb) RETURNS jsonb
  LANGUAGE plpgsql AS $fn$
DECLARE
  v_answers jsonb := '[]';
  v_request jsonb;
  v_n bigint;
BEGIN
  FOR v_request, v_n IN SELECT r.value, r.n FROM jsonb_array_elements(p_requests) WITH ORDINALITY AS r(value, n) ORDER BY r.n LOOP
    IF v_n > 1 THEN v_request := jsonb_set(v_request, '{sweep}', '0'); END IF;
    v_answers := v_answers || jsonb_build_array(ext_storage_write_v1(p_tenant_id, p_install_id, v_request));
  END LOOP;
  RETURN v_answers;
END
$fn$`;

/**
 * The expiry bucket (migration 005's rule, the same results): date_bin from the epoch instead of
 * epoch arithmetic. Every function in it is IMMUTABLE (extract() on timestamptz is only STABLE), so
 * PostgreSQL inlines it instead of running a SQL function per row: the write function's counter
 * moves call it twice per changed record.
 */
const EXPIRY_BUCKET_FUNCTION = `CREATE OR REPLACE FUNCTION ext_storage_expiry_bucket(expires_at timestamptz, width smallint) RETURNS timestamptz
     LANGUAGE sql IMMUTABLE PARALLEL SAFE
     AS $$ SELECT date_bin(make_interval(secs => $2), $1, to_timestamp(0)) $$`;

/**
 * Live usage (migration 005's rule, unchanged): stored counters - records of whole past expiry
 * minutes - records of the whole past seconds of this minute - expired records of this second.
 * What changes is how it runs:
 * - the expired records of this second are read in TTL order, an order only the TTL index gives.
 *   Before, when the planner's estimates of the install's two index ranges tied (no statistics
 *   yet, or an install far above the average size), it could pick the primary key and read every
 *   record of the install on every write and usage read;
 * - the bucket bounds are computed once per call, and each part is computed once (MATERIALIZED):
 *   before, the past buckets were summed again for each namespace, calling the bucket function
 *   three times per bucket row (it is not inlined: extract() on timestamptz is only STABLE). An
 *   install with an expired backlog paid 2 ms per write for it.
 */
const LIVE_USAGE_FUNCTION = `CREATE OR REPLACE FUNCTION ext_storage_live_usage(p_tenant_id uuid, p_install_id uuid, p_at timestamptz)
     RETURNS TABLE (namespace text, keys bigint, bytes bigint)
     LANGUAGE plpgsql STABLE
     AS $$
     DECLARE
       v_minute timestamptz := ext_storage_expiry_bucket(p_at, 60::smallint);
       v_second timestamptz := ext_storage_expiry_bucket(p_at, 1::smallint);
     BEGIN
       RETURN QUERY
       WITH m AS MATERIALIZED (
         SELECT e.namespace, sum(e.keys) AS keys, sum(e.bytes) AS bytes
           FROM ext_storage_expiries e
          WHERE e.tenant_id = p_tenant_id AND e.install_id = p_install_id
            AND ((e.width = 60 AND e.bucket < v_minute) OR (e.width = 1 AND e.bucket >= v_minute AND e.bucket < v_second))
          GROUP BY e.namespace
       ), c AS MATERIALIZED (
         SELECT x.namespace, count(*) AS keys, sum(x.bytes) AS bytes
           FROM (SELECT r.namespace, r.value_bytes + r.metadata_bytes AS bytes
                   FROM ext_storage_records r
                  WHERE r.tenant_id = p_tenant_id AND r.install_id = p_install_id
                    AND r.ttl_expires_at >= v_second AND r.ttl_expires_at <= p_at
                  ORDER BY r.ttl_expires_at) x
          GROUP BY x.namespace
       )
       SELECT n.namespace::text,
              (n.key_count - coalesce(m.keys, 0) - coalesce(c.keys, 0))::bigint,
              (n.bytes - coalesce(m.bytes, 0) - coalesce(c.bytes, 0))::bigint
         FROM ext_storage_namespaces n
         LEFT JOIN m ON m.namespace = n.namespace
         LEFT JOIN c ON c.namespace = n.namespace
        WHERE n.tenant_id = p_tenant_id AND n.install_id = p_install_id;
     END
     $$`;

/** The live target of an item (jsonb, null when absent or expired): `TARGET('e.op')`. */
const TARGET = (op: string) => `v_targets->((${op}->>'namespace') || '/' || (${op}->>'key'))`;
/** The stored bytes an item's value and metadata take. */
const NEW_BYTES = (op: string) => `((${op}->>'valueBytes')::bigint + (${op}->>'metadataBytes')::bigint)`;
/** When an item's put expires: null without ttlSeconds (make_interval is strict). */
const EXPIRES = (op: string) => `(v_now + make_interval(secs => (${op}->>'ttlSeconds')::int))`;
/**
 * The stored record an item names, as a LATERAL subquery on the full primary key and nothing else
 * (so no other index can look as cheap to the planner). The LIMIT keeps it a subquery run once per
 * item, never turned into a join the planner could run as a scan of the install's records.
 */
const RECORD_OF = (op: string) =>
  `SELECT r.* FROM ext_storage_records r
    WHERE r.tenant_id = p_tenant_id AND r.install_id = p_install_id AND r.namespace = ${op}->>'namespace' AND r.key = ${op}->>'key'
    LIMIT 1`;
/** The revision a put gives its record. */
const NEXT_REVISION = (op: string) => `(coalesce((${TARGET(op)}->>'revision')::int, 0) + 1)`;

/**
 * The request and the answer are migration 005's (see its comment). `v_targets` holds only the
 * live targets, so an expired record is absent everywhere, as the contract says.
 */
export function WRITE_FUNCTION(): string {
  return `CREATE OR REPLACE FUNCTION ext_storage_write_v1(p_tenant_id uuid, p_install_id uuid, p_request jsonb) RETURNS jsonb
  LANGUAGE plpgsql AS $fn$
DECLARE
  v_ops jsonb := p_request->'ops';
  v_count int := jsonb_array_length(p_request->'ops');
  v_quota jsonb := p_request->'quota';
  v_now timestamptz;
  v_targets jsonb;
  v_fail record;
  v_schema jsonb;
  v_active int;
  v_usage jsonb;
  v_live_before int := 0;
  v_live_after int := 0;
  v_bytes_before bigint := 0;
  v_bytes_delta bigint := 0;
  v_keys_delta jsonb;
  v_first_new jsonb;
  v_running bigint;
  v_ns text;
  v_op jsonb;
  v_index int;
  v_list_ns text[];
  v_list_keys text[];
  v_row record;
  v_gone jsonb := '[]';
  v_ns_moves jsonb;
  v_bucket_moves jsonb;
  v_buckets timestamptz[];
BEGIN
  -- I1: the install's lock row first (created on first use).
  PERFORM 1 FROM ext_storage_install_locks WHERE tenant_id = p_tenant_id AND install_id = p_install_id FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO ext_storage_install_locks (tenant_id, install_id) VALUES (p_tenant_id, p_install_id)
      ON CONFLICT (tenant_id, install_id) DO NOTHING;
    PERFORM 1 FROM ext_storage_install_locks WHERE tenant_id = p_tenant_id AND install_id = p_install_id FOR UPDATE;
  END IF;
  -- I2: one instant, after the lock.
  v_now := clock_timestamp();

  -- The live targets, each found by its primary key.
  SELECT coalesce(jsonb_object_agg(t.namespace || '/' || t.key, jsonb_build_object(
           'revision', t.revision, 'bytes', t.value_bytes + t.metadata_bytes, 'expiresAt', t.ttl_expires_at,
           'createdAt', t.created_at)), '{}')
    INTO v_targets
    FROM jsonb_array_elements(v_ops) AS e(op)
    CROSS JOIN LATERAL (${RECORD_OF('e.op')}) t
   WHERE ext_storage_is_live(t.ttl_expires_at, v_now);

  -- Revisions: the first item, in input order, whose ifRevision does not match.
  SELECT e.n - 1 AS i, e.op, (${TARGET('e.op')}->>'revision')::int AS current INTO v_fail
    FROM jsonb_array_elements(v_ops) WITH ORDINALITY AS e(op, n)
   WHERE NOT ext_storage_revision_matches((e.op->>'ifRevision')::bigint, (${TARGET('e.op')}->>'revision')::int)
   ORDER BY e.n LIMIT 1;
  IF FOUND THEN
    RETURN jsonb_build_object('error', 'revision', 'index', v_fail.i, 'namespace', v_fail.op->>'namespace', 'key', v_fail.op->>'key',
                              'expected', (v_fail.op->>'ifRevision')::bigint, 'current', v_fail.current);
  END IF;

  -- Schema: each version the values were validated against must still be the active one.
  FOR v_schema IN SELECT * FROM jsonb_array_elements(p_request->'schemas') LOOP
    SELECT max(s.version) INTO v_active FROM ext_storage_schemas s
     WHERE s.tenant_id = p_tenant_id AND s.install_id = p_install_id AND s.namespace = v_schema->>'namespace';
    IF v_active IS DISTINCT FROM (v_schema->>'version')::int THEN
      RETURN jsonb_build_object('error', 'schema-changed', 'namespace', v_schema->>'namespace', 'active', v_active);
    END IF;
  END LOOP;
  IF (p_request->>'invalid')::boolean THEN
    RETURN jsonb_build_object('error', 'schema');
  END IF;

  -- Quotas, against live usage at v_now and the write's net effect: a put of a live key moves its
  -- bytes, a put of an absent key adds a key, a delete of a live key removes one.
  SELECT coalesce(jsonb_object_agg(u.namespace, jsonb_build_array(u.keys, u.bytes)), '{}'),
         count(*) FILTER (WHERE u.keys > 0), coalesce(sum(u.bytes), 0)
    INTO v_usage, v_live_before, v_bytes_before
    FROM ext_storage_live_usage(p_tenant_id, p_install_id, v_now) u;
  SELECT coalesce(jsonb_object_agg(d.ns, d.keys), '{}'), coalesce(sum(d.bytes), 0),
         coalesce(jsonb_object_agg(d.ns, d.first_new) FILTER (WHERE d.first_new IS NOT NULL), '{}')
    INTO v_keys_delta, v_bytes_delta, v_first_new
    FROM (SELECT o.ns, sum(o.keys)::int AS keys, sum(o.bytes)::bigint AS bytes, min(o.i) FILTER (WHERE o.keys = 1) AS first_new
            FROM (SELECT e.n - 1 AS i, e.op->>'namespace' AS ns,
                         CASE WHEN ${TARGET('e.op')} IS NOT NULL THEN CASE WHEN e.op->>'kind' = 'delete' THEN -1 ELSE 0 END
                              WHEN e.op->>'kind' = 'put' THEN 1 ELSE 0 END AS keys,
                         CASE WHEN e.op->>'kind' = 'put' THEN ${NEW_BYTES('e.op')} ELSE 0 END
                           - coalesce((${TARGET('e.op')}->>'bytes')::bigint, 0) AS bytes
                    FROM jsonb_array_elements(v_ops) WITH ORDINALITY AS e(op, n)) o
           GROUP BY o.ns) d;
  SELECT count(*) INTO v_live_after FROM (
    SELECT coalesce((v_usage->n->>0)::bigint, 0) + coalesce((v_keys_delta->>n)::int, 0) AS keys
      FROM (SELECT jsonb_object_keys(v_usage || v_keys_delta) AS n) names) after WHERE after.keys > 0;
  IF v_live_after > v_live_before AND v_live_after > (v_quota->>'namespaces')::bigint THEN
    RETURN jsonb_build_object('error', 'quota', 'quota', 'namespaces', 'allowed', (v_quota->>'namespaces')::bigint, 'used', v_live_before,
      'index', (SELECT min(value::int) FROM jsonb_each_text(v_first_new) f
                 WHERE coalesce((v_usage->f.key->>0)::bigint, 0) = 0));
  END IF;
  FOR v_ns IN SELECT jsonb_object_keys(v_keys_delta) LOOP
    IF (v_keys_delta->>v_ns)::int > 0
       AND coalesce((v_usage->v_ns->>0)::bigint, 0) + (v_keys_delta->>v_ns)::int > (v_quota->>'keys')::bigint THEN
      v_running := coalesce((v_usage->v_ns->>0)::bigint, 0);
      FOR i IN 0 .. v_count - 1 LOOP
        v_op := v_ops->i;
        CONTINUE WHEN v_op->>'namespace' <> v_ns OR v_op->>'kind' <> 'put' OR ${TARGET('v_op')} IS NOT NULL;
        v_running := v_running + 1;
        v_index := i;
        EXIT WHEN v_running > (v_quota->>'keys')::bigint;
      END LOOP;
      RETURN jsonb_build_object('error', 'quota', 'quota', 'keysPerNamespace', 'allowed', (v_quota->>'keys')::bigint,
                                'used', coalesce((v_usage->v_ns->>0)::bigint, 0), 'index', v_index);
    END IF;
  END LOOP;
  IF v_bytes_delta > 0 AND v_bytes_before + v_bytes_delta > (v_quota->>'bytes')::bigint THEN
    v_running := v_bytes_before;
    FOR i IN 0 .. v_count - 1 LOOP
      v_op := v_ops->i;
      v_running := v_running + CASE WHEN v_op->>'kind' = 'put' THEN ${NEW_BYTES('v_op')} ELSE 0 END
                             - coalesce((${TARGET('v_op')}->>'bytes')::bigint, 0);
      v_index := i;
      EXIT WHEN v_running > (v_quota->>'bytes')::bigint;
    END LOOP;
    RETURN jsonb_build_object('error', 'quota', 'quota', 'bytes', 'allowed', (v_quota->>'bytes')::bigint, 'used', v_bytes_before, 'index', v_index);
  END IF;

  -- I3: every check passed; apply. First the sweep: the expired targets and the install's oldest
  -- expired records (a bounded list of keys), then each of those keys deleted by its primary key
  -- alone (with a TTL condition too, the planner may take the TTL index and read the whole backlog
  -- for each key). The install's lock is held: a record listed here is still the expired one.
  SELECT array_agg(d.namespace), array_agg(d.key) INTO v_list_ns, v_list_keys
    FROM ((SELECT o.namespace, o.key FROM ext_storage_records o
            WHERE o.tenant_id = p_tenant_id AND o.install_id = p_install_id AND o.ttl_expires_at <= v_now
            ORDER BY o.ttl_expires_at LIMIT (p_request->>'sweep')::int)
          UNION
          SELECT t.namespace, t.key FROM jsonb_array_elements(v_ops) AS e(op)
           CROSS JOIN LATERAL (${RECORD_OF('e.op')}) t
           WHERE t.ttl_expires_at <= v_now) d;
  FOR i IN 1 .. coalesce(cardinality(v_list_ns), 0) LOOP
    DELETE FROM ext_storage_records r
     WHERE r.tenant_id = p_tenant_id AND r.install_id = p_install_id AND r.namespace = v_list_ns[i] AND r.key = v_list_keys[i]
    RETURNING r.namespace, r.key, (r.value_bytes + r.metadata_bytes)::bigint AS bytes, r.ttl_expires_at INTO v_row;
    IF FOUND THEN
      v_gone := v_gone || jsonb_build_array(jsonb_build_object('namespace', v_row.namespace, 'key', v_row.key, 'bytes', v_row.bytes,
                                                               'expiresAt', v_row.ttl_expires_at));
    END IF;
  END LOOP;
  IF jsonb_array_length(v_gone) > 0 THEN
    INSERT INTO ext_storage_audit (tenant_id, install_id, namespace, key, operation, revision, bytes_delta, actor, request_id, at)
    SELECT p_tenant_id, p_install_id, g.namespace, g.key, 'ttlExpire', NULL, -g.bytes, 'system', p_request->>'requestId', v_now
      FROM jsonb_to_recordset(v_gone) AS g(namespace text, key text, bytes bigint);
  END IF;

  -- The deletes: each deleted item's live record, by its primary key.
  FOR v_row IN SELECT e.op->>'namespace' AS namespace, e.op->>'key' AS key FROM jsonb_array_elements(v_ops) AS e(op)
                WHERE e.op->>'kind' = 'delete' AND ${TARGET('e.op')} IS NOT NULL LOOP
    DELETE FROM ext_storage_records r
     WHERE r.tenant_id = p_tenant_id AND r.install_id = p_install_id AND r.namespace = v_row.namespace AND r.key = v_row.key;
  END LOOP;

  -- The puts, in one upsert (keys are distinct in a request). A conflicting row is the live
  -- target: an expired one was swept above.
  INSERT INTO ext_storage_records AS r (tenant_id, install_id, namespace, key, value, metadata, value_bytes, metadata_bytes,
                                        revision, schema_version, ttl_expires_at, created_at, updated_at)
  SELECT p_tenant_id, p_install_id, e.op->>'namespace', e.op->>'key', e.op->'value', e.op->'metadata', (e.op->>'valueBytes')::int,
         (e.op->>'metadataBytes')::int, ${NEXT_REVISION('e.op')}, (e.op->>'schemaVersion')::int, ${EXPIRES('e.op')}, v_now, v_now
    FROM jsonb_array_elements(v_ops) AS e(op)
   WHERE e.op->>'kind' = 'put'
  ON CONFLICT (tenant_id, install_id, namespace, key) DO UPDATE
    SET value = EXCLUDED.value, metadata = EXCLUDED.metadata, value_bytes = EXCLUDED.value_bytes,
        metadata_bytes = EXCLUDED.metadata_bytes, revision = EXCLUDED.revision, schema_version = EXCLUDED.schema_version,
        ttl_expires_at = EXCLUDED.ttl_expires_at, updated_at = EXCLUDED.updated_at;

  -- One audit event per changed record, in input order (ids are taken in that order).
  INSERT INTO ext_storage_audit (tenant_id, install_id, namespace, key, operation, revision, bytes_delta, actor, request_id, at)
  SELECT p_tenant_id, p_install_id, e.op->>'namespace', e.op->>'key', p_request->>'operation',
         CASE WHEN e.op->>'kind' = 'put' THEN ${NEXT_REVISION('e.op')} END,
         CASE WHEN e.op->>'kind' = 'put' THEN ${NEW_BYTES('e.op')} ELSE 0 END - coalesce((${TARGET('e.op')}->>'bytes')::bigint, 0),
         p_request->>'actor', p_request->>'requestId', v_now
    FROM jsonb_array_elements(v_ops) WITH ORDINALITY AS e(op, n)
   WHERE e.op->>'kind' = 'put' OR ${TARGET('e.op')} IS NOT NULL
   ORDER BY e.n;

  -- I4: counters and expiry buckets move together, by what left (swept, deleted or replaced) and
  -- what arrived; rows that reach zero go.
  WITH moves AS (
    SELECT g.namespace, g."expiresAt" AS expires_at, -1 AS keys, -g.bytes AS bytes
      FROM jsonb_to_recordset(v_gone) AS g(namespace text, bytes bigint, "expiresAt" timestamptz)
    UNION ALL
    SELECT e.op->>'namespace', (${TARGET('e.op')}->>'expiresAt')::timestamptz, -1, -(${TARGET('e.op')}->>'bytes')::bigint
      FROM jsonb_array_elements(v_ops) AS e(op) WHERE ${TARGET('e.op')} IS NOT NULL
    UNION ALL
    SELECT e.op->>'namespace', ${EXPIRES('e.op')}, 1, ${NEW_BYTES('e.op')}
      FROM jsonb_array_elements(v_ops) AS e(op) WHERE e.op->>'kind' = 'put'
  ), per_namespace AS (
    SELECT m.namespace, sum(m.keys)::int AS keys, sum(m.bytes)::bigint AS bytes FROM moves m GROUP BY m.namespace
  ), per_bucket AS (
    SELECT m.namespace, w.width, ext_storage_expiry_bucket(m.expires_at, w.width) AS bucket, sum(m.keys)::int AS keys, sum(m.bytes)::bigint AS bytes
      FROM moves m CROSS JOIN (VALUES (60::smallint), (1::smallint)) AS w(width)
     WHERE m.expires_at IS NOT NULL GROUP BY 1, 2, 3
  )
  SELECT (SELECT jsonb_agg(to_jsonb(n)) FROM per_namespace n WHERE n.keys <> 0 OR n.bytes <> 0),
         (SELECT jsonb_agg(to_jsonb(b)) FROM per_bucket b WHERE b.keys <> 0 OR b.bytes <> 0)
    INTO v_ns_moves, v_bucket_moves;
  IF v_ns_moves IS NOT NULL THEN
    INSERT INTO ext_storage_namespaces AS n (tenant_id, install_id, namespace, key_count, bytes)
    SELECT p_tenant_id, p_install_id, m.namespace, m.keys, m.bytes
      FROM jsonb_to_recordset(v_ns_moves) AS m(namespace text, keys int, bytes bigint)
    ON CONFLICT (tenant_id, install_id, namespace)
      DO UPDATE SET key_count = n.key_count + EXCLUDED.key_count, bytes = n.bytes + EXCLUDED.bytes;
    v_list_ns := ARRAY(SELECT m->>'namespace' FROM jsonb_array_elements(v_ns_moves) m);
    DELETE FROM ext_storage_namespaces
     WHERE tenant_id = p_tenant_id AND install_id = p_install_id AND namespace = ANY(v_list_ns) AND key_count = 0;
  END IF;
  IF v_bucket_moves IS NOT NULL THEN
    INSERT INTO ext_storage_expiries AS e (tenant_id, install_id, namespace, width, bucket, keys, bytes)
    SELECT p_tenant_id, p_install_id, m.namespace, m.width, m.bucket, m.keys, m.bytes
      FROM jsonb_to_recordset(v_bucket_moves) AS m(namespace text, width smallint, bucket timestamptz, keys int, bytes bigint)
    ON CONFLICT (tenant_id, install_id, namespace, width, bucket)
      DO UPDATE SET keys = e.keys + EXCLUDED.keys, bytes = e.bytes + EXCLUDED.bytes;
    -- A bucket row is never at zero keys except when this call emptied it.
    SELECT array_agg(DISTINCT m.namespace), array_agg(DISTINCT m.bucket) INTO v_list_ns, v_buckets
      FROM jsonb_to_recordset(v_bucket_moves) AS m(namespace text, bucket timestamptz);
    DELETE FROM ext_storage_expiries
     WHERE tenant_id = p_tenant_id AND install_id = p_install_id AND namespace = ANY(v_list_ns) AND bucket = ANY(v_buckets) AND keys = 0;
  END IF;

  -- Audit retention: a bounded batch of the install's oldest events past it (more than this call
  -- adds): their ids first, then each of them by its primary key.
  FOR v_row IN SELECT a.id FROM ext_storage_audit a
                WHERE a.tenant_id = p_tenant_id AND a.install_id = p_install_id
                  AND a.at < v_now - make_interval(secs => (p_request->>'auditRetentionSeconds')::double precision)
                ORDER BY a.at LIMIT 2 * (v_count + jsonb_array_length(v_gone)) + 10 LOOP
    DELETE FROM ext_storage_audit WHERE tenant_id = p_tenant_id AND id = v_row.id;
  END LOOP;

  RETURN jsonb_build_object('ok', true, 'swept', jsonb_array_length(v_gone),
    'results', (SELECT coalesce(jsonb_agg(CASE WHEN e.op->>'kind' = 'delete' THEN jsonb_build_object('deleted', ${TARGET('e.op')} IS NOT NULL)
                                      ELSE jsonb_build_object('revision', ${NEXT_REVISION('e.op')}, 'expiresAt', ${EXPIRES('e.op')},
                                             'createdAt', coalesce(${TARGET('e.op')}->'createdAt', to_jsonb(v_now)), 'updatedAt', v_now) END
                                 ORDER BY e.n), '[]')
                  FROM jsonb_array_elements(v_ops) WITH ORDINALITY AS e(op, n)),
    'usage', jsonb_build_object('namespaces', jsonb_build_array(v_live_before, v_live_after),
                                'bytes', jsonb_build_array(v_bytes_before, v_bytes_before + v_bytes_delta),
                                'keys', (SELECT coalesce(jsonb_object_agg(k, jsonb_build_array(coalesce((v_usage->k->>0)::bigint, 0),
                                                     coalesce((v_usage->k->>0)::bigint, 0) + (v_keys_delta->>k)::int)), '{}')
                                           FROM jsonb_object_keys(v_keys_delta) k)));
END
$fn$`;
}
