import { sql, type Kysely } from 'kysely';
import { hasCitus } from '../src/db/citus.js';
import { WRITE_FUNCTION as WRITE_FUNCTION_005 } from './005_write_function.js';

/**
 * ext_storage_write_v1 again (issue 12: a write's cost in PostgreSQL), with the same request, the
 * same answers and the same invariants I1–I4 as migration 005. What changes is how it applies:
 *
 * - **Set-based.** The checks and the changes are one statement per stage for the whole call, not
 *   one to three statements per item: one upsert of every put, one delete of every deleted key, one
 *   audit insert, one counter upsert and one expiry upsert. A bulk of 100 items runs about the same
 *   number of statements as a single put.
 * - **Every statement keeps one plan whatever the data.** Modifications find their rows by primary
 *   key (`namespace = ANY(…) AND key = ANY(…)` plus the exact pairs), never by joining a list to a
 *   table: the sweep and the audit retention first collect a bounded list of keys or ids, then
 *   delete exactly those. A join there could be planned as a hash join over every expired record or
 *   audit event of the install (migration 007 of the last stop, taken back: 34× slower puts behind
 *   an expired backlog).
 * - **Generic plans on PostgreSQL and PGlite** (`plan_cache_mode = force_generic_plan` on the
 *   function): each statement is planned once per connection instead of on every call, which was
 *   most of a put's time in PostgreSQL. Not on Citus: it cannot build a distributed plan for the
 *   generic form of these statements, and there the function runs on the worker anyway.
 *
 * Namespaces cannot contain '/' (src/storage/limits.ts), so `namespace || '/' || key` names one
 * record exactly.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql.raw(WRITE_FUNCTION()).execute(db);
  if (!(await hasCitus(db))) await sql.raw(`ALTER FUNCTION ${ENTRY_POINT} SET plan_cache_mode = force_generic_plan`).execute(db);
}

/** Back to migration 005's function (CREATE OR REPLACE keeps Citus's distribution of it). */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql.raw(WRITE_FUNCTION_005().replace(/^CREATE FUNCTION/, 'CREATE OR REPLACE FUNCTION')).execute(db);
  await sql.raw(`ALTER FUNCTION ${ENTRY_POINT} RESET plan_cache_mode`).execute(db);
}

const ENTRY_POINT = 'ext_storage_write_v1(uuid, uuid, jsonb)';

/** The live target of an item (jsonb, null when absent or expired): `TARGET('e.op')`. */
const TARGET = (op: string) => `v_targets->((${op}->>'namespace') || '/' || (${op}->>'key'))`;
/** The stored bytes an item's value and metadata take. */
const NEW_BYTES = (op: string) => `((${op}->>'valueBytes')::bigint + (${op}->>'metadataBytes')::bigint)`;
/** When an item's put expires: null without ttlSeconds (make_interval is strict). */
const EXPIRES = (op: string) => `(v_now + make_interval(secs => (${op}->>'ttlSeconds')::int))`;
/** The revision a put gives its record. */
const NEXT_REVISION = (op: string) => `(coalesce((${TARGET(op)}->>'revision')::int, 0) + 1)`;

/**
 * The request and the answer are migration 005's (see its comment). `v_targets` holds only the
 * live targets, so an expired record is absent everywhere, as the contract says.
 */
function WRITE_FUNCTION(): string {
  return `CREATE OR REPLACE FUNCTION ext_storage_write_v1(p_tenant_id uuid, p_install_id uuid, p_request jsonb) RETURNS jsonb
  LANGUAGE plpgsql AS $fn$
DECLARE
  v_ops jsonb := p_request->'ops';
  v_count int := jsonb_array_length(p_request->'ops');
  v_quota jsonb := p_request->'quota';
  v_now timestamptz;
  v_namespaces text[];
  v_keys text[];
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
  v_list text[];
  v_gone jsonb := '[]';
  v_ns_moves jsonb;
  v_bucket_moves jsonb;
  v_buckets timestamptz[];
  v_old bigint[];
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

  SELECT array_agg(DISTINCT o->>'namespace'), array_agg(o->>'key') INTO v_namespaces, v_keys
    FROM jsonb_array_elements(v_ops) o;
  SELECT coalesce(jsonb_object_agg(r.namespace || '/' || r.key, jsonb_build_object(
           'revision', r.revision, 'bytes', r.value_bytes + r.metadata_bytes, 'expiresAt', r.ttl_expires_at,
           'createdAt', r.created_at)), '{}')
    INTO v_targets
    FROM ext_storage_records r
   WHERE r.tenant_id = p_tenant_id AND r.install_id = p_install_id
     AND r.namespace = ANY(v_namespaces) AND r.key = ANY(v_keys) AND ext_storage_is_live(r.ttl_expires_at, v_now);

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
  -- expired records (a bounded list of keys), then one delete of exactly those keys.
  SELECT array_agg(d.namespace), array_agg(d.key), array_agg(d.namespace || '/' || d.key)
    INTO v_list_ns, v_list_keys, v_list
    FROM ((SELECT o.namespace, o.key FROM ext_storage_records o
            WHERE o.tenant_id = p_tenant_id AND o.install_id = p_install_id AND o.ttl_expires_at <= v_now
            ORDER BY o.ttl_expires_at LIMIT (p_request->>'sweep')::int)
          UNION
          SELECT t.namespace, t.key FROM ext_storage_records t
           WHERE t.tenant_id = p_tenant_id AND t.install_id = p_install_id
             AND t.namespace = ANY(v_namespaces) AND t.key = ANY(v_keys) AND t.ttl_expires_at <= v_now) d;
  IF v_list IS NOT NULL THEN
    WITH gone AS (
      DELETE FROM ext_storage_records r
       WHERE r.tenant_id = p_tenant_id AND r.install_id = p_install_id
         AND r.namespace = ANY(v_list_ns) AND r.key = ANY(v_list_keys) AND r.namespace || '/' || r.key = ANY(v_list)
         AND r.ttl_expires_at <= v_now
      RETURNING r.namespace, r.key, (r.value_bytes + r.metadata_bytes)::bigint AS bytes, r.ttl_expires_at
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('namespace', g.namespace, 'key', g.key, 'bytes', g.bytes, 'expiresAt', g.ttl_expires_at)), '[]')
      INTO v_gone FROM gone g;
    IF jsonb_array_length(v_gone) > 0 THEN
      INSERT INTO ext_storage_audit (tenant_id, install_id, namespace, key, operation, revision, bytes_delta, actor, request_id, at)
      SELECT p_tenant_id, p_install_id, g.namespace, g.key, 'ttlExpire', NULL, -g.bytes, 'system', p_request->>'requestId', v_now
        FROM jsonb_to_recordset(v_gone) AS g(namespace text, key text, bytes bigint);
    END IF;
  END IF;

  -- The deletes: exactly the deleted items' live records.
  SELECT array_agg(e.op->>'namespace'), array_agg(e.op->>'key'), array_agg((e.op->>'namespace') || '/' || (e.op->>'key'))
    INTO v_list_ns, v_list_keys, v_list
    FROM jsonb_array_elements(v_ops) AS e(op)
   WHERE e.op->>'kind' = 'delete' AND ${TARGET('e.op')} IS NOT NULL;
  IF v_list IS NOT NULL THEN
    DELETE FROM ext_storage_records r
     WHERE r.tenant_id = p_tenant_id AND r.install_id = p_install_id
       AND r.namespace = ANY(v_list_ns) AND r.key = ANY(v_list_keys) AND r.namespace || '/' || r.key = ANY(v_list);
  END IF;

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
  -- adds): their ids first, then exactly those rows.
  SELECT array_agg(o.id) INTO v_old
    FROM (SELECT a.id FROM ext_storage_audit a
           WHERE a.tenant_id = p_tenant_id AND a.install_id = p_install_id
             AND a.at < v_now - make_interval(secs => (p_request->>'auditRetentionSeconds')::double precision)
           ORDER BY a.at LIMIT 2 * (v_count + jsonb_array_length(v_gone)) + 10) o;
  IF v_old IS NOT NULL THEN
    DELETE FROM ext_storage_audit WHERE tenant_id = p_tenant_id AND id = ANY(v_old);
  END IF;

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
