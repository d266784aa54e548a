import { sql, type Kysely } from 'kysely';
import { allowFanOut, hasCitus, sequentialShardCommands } from '../src/db/citus.js';
import { backfillInstallBytes } from './004_install_bytes.js';

/**
 * The write path moves into one PL/pgSQL function per call (docs/citus.md rule 17): on Citus it
 * is distributed by tenant and delegated whole to the worker that holds the tenant, so a write is
 * one round trip, one node and a one-phase commit; on PostgreSQL and PGlite it is a plain function.
 *
 * - `ext_storage_expiries`: stored keys and bytes per namespace and expiry bucket (minutes, and
 *   seconds), so live usage is counters minus whole past minutes, minus the past seconds of this
 *   minute, minus the expired records of this second, whatever the size of the expired backlog.
 * - The install lock row goes back to being only a lock: the byte counter (migration 004) and the
 *   write sequence (migration 003) are dropped; install bytes are the sum of the namespace rows
 *   (one source of truth), and namespace rows are deleted when they hold no record.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const citus = await hasCitus(db);
  await sequentialShardCommands(db);
  await sql`
    CREATE TABLE ext_storage_expiries (
      tenant_id uuid NOT NULL,
      install_id uuid NOT NULL,
      namespace text COLLATE "C" NOT NULL,
      width smallint NOT NULL,
      bucket timestamptz NOT NULL,
      keys integer NOT NULL,
      bytes bigint NOT NULL,
      PRIMARY KEY (tenant_id, install_id, namespace, width, bucket)
    )`.execute(db);
  if (citus) await sql`SELECT create_distributed_table('ext_storage_expiries', 'tenant_id', colocate_with => 'ext_storage_records')`.execute(db);

  // The audit log reads newest first by (at, id) (src/storage/audit.ts).
  await sql`CREATE INDEX ext_storage_audit_install_at ON ext_storage_audit (tenant_id, install_id, at DESC, id DESC)`.execute(db);
  await sql`DROP INDEX IF EXISTS ext_storage_audit_install`.execute(db);

  for (const statement of FUNCTIONS) await sql.raw(statement).execute(db);
  if (citus) {
    // Helpers are propagated to every node (statements on the workers call them); the two entry
    // points are distributed by tenant, so Citus runs each call on the tenant's worker.
    for (const helper of HELPERS) await sql`SELECT create_distributed_function(${helper})`.execute(db);
    for (const entry of ENTRY_POINTS) {
      await sql`SELECT create_distributed_function(${entry}, 'p_tenant_id', colocate_with => 'ext_storage_records')`.execute(db);
    }
  }

  await allowFanOut(db);
  // The markers are the Citus guard's (test/support/citus-guard.ts): deliberate cross-tenant statements.
  await sql`/* citus: fans out by design */
    INSERT INTO ext_storage_expiries (tenant_id, install_id, namespace, width, bucket, keys, bytes)
    SELECT r.tenant_id, r.install_id, r.namespace, w.width, ext_storage_expiry_bucket(r.ttl_expires_at, w.width),
           count(*)::int, sum(r.value_bytes + r.metadata_bytes)::bigint
      FROM ext_storage_records r CROSS JOIN (VALUES (60::smallint), (1::smallint)) AS w(width)
     WHERE r.ttl_expires_at IS NOT NULL
     GROUP BY r.tenant_id, r.install_id, r.namespace, w.width, ext_storage_expiry_bucket(r.ttl_expires_at, w.width)`.execute(db);
  await sql`/* citus: fans out by design */ DELETE FROM ext_storage_namespaces WHERE key_count = 0`.execute(db);
  await sql`ALTER TABLE ext_storage_install_locks DROP COLUMN IF EXISTS bytes`.execute(db);
  await sql`ALTER TABLE ext_storage_install_locks DROP COLUMN IF EXISTS seq`.execute(db);
}

/** Restores the counters of migrations 003 and 004 (backfilled); every record is kept. */
export async function down(db: Kysely<unknown>): Promise<void> {
  for (const name of [...ENTRY_POINTS, ...HELPERS].reverse()) await sql.raw(`DROP FUNCTION IF EXISTS ${name}`).execute(db);
  await sql`DROP TABLE IF EXISTS ext_storage_expiries`.execute(db);
  await sql`CREATE INDEX ext_storage_audit_install ON ext_storage_audit (tenant_id, install_id, id DESC)`.execute(db);
  await sql`DROP INDEX IF EXISTS ext_storage_audit_install_at`.execute(db);
  await sql`ALTER TABLE ext_storage_install_locks ADD COLUMN seq bigint NOT NULL DEFAULT 0`.execute(db);
  await sql`ALTER TABLE ext_storage_install_locks ADD COLUMN bytes bigint NOT NULL DEFAULT 0`.execute(db);
  await backfillInstallBytes(db);
}

const HELPERS = [
  'ext_storage_is_live(timestamptz, timestamptz)',
  'ext_storage_revision_matches(bigint, integer)',
  'ext_storage_expiry_bucket(timestamptz, smallint)',
  'ext_storage_live_usage(uuid, uuid, timestamptz)',
];
const ENTRY_POINTS = ['ext_storage_write_v1(uuid, uuid, jsonb)', 'ext_storage_usage_v1(uuid, uuid)'];

/** As this migration defines it (migration 007 replaces it; its down restores this one). */
export const EXPIRY_BUCKET_FUNCTION = `CREATE FUNCTION ext_storage_expiry_bucket(expires_at timestamptz, width smallint) RETURNS timestamptz
     LANGUAGE sql IMMUTABLE PARALLEL SAFE
     AS $$ SELECT to_timestamp(floor(extract(epoch FROM $1) / $2) * $2) $$`;

/** As this migration defines it (migration 007 replaces it; its down restores this one). */
export const LIVE_USAGE_FUNCTION = `CREATE FUNCTION ext_storage_live_usage(p_tenant_id uuid, p_install_id uuid, p_at timestamptz)
     RETURNS TABLE (namespace text, keys bigint, bytes bigint)
     LANGUAGE plpgsql STABLE
     AS $$
     BEGIN
       RETURN QUERY
       SELECT n.namespace::text,
              (n.key_count - coalesce(m.keys, 0) - coalesce(c.keys, 0))::bigint,
              (n.bytes - coalesce(m.bytes, 0) - coalesce(c.bytes, 0))::bigint
         FROM ext_storage_namespaces n
         LEFT JOIN (SELECT e.tenant_id, e.namespace, sum(e.keys) AS keys, sum(e.bytes) AS bytes
                      FROM ext_storage_expiries e
                     WHERE e.tenant_id = p_tenant_id AND e.install_id = p_install_id
                       AND ((e.width = 60 AND e.bucket < ext_storage_expiry_bucket(p_at, 60::smallint))
                            OR (e.width = 1 AND e.bucket >= ext_storage_expiry_bucket(p_at, 60::smallint)
                                AND e.bucket < ext_storage_expiry_bucket(p_at, 1::smallint)))
                     GROUP BY e.tenant_id, e.namespace) m
           ON m.tenant_id = n.tenant_id AND m.namespace = n.namespace
         LEFT JOIN (SELECT r.tenant_id, r.namespace, count(*) AS keys, sum(r.value_bytes + r.metadata_bytes) AS bytes
                      FROM ext_storage_records r
                     WHERE r.tenant_id = p_tenant_id AND r.install_id = p_install_id
                       AND r.ttl_expires_at >= ext_storage_expiry_bucket(p_at, 1::smallint) AND r.ttl_expires_at <= p_at
                     GROUP BY r.tenant_id, r.namespace) c
           ON c.tenant_id = n.tenant_id AND c.namespace = n.namespace
        WHERE n.tenant_id = p_tenant_id AND n.install_id = p_install_id;
     END
     $$`;

const FUNCTIONS = [
  // Rule: a record is live at instant `at` while it has no TTL or its TTL is later than `at`.
  `CREATE FUNCTION ext_storage_is_live(expires_at timestamptz, at timestamptz) RETURNS boolean
     LANGUAGE sql IMMUTABLE PARALLEL SAFE
     AS $$ SELECT $1 IS NULL OR $1 > $2 $$`,

  // Rule: ifRevision null = unconditional; 0 = no live record; n = live at revision n
  // (current is the live revision, null when absent or expired). bigint: a caller's number never overflows.
  `CREATE FUNCTION ext_storage_revision_matches(if_revision bigint, current integer) RETURNS boolean
     LANGUAGE sql IMMUTABLE PARALLEL SAFE
     AS $$ SELECT $1 IS NULL OR $1 = coalesce($2, 0) $$`,

  // The start of the bucket of \`width\` seconds (60 or 1) a record is counted under in
  // ext_storage_expiries (epoch arithmetic: no time zone).
  EXPIRY_BUCKET_FUNCTION,

  // Rule: live usage at instant \`at\` = stored counters - records of whole past expiry minutes -
  // records of the whole past seconds of the current minute - expired records of the current
  // second. Its cost depends on namespaces, past minutes still holding records, at most 59
  // seconds and one second of records: never on how many expired records wait for a sweep.
  // PL/pgSQL, not SQL: Citus plans no parameterised SQL-function query on distributed tables.
  LIVE_USAGE_FUNCTION,

  // The usage read: live usage per namespace now, namespaces without a live record left out.
  `CREATE FUNCTION ext_storage_usage_v1(p_tenant_id uuid, p_install_id uuid) RETURNS jsonb
     LANGUAGE plpgsql STABLE
     AS $$
     BEGIN
       RETURN (SELECT coalesce(jsonb_agg(jsonb_build_object('namespace', u.namespace, 'keys', u.keys, 'bytes', u.bytes) ORDER BY u.namespace), '[]'::jsonb)
                 FROM ext_storage_live_usage(p_tenant_id, p_install_id, now()) u
                WHERE u.keys > 0);
     END
     $$`,

  WRITE_FUNCTION(),
];

/**
 * ext_storage_write_v1(tenant, install, request): every write of one install, in one call.
 *
 * request: { operation, actor, requestId, sweep (max expired records removed besides the targets),
 *            auditRetentionSeconds (older audit events are removed, a bounded batch per call),
 *            quota: {namespaces, keys, bytes}, schemas: [{namespace, version}] (versions the values
 *            were validated against, unpinned: each must still be the active one), invalid
 *            (the values failed that validation, or a pinned version is unknown),
 *            ops: [{kind: put|delete, namespace, key, ifRevision, value, metadata, valueBytes,
 *                   metadataBytes, ttlSeconds, schemaVersion}] }
 *
 * Stages, in the contract's order: lock, one instant, read targets, revisions, schema, quotas; only
 * then apply. A refusal returns {error: ...} having changed nothing.
 *
 * Invariants (numbered in the code; test/records/write-invariants.test.ts breaks each one):
 *  I1 Every write of an install holds that install's lock row from its first statement to its
 *     commit, so its reads (targets, usage, active schema) cannot change before it commits.
 *  I2 "Now" is taken once, after the lock is held: expiry, TTL and timestamps all use it.
 *  I3 Nothing is modified until every check passed (a refused write leaves no trace).
 *  I4 Every change of a stored record moves its namespace counter and its expiry buckets (the
 *     minute and the second) by the same keys and bytes, in the same call; rows that reach zero
 *     are deleted.
 */
export function WRITE_FUNCTION(): string {
  return `CREATE FUNCTION ext_storage_write_v1(p_tenant_id uuid, p_install_id uuid, p_request jsonb) RETURNS jsonb
  LANGUAGE plpgsql AS $fn$
DECLARE
  v_ops jsonb := p_request->'ops';
  v_count int := jsonb_array_length(p_request->'ops');
  v_now timestamptz;
  v_audit_cutoff timestamptz;
  v_namespaces text[];
  v_keys text[];
  v_targets jsonb;
  v_usage jsonb;
  v_op jsonb;
  v_target jsonb;
  v_current int;
  v_ns text;
  v_active int;
  v_schema jsonb;
  v_live_before int := 0;
  v_live_after int := 0;
  v_bytes_before bigint := 0;
  v_bytes_delta bigint := 0;
  v_running bigint;
  v_keys_delta jsonb := '{}';
  v_first_new jsonb := '{}';
  v_delta_keys int;
  v_delta_bytes bigint;
  v_expires timestamptz;
  v_gone jsonb;
  v_moves jsonb := '[]';
  v_results jsonb := '[]';
  v_row record;
  v_quota jsonb := p_request->'quota';
  v_index int;
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
           'createdAt', r.created_at, 'live', ext_storage_is_live(r.ttl_expires_at, v_now))), '{}')
    INTO v_targets
    FROM ext_storage_records r
   WHERE r.tenant_id = p_tenant_id AND r.install_id = p_install_id
     AND r.namespace = ANY(v_namespaces) AND r.key = ANY(v_keys);

  -- Revisions, in input order.
  FOR i IN 0 .. v_count - 1 LOOP
    v_op := v_ops->i;
    v_target := v_targets->((v_op->>'namespace') || '/' || (v_op->>'key'));
    v_current := CASE WHEN (v_target->>'live')::boolean THEN (v_target->>'revision')::int END;
    IF NOT ext_storage_revision_matches((v_op->>'ifRevision')::bigint, v_current) THEN
      RETURN jsonb_build_object('error', 'revision', 'index', i, 'namespace', v_op->>'namespace', 'key', v_op->>'key',
                                'expected', (v_op->>'ifRevision')::bigint, 'current', v_current);
    END IF;
  END LOOP;

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

  -- Quotas, against live usage at v_now and the write's net effect.
  SELECT coalesce(jsonb_object_agg(u.namespace, jsonb_build_array(u.keys, u.bytes)), '{}'),
         count(*) FILTER (WHERE u.keys > 0), coalesce(sum(u.bytes), 0)
    INTO v_usage, v_live_before, v_bytes_before
    FROM ext_storage_live_usage(p_tenant_id, p_install_id, v_now) u;
  FOR i IN 0 .. v_count - 1 LOOP
    v_op := v_ops->i;
    v_ns := v_op->>'namespace';
    v_target := v_targets->(v_ns || '/' || (v_op->>'key'));
    IF coalesce((v_target->>'live')::boolean, false) THEN
      v_delta_keys := CASE WHEN v_op->>'kind' = 'delete' THEN -1 ELSE 0 END;
      v_delta_bytes := CASE WHEN v_op->>'kind' = 'delete' THEN 0 ELSE (v_op->>'valueBytes')::bigint + (v_op->>'metadataBytes')::bigint END
                       - (v_target->>'bytes')::bigint;
    ELSIF v_op->>'kind' = 'put' THEN
      v_delta_keys := 1;
      v_delta_bytes := (v_op->>'valueBytes')::bigint + (v_op->>'metadataBytes')::bigint;
      IF NOT v_first_new ? v_ns THEN v_first_new := v_first_new || jsonb_build_object(v_ns, i); END IF;
    ELSE
      v_delta_keys := 0;
      v_delta_bytes := 0;
    END IF;
    v_keys_delta := v_keys_delta || jsonb_build_object(v_ns, coalesce((v_keys_delta->>v_ns)::int, 0) + v_delta_keys);
    v_bytes_delta := v_bytes_delta + v_delta_bytes;
  END LOOP;
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
        CONTINUE WHEN v_op->>'namespace' <> v_ns OR v_op->>'kind' <> 'put'
                   OR coalesce((v_targets->(v_ns || '/' || (v_op->>'key'))->>'live')::boolean, false);
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
      v_target := v_targets->((v_op->>'namespace') || '/' || (v_op->>'key'));
      v_running := v_running
        + CASE WHEN v_op->>'kind' = 'put' THEN (v_op->>'valueBytes')::bigint + (v_op->>'metadataBytes')::bigint ELSE 0 END
        - CASE WHEN coalesce((v_target->>'live')::boolean, false) THEN (v_target->>'bytes')::bigint ELSE 0 END;
      v_index := i;
      EXIT WHEN v_running > (v_quota->>'bytes')::bigint;
    END LOOP;
    RETURN jsonb_build_object('error', 'quota', 'quota', 'bytes', 'allowed', (v_quota->>'bytes')::bigint, 'used', v_bytes_before, 'index', v_index);
  END IF;

  -- I3: every check passed; apply. First the sweep: expired targets and the oldest expired records.
  -- The doomed keys first (a bounded list), then one primary-key delete per key: never a scan of the backlog.
  WITH doomed AS (
    (SELECT o.namespace, o.key FROM ext_storage_records o
      WHERE o.tenant_id = p_tenant_id AND o.install_id = p_install_id AND o.ttl_expires_at <= v_now
      ORDER BY o.ttl_expires_at LIMIT (p_request->>'sweep')::int)
    UNION
    SELECT t.namespace, t.key FROM ext_storage_records t
     WHERE t.tenant_id = p_tenant_id AND t.install_id = p_install_id
       AND t.namespace = ANY(v_namespaces) AND t.key = ANY(v_keys) AND t.ttl_expires_at <= v_now
  ), gone AS (
    DELETE FROM ext_storage_records r USING doomed d
     WHERE r.tenant_id = p_tenant_id AND r.install_id = p_install_id
       AND r.namespace = d.namespace AND r.key = d.key AND r.ttl_expires_at <= v_now
    RETURNING r.namespace, r.key, (r.value_bytes + r.metadata_bytes)::bigint AS bytes, r.ttl_expires_at
  )
  SELECT coalesce(jsonb_agg(jsonb_build_object('namespace', g.namespace, 'key', g.key, 'bytes', g.bytes, 'expiresAt', g.ttl_expires_at)), '[]')
    INTO v_gone FROM gone g;
  IF jsonb_array_length(v_gone) > 0 THEN
    INSERT INTO ext_storage_audit (tenant_id, install_id, namespace, key, operation, revision, bytes_delta, actor, request_id, at)
    SELECT p_tenant_id, p_install_id, g.namespace, g.key, 'ttlExpire', NULL, -g.bytes, 'system', p_request->>'requestId', v_now
      FROM jsonb_to_recordset(v_gone) AS g(namespace text, key text, bytes bigint);
    -- I4
    v_moves := v_moves || (SELECT jsonb_agg(jsonb_build_object('namespace', g.namespace, 'expiresAt', g."expiresAt", 'keys', -1, 'bytes', -g.bytes))
                             FROM jsonb_to_recordset(v_gone) AS g(namespace text, bytes bigint, "expiresAt" timestamptz));
  END IF;

  FOR i IN 0 .. v_count - 1 LOOP
    v_op := v_ops->i;
    v_ns := v_op->>'namespace';
    v_target := v_targets->(v_ns || '/' || (v_op->>'key'));
    IF NOT coalesce((v_target->>'live')::boolean, false) THEN v_target := NULL; END IF;
    IF v_op->>'kind' = 'delete' THEN
      IF v_target IS NULL THEN
        v_results := v_results || jsonb_build_array(jsonb_build_object('deleted', false));
        CONTINUE;
      END IF;
      DELETE FROM ext_storage_records
       WHERE tenant_id = p_tenant_id AND install_id = p_install_id AND namespace = v_ns AND key = v_op->>'key';
      INSERT INTO ext_storage_audit (tenant_id, install_id, namespace, key, operation, revision, bytes_delta, actor, request_id, at)
      VALUES (p_tenant_id, p_install_id, v_ns, v_op->>'key', p_request->>'operation', NULL, -(v_target->>'bytes')::bigint,
              p_request->>'actor', p_request->>'requestId', v_now);
      v_moves := v_moves || jsonb_build_array(jsonb_build_object('namespace', v_ns, 'expiresAt', v_target->'expiresAt',
                                                                 'keys', -1, 'bytes', -(v_target->>'bytes')::bigint));
      v_results := v_results || jsonb_build_array(jsonb_build_object('deleted', true));
      CONTINUE;
    END IF;
    v_expires := CASE WHEN v_op->>'ttlSeconds' IS NULL THEN NULL ELSE v_now + make_interval(secs => (v_op->>'ttlSeconds')::int) END;
    v_current := coalesce((v_target->>'revision')::int, 0) + 1;
    IF v_target IS NULL THEN
      INSERT INTO ext_storage_records (tenant_id, install_id, namespace, key, value, metadata, value_bytes, metadata_bytes,
                                       revision, schema_version, ttl_expires_at, created_at, updated_at)
      VALUES (p_tenant_id, p_install_id, v_ns, v_op->>'key', v_op->'value', v_op->'metadata', (v_op->>'valueBytes')::int,
              (v_op->>'metadataBytes')::int, 1, (v_op->>'schemaVersion')::int, v_expires, v_now, v_now);
    ELSE
      UPDATE ext_storage_records
         SET value = v_op->'value', metadata = v_op->'metadata', value_bytes = (v_op->>'valueBytes')::int,
             metadata_bytes = (v_op->>'metadataBytes')::int, revision = v_current,
             schema_version = (v_op->>'schemaVersion')::int, ttl_expires_at = v_expires, updated_at = v_now
       WHERE tenant_id = p_tenant_id AND install_id = p_install_id AND namespace = v_ns AND key = v_op->>'key';
      v_moves := v_moves || jsonb_build_array(jsonb_build_object('namespace', v_ns, 'expiresAt', v_target->'expiresAt',
                                                                 'keys', -1, 'bytes', -(v_target->>'bytes')::bigint));
    END IF;
    v_moves := v_moves || jsonb_build_array(jsonb_build_object('namespace', v_ns, 'expiresAt', v_expires, 'keys', 1,
                 'bytes', (v_op->>'valueBytes')::bigint + (v_op->>'metadataBytes')::bigint));
    INSERT INTO ext_storage_audit (tenant_id, install_id, namespace, key, operation, revision, bytes_delta, actor, request_id, at)
    VALUES (p_tenant_id, p_install_id, v_ns, v_op->>'key', p_request->>'operation', v_current,
            (v_op->>'valueBytes')::bigint + (v_op->>'metadataBytes')::bigint - coalesce((v_target->>'bytes')::bigint, 0),
            p_request->>'actor', p_request->>'requestId', v_now);
    v_results := v_results || jsonb_build_array(jsonb_build_object('revision', v_current, 'expiresAt', v_expires,
                   'createdAt', coalesce(v_target->'createdAt', to_jsonb(v_now)), 'updatedAt', v_now));
  END LOOP;

  -- I4: counters and expiry buckets move together; rows that reach zero go.
  FOR v_row IN SELECT m.namespace, sum(m.keys)::int AS keys, sum(m.bytes)::bigint AS bytes
                 FROM jsonb_to_recordset(v_moves) AS m(namespace text, keys int, bytes bigint) GROUP BY m.namespace LOOP
    CONTINUE WHEN v_row.keys = 0 AND v_row.bytes = 0;
    INSERT INTO ext_storage_namespaces AS n (tenant_id, install_id, namespace, key_count, bytes)
    VALUES (p_tenant_id, p_install_id, v_row.namespace, v_row.keys, v_row.bytes)
    ON CONFLICT (tenant_id, install_id, namespace)
      DO UPDATE SET key_count = n.key_count + EXCLUDED.key_count, bytes = n.bytes + EXCLUDED.bytes;
    DELETE FROM ext_storage_namespaces
     WHERE tenant_id = p_tenant_id AND install_id = p_install_id AND namespace = v_row.namespace AND key_count = 0;
  END LOOP;
  FOR v_row IN SELECT m.namespace, w.width, ext_storage_expiry_bucket(m."expiresAt", w.width) AS bucket,
                      sum(m.keys)::int AS keys, sum(m.bytes)::bigint AS bytes
                 FROM jsonb_to_recordset(v_moves) AS m(namespace text, "expiresAt" timestamptz, keys int, bytes bigint)
                CROSS JOIN (VALUES (60::smallint), (1::smallint)) AS w(width)
                WHERE m."expiresAt" IS NOT NULL GROUP BY 1, 2, 3 LOOP
    CONTINUE WHEN v_row.keys = 0 AND v_row.bytes = 0;
    INSERT INTO ext_storage_expiries AS e (tenant_id, install_id, namespace, width, bucket, keys, bytes)
    VALUES (p_tenant_id, p_install_id, v_row.namespace, v_row.width, v_row.bucket, v_row.keys, v_row.bytes)
    ON CONFLICT (tenant_id, install_id, namespace, width, bucket)
      DO UPDATE SET keys = e.keys + EXCLUDED.keys, bytes = e.bytes + EXCLUDED.bytes;
    DELETE FROM ext_storage_expiries
     WHERE tenant_id = p_tenant_id AND install_id = p_install_id AND namespace = v_row.namespace
       AND width = v_row.width AND bucket = v_row.bucket AND keys = 0;
  END LOOP;

  v_audit_cutoff := v_now - make_interval(secs => (p_request->>'auditRetentionSeconds')::double precision);
  -- Audit retention: a bounded batch of the install's oldest events past it (more than this call adds).
  DELETE FROM ext_storage_audit a
   USING (SELECT o.id FROM ext_storage_audit o
           WHERE o.tenant_id = p_tenant_id AND o.install_id = p_install_id
             AND o.at < v_audit_cutoff
           ORDER BY o.at LIMIT 2 * (v_count + jsonb_array_length(v_gone)) + 10) old
   WHERE a.tenant_id = p_tenant_id AND a.id = old.id;

  RETURN jsonb_build_object('ok', true, 'results', v_results, 'swept', jsonb_array_length(v_gone),
    'usage', jsonb_build_object('namespaces', jsonb_build_array(v_live_before, v_live_after),
                                'bytes', jsonb_build_array(v_bytes_before, v_bytes_before + v_bytes_delta),
                                'keys', (SELECT coalesce(jsonb_object_agg(k, jsonb_build_array(coalesce((v_usage->k->>0)::bigint, 0),
                                                     coalesce((v_usage->k->>0)::bigint, 0) + (v_keys_delta->>k)::int)), '{}')
                                           FROM jsonb_object_keys(v_keys_delta) k)));
END
$fn$`;
}
