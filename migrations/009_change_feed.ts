import { sql, type Kysely } from 'kysely';
import { hasCitus, sequentialShardCommands } from '../src/db/citus.js';
import { WRITE_FUNCTION as WRITE_FUNCTION_008 } from './008_commit_and_counters.js';

/**
 * The change feed (issue 15; contract, "Change feed"; the argument is docs/change-feed.md), written
 * by the one write function in the write's own transaction:
 *
 * - `ext_storage_changes`: one row per committed put, delete that removed a live record, and
 *   expired record removed, numbered per install by `seq` (its position: cursors carry it).
 * - The install's lock row holds the sequence (`change_seq`, the number of the last change) and
 *   how far retention has removed changes (`changes_pruned_seq`: a cursor before it is expired).
 *   Every write already holds that row from its first statement to its commit (I1), so numbers
 *   are taken in commit order.
 * - The function also learns restored puts (import: `restore` {revision, createdAt, updatedAt,
 *   expiresAt} on a put op) and answers `seq`, the feed position just after the write.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const citus = await hasCitus(db);
  await sequentialShardCommands(db);
  await sql`
    CREATE TABLE ext_storage_changes (
      tenant_id uuid NOT NULL,
      install_id uuid NOT NULL,
      seq bigint NOT NULL,
      namespace text COLLATE "C" NOT NULL,
      key text COLLATE "C" NOT NULL,
      operation text NOT NULL,
      revision integer NOT NULL,
      actor text NOT NULL,
      at timestamptz NOT NULL,
      PRIMARY KEY (tenant_id, install_id, seq)
    )`.execute(db);
  if (citus) await sql`SELECT create_distributed_table('ext_storage_changes', 'tenant_id', colocate_with => 'ext_storage_records')`.execute(db);
  await sql`ALTER TABLE ext_storage_install_locks ADD COLUMN change_seq bigint NOT NULL DEFAULT 0`.execute(db);
  await sql`ALTER TABLE ext_storage_install_locks ADD COLUMN changes_pruned_seq bigint NOT NULL DEFAULT 0`.execute(db);
  await sql.raw(WRITE_FUNCTION()).execute(db);
  // CREATE OR REPLACE resets the function's settings: migration 007's generic plans again.
  if (!citus) await sql.raw(`ALTER FUNCTION ${ENTRY_POINT} SET plan_cache_mode = force_generic_plan`).execute(db);
}

/** Back to migration 008's function; the feed and its counters go (records are untouched). */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql.raw(WRITE_FUNCTION_008()).execute(db);
  if (!(await hasCitus(db))) await sql.raw(`ALTER FUNCTION ${ENTRY_POINT} SET plan_cache_mode = force_generic_plan`).execute(db);
  await sql`DROP TABLE IF EXISTS ext_storage_changes`.execute(db);
  await sql`ALTER TABLE ext_storage_install_locks DROP COLUMN IF EXISTS change_seq`.execute(db);
  await sql`ALTER TABLE ext_storage_install_locks DROP COLUMN IF EXISTS changes_pruned_seq`.execute(db);
}

const ENTRY_POINT = 'ext_storage_write_v1(uuid, uuid, jsonb)';

/** The live target of an item (jsonb, null when absent or expired): `TARGET('e.op')`. */
const TARGET = (op: string) => `v_targets->((${op}->>'namespace') || '/' || (${op}->>'key'))`;
/** The stored bytes an item's value and metadata take. */
const NEW_BYTES = (op: string) => `((${op}->>'valueBytes')::bigint + (${op}->>'metadataBytes')::bigint)`;
/**
 * When an item's put expires: null without ttlSeconds (make_interval is strict); a restored record
 * (import) keeps the instant it was exported with.
 */
const EXPIRES = (op: string) =>
  `(CASE WHEN ${op} ? 'restore' THEN (${op}->'restore'->>'expiresAt')::timestamptz ELSE v_now + make_interval(secs => (${op}->>'ttlSeconds')::int) END)`;
/**
 * The stored record an item names, as a LATERAL subquery on the full primary key and nothing else
 * (so no other index can look as cheap to the planner). The LIMIT keeps it a subquery run once per
 * item, never turned into a join the planner could run as a scan of the install's records.
 */
const RECORD_OF = (op: string) =>
  `SELECT r.* FROM ext_storage_records r
    WHERE r.tenant_id = p_tenant_id AND r.install_id = p_install_id AND r.namespace = ${op}->>'namespace' AND r.key = ${op}->>'key'
    LIMIT 1`;
/**
 * The revision a put gives its record. A restored record (import) keeps its exported revision when
 * its key is new, else takes max(current + 1, exported).
 */
const NEXT_REVISION = (op: string) =>
  `(CASE WHEN ${op} ? 'restore' THEN greatest(coalesce((${TARGET(op)}->>'revision')::int + 1, 0), (${op}->'restore'->>'revision')::int)
         ELSE coalesce((${TARGET(op)}->>'revision')::int, 0) + 1 END)`;
/** createdAt and updatedAt of a put: a restored new key keeps its exported ones; otherwise now (createdAt kept on overwrite). */
const CREATED_AT = (op: string) => `coalesce((${TARGET(op)}->>'createdAt')::timestamptz, (${op}->'restore'->>'createdAt')::timestamptz, v_now)`;
const UPDATED_AT = (op: string) =>
  `(CASE WHEN ${TARGET(op)} IS NULL AND ${op} ? 'restore' THEN (${op}->'restore'->>'updatedAt')::timestamptz ELSE v_now END)`;

/**
 * The answer's results, one per op in input order: the same expression for a dry run (before
 * anything is applied) and a real write (after). An increment also answers what it stored.
 */
const RESULTS = `(SELECT coalesce(jsonb_agg(CASE WHEN e.op->>'kind' = 'delete' THEN jsonb_build_object('deleted', ${TARGET('e.op')} IS NOT NULL)
                                  ELSE jsonb_build_object('revision', ${NEXT_REVISION('e.op')}, 'expiresAt', ${EXPIRES('e.op')},
                                         'createdAt', ${CREATED_AT('e.op')}, 'updatedAt', ${UPDATED_AT('e.op')})
                                       || CASE WHEN e.op ? 'by' THEN jsonb_build_object('value', e.op->'value', 'metadata', e.op->'metadata',
                                                 'valueBytes', e.op->'valueBytes', 'metadataBytes', e.op->'metadataBytes') ELSE '{}' END END
                             ORDER BY e.n), '[]')
              FROM jsonb_array_elements(v_ops) WITH ORDINALITY AS e(op, n))`;

/**
 * The request and the answer are migration 005's (see its comment), with migration 008's
 * additions. `v_targets` holds only the live targets, so an expired record is absent everywhere,
 * as the contract says.
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
  v_checks jsonb := coalesce(p_request->'checks', '[]');
  v_conflicts jsonb;
  v_target jsonb;
  v_sum numeric;
  v_value jsonb;
  v_computed jsonb := '{}';
  v_seq bigint;
  v_changed int := 0;
  v_cut bigint;
  v_first bigint;
  v_old timestamptz;
BEGIN
  -- I1: the install's lock row first (created on first use).
  -- It also holds the install's change sequence (the feed's numbering, below).
  SELECT l.change_seq INTO v_seq FROM ext_storage_install_locks l WHERE l.tenant_id = p_tenant_id AND l.install_id = p_install_id FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO ext_storage_install_locks (tenant_id, install_id) VALUES (p_tenant_id, p_install_id)
      ON CONFLICT (tenant_id, install_id) DO NOTHING;
    SELECT l.change_seq INTO v_seq FROM ext_storage_install_locks l WHERE l.tenant_id = p_tenant_id AND l.install_id = p_install_id FOR UPDATE;
  END IF;
  -- I2: one instant, after the lock.
  v_now := clock_timestamp();

  -- The live targets of the ops and the checks, each found by its primary key. An increment's
  -- target also brings its value and metadata (the ops come last: their entry wins for a key that
  -- is also checked).
  SELECT coalesce(jsonb_object_agg(t.namespace || '/' || t.key, jsonb_build_object(
           'revision', t.revision, 'bytes', t.value_bytes + t.metadata_bytes, 'expiresAt', t.ttl_expires_at,
           'createdAt', t.created_at)
           || CASE WHEN e.op->>'kind' = 'increment' THEN jsonb_build_object('value', t.value, 'metadata', t.metadata,
                                                                         'metadataBytes', t.metadata_bytes) ELSE '{}' END
           ORDER BY e.n), '{}')
    INTO v_targets
    FROM jsonb_array_elements(CASE WHEN jsonb_array_length(v_checks) > 0 THEN v_checks || v_ops ELSE v_ops END) WITH ORDINALITY AS e(op, n)
    CROSS JOIN LATERAL (${RECORD_OF('e.op')}) t
   WHERE ext_storage_is_live(t.ttl_expires_at, v_now);

  -- A commit's checks: every one that fails, in input order (0 = no live record, n = live at n).
  IF jsonb_array_length(v_checks) > 0 THEN
    SELECT jsonb_agg(jsonb_build_object('index', c.n - 1, 'namespace', c.op->>'namespace', 'key', c.op->>'key',
                                        'expected', (c.op->>'revision')::bigint, 'current', (${TARGET('c.op')}->>'revision')::int)
                     ORDER BY c.n)
      INTO v_conflicts
      FROM jsonb_array_elements(v_checks) WITH ORDINALITY AS c(op, n)
     WHERE (c.op->>'revision')::bigint IS DISTINCT FROM coalesce((${TARGET('c.op')}->>'revision')::bigint, 0);
    IF v_conflicts IS NOT NULL THEN
      RETURN jsonb_build_object('error', 'conflict', 'conflicts', v_conflicts);
    END IF;
  END IF;

  -- Revisions: the first item, in input order, whose ifRevision does not match.
  SELECT e.n - 1 AS i, e.op, (${TARGET('e.op')}->>'revision')::int AS current INTO v_fail
    FROM jsonb_array_elements(v_ops) WITH ORDINALITY AS e(op, n)
   WHERE NOT ext_storage_revision_matches((e.op->>'ifRevision')::bigint, (${TARGET('e.op')}->>'revision')::int)
   ORDER BY e.n LIMIT 1;
  IF FOUND THEN
    RETURN jsonb_build_object('error', 'revision', 'index', v_fail.i, 'namespace', v_fail.op->>'namespace', 'key', v_fail.op->>'key',
                              'expected', (v_fail.op->>'ifRevision')::bigint, 'current', v_fail.current);
  END IF;

  -- Increments: the stored value must be a number (a missing record is 0); exact decimal sum,
  -- bounded. Each becomes the put of its result, keeping the record's metadata, so every later
  -- stage (schema, quotas, apply, audit, counters) treats it as a put.
  IF v_ops @> '[{"kind": "increment"}]' THEN
    FOR i IN 0 .. v_count - 1 LOOP
      v_op := v_ops->i;
      CONTINUE WHEN v_op->>'kind' <> 'increment';
      v_target := ${TARGET('v_op')};
      IF v_target IS NOT NULL AND jsonb_typeof(v_target->'value') <> 'number' THEN
        RETURN jsonb_build_object('error', 'valueType', 'reason', 'type', 'type', jsonb_typeof(v_target->'value'), 'index', i, 'key', v_op->>'key');
      END IF;
      v_sum := trim_scale(coalesce((v_target->>'value')::numeric, 0) + (v_op->>'by')::numeric);
      IF abs(v_sum) > (p_request->>'bound')::numeric THEN
        RETURN jsonb_build_object('error', 'valueType', 'reason', 'bound', 'index', i, 'key', v_op->>'key');
      END IF;
      v_value := to_jsonb(v_sum);
      -- A result validated in an earlier call of this transaction must be the one applied.
      IF p_request->'seen' ? i::text AND p_request->'seen'->(i::text) <> v_value THEN
        RETURN jsonb_build_object('error', 'moved');
      END IF;
      v_computed := v_computed || jsonb_build_object(i::text, v_value);
      v_ops := jsonb_set(v_ops, ARRAY[i::text], v_op || jsonb_build_object(
        'kind', 'put', 'value', v_value, 'metadata', coalesce(v_target->'metadata', '{}'),
        'valueBytes', octet_length(v_value::text), 'metadataBytes', coalesce((v_target->>'metadataBytes')::int, 2)));
    END LOOP;
  END IF;

  -- Schema: each version the values were validated against must still be the active one.
  FOR v_schema IN SELECT * FROM jsonb_array_elements(p_request->'schemas') LOOP
    SELECT max(s.version) INTO v_active FROM ext_storage_schemas s
     WHERE s.tenant_id = p_tenant_id AND s.install_id = p_install_id AND s.namespace = v_schema->>'namespace';
    IF v_active IS DISTINCT FROM (v_schema->>'version')::int THEN
      RETURN jsonb_build_object('error', 'schema-changed', 'namespace', v_schema->>'namespace', 'active', v_active);
    END IF;
  END LOOP;
  -- A probe stops here: what the increments computed, for the gateway to validate (write.ts).
  IF (p_request->>'probe')::boolean THEN
    RETURN jsonb_build_object('probe', true, 'increments', v_computed);
  END IF;
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

  -- A dry run: every decision is made; the answer is what the write would give, and nothing is applied.
  IF (p_request->>'dryRun')::boolean THEN
    RETURN jsonb_build_object('ok', true, 'swept', 0, 'results', ${RESULTS},
      'usage', jsonb_build_object('namespaces', jsonb_build_array(v_live_before, v_live_after),
                                  'bytes', jsonb_build_array(v_bytes_before, v_bytes_before + v_bytes_delta), 'keys', '{}'::jsonb));
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
    RETURNING r.namespace, r.key, (r.value_bytes + r.metadata_bytes)::bigint AS bytes, r.ttl_expires_at, r.revision INTO v_row;
    IF FOUND THEN
      v_gone := v_gone || jsonb_build_array(jsonb_build_object('namespace', v_row.namespace, 'key', v_row.key, 'bytes', v_row.bytes,
                                                               'expiresAt', v_row.ttl_expires_at, 'revision', v_row.revision));
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
         (e.op->>'metadataBytes')::int, ${NEXT_REVISION('e.op')}, (e.op->>'schemaVersion')::int, ${EXPIRES('e.op')},
         ${CREATED_AT('e.op')}, ${UPDATED_AT('e.op')}
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

  -- The change feed: one change per expired record removed, then one per changed record in input
  -- order, numbered on from the install's sequence. The sequence lives on the lock row this call
  -- holds until its transaction ends, so a number is taken only after every smaller one committed
  -- or rolled back (and then reused): numbers are in commit order, and a consumer that has read up
  -- to n never misses a later commit (docs/change-feed.md).
  INSERT INTO ext_storage_changes (tenant_id, install_id, seq, namespace, key, operation, revision, actor, at)
  SELECT p_tenant_id, p_install_id, v_seq + row_number() OVER (ORDER BY c.grp, c.n), c.namespace, c.key, c.operation, c.revision, c.actor, v_now
    FROM (SELECT 0 AS grp, g.n, g.x->>'namespace' AS namespace, g.x->>'key' AS key, 'expire' AS operation,
                 (g.x->>'revision')::int AS revision, 'system' AS actor
            FROM jsonb_array_elements(v_gone) WITH ORDINALITY AS g(x, n)
          UNION ALL
          SELECT 1, e.n, e.op->>'namespace', e.op->>'key', CASE WHEN e.op->>'kind' = 'put' THEN 'put' ELSE 'delete' END,
                 CASE WHEN e.op->>'kind' = 'put' THEN ${NEXT_REVISION('e.op')} ELSE (${TARGET('e.op')}->>'revision')::int END,
                 p_request->>'actor'
            FROM jsonb_array_elements(v_ops) WITH ORDINALITY AS e(op, n)
           WHERE e.op->>'kind' = 'put' OR ${TARGET('e.op')} IS NOT NULL) c;
  GET DIAGNOSTICS v_changed = ROW_COUNT;
  v_old := v_now - make_interval(secs => (p_request->>'changesRetentionSeconds')::double precision);
  -- Retention: the install's oldest changes past it, a bounded batch (more than this call adds),
  -- removed as one range of the primary key; the lock row remembers how far (a cursor before that
  -- point has lost a change: CURSOR_EXPIRED).
  -- The batch is the oldest changes by number (one plan: a range of the primary key), cut before
  -- the first one still inside the retention window.
  SELECT CASE WHEN bool_and(o.at < v_old) THEN max(o.seq) ELSE min(o.seq) FILTER (WHERE o.at >= v_old) - 1 END, min(o.seq)
    INTO v_cut, v_first
    FROM (SELECT c.seq, c.at FROM ext_storage_changes c
           WHERE c.tenant_id = p_tenant_id AND c.install_id = p_install_id
           ORDER BY c.seq LIMIT 2 * v_changed + 10) o;
  IF v_cut < v_first THEN v_cut := NULL; END IF;
  IF v_cut IS NOT NULL THEN
    DELETE FROM ext_storage_changes WHERE tenant_id = p_tenant_id AND install_id = p_install_id AND seq <= v_cut;
  END IF;
  IF v_changed > 0 OR v_cut IS NOT NULL THEN
    UPDATE ext_storage_install_locks
       SET change_seq = change_seq + v_changed, changes_pruned_seq = greatest(changes_pruned_seq, coalesce(v_cut, 0))
     WHERE tenant_id = p_tenant_id AND install_id = p_install_id;
    v_seq := v_seq + v_changed;
  END IF;

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

  RETURN jsonb_build_object('ok', true, 'swept', jsonb_array_length(v_gone), 'seq', v_seq,
    'results', ${RESULTS},
    'usage', jsonb_build_object('namespaces', jsonb_build_array(v_live_before, v_live_after),
                                'bytes', jsonb_build_array(v_bytes_before, v_bytes_before + v_bytes_delta),
                                'keys', (SELECT coalesce(jsonb_object_agg(k, jsonb_build_array(coalesce((v_usage->k->>0)::bigint, 0),
                                                     coalesce((v_usage->k->>0)::bigint, 0) + (v_keys_delta->>k)::int)), '{}')
                                           FROM jsonb_object_keys(v_keys_delta) k)));
END
$fn$`;
}
