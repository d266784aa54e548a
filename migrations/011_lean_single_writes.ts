import { sql, type Kysely } from 'kysely';
import { hasCitus } from '../src/db/citus.js';
import { WRITE_FUNCTION as WRITE_FUNCTION_010 } from './010_merged_batches.js';

/**
 * Fewer statements per write call (issue 12: a single put spent ~510 µs in the write function, most
 * of it the executor start-up of ~20 statements that each did little). Same request, answers and
 * invariants I1–I4 as migration 010; only statements that could not change anything are skipped:
 *
 * - **Live usage in the call's own statement.** The quota stage read it through
 *   ext_storage_live_usage (a second PL/pgSQL function, its own RETURN QUERY and tuple store per
 *   call). The rule's text is now written once, here (`LIVE_USAGE`), and both the function (for
 *   any other caller) and the write function are built from it. The write function's copy also
 *   sums the install's expired records (the ones the counters still hold: `expired`).
 * - **The sweep only when something is expired.** The counters and expiry buckets are exact under
 *   the install's lock (I4), so when the usage finds no expired record of the install the sweep's
 *   read (the install's oldest expired records and the expired targets) cannot find one and is
 *   skipped. The targets read already meets each target: it now also notes whether one of them is
 *   expired, and the sweep runs then too, whatever the counters say.
 * - **Fewer statements in the checks.** The schema versions are checked in one statement (the first
 *   expected version that is not the active one), not one per namespace; the quota deltas also give
 *   the live namespace count after the write (the namespaces whose live keys cross zero) and whether
 *   a namespace goes over its key quota, so the search for the item at fault runs only then.
 * - **The revision check only when an op names a revision** (a null `ifRevision` always matches).
 * - **The deletes' loop only when the call deletes something** (a containment test on the ops).
 * - **Emptied counter and bucket rows are looked for only when a count went down.** A namespace
 *   or bucket row reaches zero keys only by a negative move, so a call that only adds keys (a
 *   create) or keeps them (an update in the same bucket) skips those two DELETEs.
 *
 * The write function is migration 010's text with the edits below, each made exactly once.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql.raw(LIVE_USAGE_FUNCTION).execute(db);
  await sql.raw(WRITE_FUNCTION()).execute(db);
  // CREATE OR REPLACE resets the function's settings: migration 007's generic plans again.
  if (!(await hasCitus(db))) await sql.raw(`ALTER FUNCTION ${ENTRY_POINT} SET plan_cache_mode = force_generic_plan`).execute(db);
}

/** Back to migration 010's write function; the usage function's text is 007's rule, unchanged, so it stays. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql.raw(WRITE_FUNCTION_010()).execute(db);
  if (!(await hasCitus(db))) await sql.raw(`ALTER FUNCTION ${ENTRY_POINT} SET plan_cache_mode = force_generic_plan`).execute(db);
}

const ENTRY_POINT = 'ext_storage_write_v1(uuid, uuid, jsonb)';

/**
 * Live usage per namespace of one install at an instant (migration 005's rule, run as migration
 * 007 runs it): stored counters - records of whole past expiry minutes - records of the whole past
 * seconds of this minute - expired records of this second; `expired` is what was taken off. The
 * bucket bounds (`minute`, `second`: ext_storage_expiry_bucket of the instant, 60 and 1 s wide)
 * are computed once by the caller (the bucket function is not inlined).
 */
function LIVE_USAGE(tenant: string, install: string, at: string, minute: string, second: string): string {
  return `WITH m AS MATERIALIZED (
         SELECT e.namespace, sum(e.keys) AS keys, sum(e.bytes) AS bytes
           FROM ext_storage_expiries e
          WHERE e.tenant_id = ${tenant} AND e.install_id = ${install}
            AND ((e.width = 60 AND e.bucket < ${minute}) OR (e.width = 1 AND e.bucket >= ${minute} AND e.bucket < ${second}))
          GROUP BY e.namespace
       ), c AS MATERIALIZED (
         SELECT x.namespace, count(*) AS keys, sum(x.bytes) AS bytes
           FROM (SELECT r.namespace, r.value_bytes + r.metadata_bytes AS bytes
                   FROM ext_storage_records r
                  WHERE r.tenant_id = ${tenant} AND r.install_id = ${install}
                    AND r.ttl_expires_at >= ${second} AND r.ttl_expires_at <= ${at}
                  ORDER BY r.ttl_expires_at) x
          GROUP BY x.namespace
       )
       SELECT n.namespace::text AS namespace,
              (n.key_count - coalesce(m.keys, 0) - coalesce(c.keys, 0))::bigint AS keys,
              (n.bytes - coalesce(m.bytes, 0) - coalesce(c.bytes, 0))::bigint AS bytes,
              (coalesce(m.keys, 0) + coalesce(c.keys, 0))::bigint AS expired
         FROM ext_storage_namespaces n
         LEFT JOIN m ON m.namespace = n.namespace
         LEFT JOIN c ON c.namespace = n.namespace
        WHERE n.tenant_id = ${tenant} AND n.install_id = ${install}`;
}

/** The same function as migration 007's (signature, answers), its query now from `LIVE_USAGE`. */
const LIVE_USAGE_FUNCTION = `CREATE OR REPLACE FUNCTION ext_storage_live_usage(p_tenant_id uuid, p_install_id uuid, p_at timestamptz)
     RETURNS TABLE (namespace text, keys bigint, bytes bigint)
     LANGUAGE plpgsql STABLE
     AS $$
     DECLARE
       v_minute timestamptz := ext_storage_expiry_bucket(p_at, 60::smallint);
       v_second timestamptz := ext_storage_expiry_bucket(p_at, 1::smallint);
     BEGIN
       RETURN QUERY
       SELECT u.namespace, u.keys, u.bytes FROM (${LIVE_USAGE('p_tenant_id', 'p_install_id', 'p_at', 'v_minute', 'v_second')}) u;
     END
     $$`;

/** `text` with `from` replaced by `to`; `from` must occur exactly once. */
function edit(text: string, from: string, to: string): string {
  const at = text.indexOf(from);
  if (at < 0 || text.indexOf(from, at + 1) >= 0) throw new Error(`migration 011: the edit of ${JSON.stringify(from.slice(0, 60))} does not match once`);
  return text.slice(0, at) + to + text.slice(at + from.length);
}

/** Migration 010's write function with the skips of the top comment. */
export function WRITE_FUNCTION(): string {
  let text = WRITE_FUNCTION_010();
  text = edit(
    text,
    `  v_bytes_grown bigint;\nBEGIN`,
    `  v_bytes_grown bigint;\n  v_expired bigint := 0;\n  v_expired_target boolean;\n  v_minute timestamptz;\n  v_second timestamptz;\n  v_ns_over boolean;\nBEGIN`,
  );
  // The expiry bucket bounds of the call's instant, once (for the live usage).
  text = edit(
    text,
    `  v_now := clock_timestamp();\n`,
    `  v_now := clock_timestamp();\n  v_minute := ext_storage_expiry_bucket(v_now, 60::smallint);\n  v_second := ext_storage_expiry_bucket(v_now, 1::smallint);\n`,
  );

  // The targets read: live targets as before, and whether any target is an expired record.
  text = edit(
    text,
    `           ORDER BY e.n), '{}')
    INTO v_targets
    FROM jsonb_array_elements(CASE WHEN jsonb_array_length(v_checks) > 0 THEN v_checks || v_ops ELSE v_ops END) WITH ORDINALITY AS e(op, n)`,
    `           ORDER BY e.n) FILTER (WHERE ext_storage_is_live(t.ttl_expires_at, v_now)), '{}'),
         coalesce(bool_or(NOT ext_storage_is_live(t.ttl_expires_at, v_now)), false)
    INTO v_targets, v_expired_target
    FROM jsonb_array_elements(CASE WHEN jsonb_array_length(v_checks) > 0 THEN v_checks || v_ops ELSE v_ops END) WITH ORDINALITY AS e(op, n)`,
  );
  text = edit(
    text,
    `    LIMIT 1) t
   WHERE ext_storage_is_live(t.ttl_expires_at, v_now);\n`,
    `    LIMIT 1) t;\n`,
  );

  // Live usage inline, with the install's expired records counted.
  text = edit(
    text,
    `  SELECT coalesce(jsonb_object_agg(u.namespace, jsonb_build_array(u.keys, u.bytes)), '{}'),
         count(*) FILTER (WHERE u.keys > 0), coalesce(sum(u.bytes), 0)
    INTO v_usage, v_live_before, v_bytes_before
    FROM ext_storage_live_usage(p_tenant_id, p_install_id, v_now) u;`,
    `  SELECT coalesce(jsonb_object_agg(u.namespace, jsonb_build_array(u.keys, u.bytes)), '{}'),
         count(*) FILTER (WHERE u.keys > 0), coalesce(sum(u.bytes), 0), coalesce(sum(u.expired), 0)
    INTO v_usage, v_live_before, v_bytes_before, v_expired
    FROM (${LIVE_USAGE('p_tenant_id', 'p_install_id', 'v_now', 'v_minute', 'v_second')}) u;`,
  );

  // The schema check in one statement: the first expected version that is not the active one.
  text = edit(
    text,
    `  FOR v_schema IN SELECT * FROM jsonb_array_elements(p_request->'schemas') LOOP
    SELECT max(s.version) INTO v_active FROM ext_storage_schemas s
     WHERE s.tenant_id = p_tenant_id AND s.install_id = p_install_id AND s.namespace = v_schema->>'namespace';
    IF v_active IS DISTINCT FROM (v_schema->>'version')::int THEN
      RETURN jsonb_build_object('error', 'schema-changed', 'namespace', v_schema->>'namespace', 'active', v_active);
    END IF;
  END LOOP;\n`,
    `  SELECT x.value, a.active INTO v_schema, v_active
    FROM jsonb_array_elements(p_request->'schemas') WITH ORDINALITY AS x(value, n)
   CROSS JOIN LATERAL (SELECT max(s.version) AS active FROM ext_storage_schemas s
                        WHERE s.tenant_id = p_tenant_id AND s.install_id = p_install_id AND s.namespace = x.value->>'namespace') a
   WHERE a.active IS DISTINCT FROM (x.value->>'version')::int
   ORDER BY x.n LIMIT 1;
  IF FOUND THEN
    RETURN jsonb_build_object('error', 'schema-changed', 'namespace', v_schema->>'namespace', 'active', v_active);
  END IF;\n`,
  );

  // The quota deltas also give the live namespace count after the write (the namespaces whose
  // live keys cross zero) and whether a namespace goes over its key quota (only then is it looked for).
  text = edit(
    text,
    `         coalesce(jsonb_object_agg(d.ns, d.first_new) FILTER (WHERE d.first_new IS NOT NULL), '{}')
    INTO v_keys_delta, v_bytes_delta, v_first_new
`,
    `         coalesce(jsonb_object_agg(d.ns, d.first_new) FILTER (WHERE d.first_new IS NOT NULL), '{}'),
         v_live_before + count(*) FILTER (WHERE b.before <= 0 AND b.before + d.keys > 0)
                       - count(*) FILTER (WHERE b.before > 0 AND b.before + d.keys <= 0),
         coalesce(bool_or(d.keys > 0 AND b.before + d.keys > (v_quota->>'keys')::bigint), false)
    INTO v_keys_delta, v_bytes_delta, v_first_new, v_live_after, v_ns_over
`,
  );
  text = edit(
    text,
    `           GROUP BY o.ns) d;
  SELECT count(*) INTO v_live_after FROM (
    SELECT coalesce((v_usage->n->>0)::bigint, 0) + coalesce((v_keys_delta->>n)::int, 0) AS keys
      FROM (SELECT jsonb_object_keys(v_usage || v_keys_delta) AS n) names) after WHERE after.keys > 0;
`,
    `           GROUP BY o.ns) d
   CROSS JOIN LATERAL (SELECT coalesce((v_usage->d.ns->>0)::bigint, 0) AS before) b;
`,
  );
  const KEYS_QUOTA = `  FOR v_ns IN SELECT jsonb_object_keys(v_keys_delta) LOOP\n`;
  text = edit(text, KEYS_QUOTA, `  IF v_ns_over THEN\n${KEYS_QUOTA}`);
  text = edit(
    text,
    `                                'used', coalesce((v_usage->v_ns->>0)::bigint, 0), 'index', v_index);
    END IF;
  END LOOP;\n`,
    `                                'used', coalesce((v_usage->v_ns->>0)::bigint, 0), 'index', v_index);
    END IF;
  END LOOP;
  END IF;\n`,
  );

  // The sweep: only when the install holds an expired record, or a target is one.
  const SWEEP_START = `  SELECT array_agg(d.namespace), array_agg(d.key) INTO v_list_ns, v_list_keys\n`;
  text = edit(text, SWEEP_START, `  IF (v_expired > 0 AND (p_request->>'sweep')::int > 0) OR v_expired_target THEN\n${SWEEP_START}`);
  text = edit(
    text,
    `           WHERE t.ttl_expires_at <= v_now) d;\n`,
    `           WHERE t.ttl_expires_at <= v_now) d;\n  END IF;\n`,
  );

  // The revision check: only when an op names a revision (a null ifRevision always matches).
  const REVISIONS = `  SELECT e.n - 1 AS i, e.op, (v_targets->((e.op->>'namespace') || '/' || (e.op->>'key'))->>'revision')::int AS current INTO v_fail\n`;
  text = edit(text, REVISIONS, `  IF v_ops @? '$[*] ? (@.ifRevision != null)' THEN\n${REVISIONS}`);
  text = edit(
    text,
    `                              'expected', (v_fail.op->>'ifRevision')::bigint, 'current', v_fail.current);
  END IF;\n`,
    `                              'expected', (v_fail.op->>'ifRevision')::bigint, 'current', v_fail.current);
  END IF;
  END IF;\n`,
  );

  // The deletes' loop: only when the call deletes.
  const DELETES = `  FOR v_row IN SELECT e.op->>'namespace' AS namespace, e.op->>'key' AS key FROM jsonb_array_elements(v_ops) AS e(op)`;
  text = edit(text, DELETES, `  IF v_ops @> '[{"kind": "delete"}]' THEN\n${DELETES}`);
  text = edit(
    text,
    `     WHERE r.tenant_id = p_tenant_id AND r.install_id = p_install_id AND r.namespace = v_row.namespace AND r.key = v_row.key;
  END LOOP;\n`,
    `     WHERE r.tenant_id = p_tenant_id AND r.install_id = p_install_id AND r.namespace = v_row.namespace AND r.key = v_row.key;
  END LOOP;
  END IF;\n`,
  );

  // Emptied counter and bucket rows: only after a negative move.
  text = edit(
    text,
    `    v_list_ns := ARRAY(SELECT m->>'namespace' FROM jsonb_array_elements(v_ns_moves) m);
    DELETE FROM ext_storage_namespaces
     WHERE tenant_id = p_tenant_id AND install_id = p_install_id AND namespace = ANY(v_list_ns) AND key_count = 0;\n`,
    `    IF jsonb_path_exists(v_ns_moves, '$[*] ? (@.keys < 0)') THEN
    v_list_ns := ARRAY(SELECT m->>'namespace' FROM jsonb_array_elements(v_ns_moves) m);
    DELETE FROM ext_storage_namespaces
     WHERE tenant_id = p_tenant_id AND install_id = p_install_id AND namespace = ANY(v_list_ns) AND key_count = 0;
    END IF;\n`,
  );
  text = edit(
    text,
    `    -- A bucket row is never at zero keys except when this call emptied it.
    SELECT array_agg(DISTINCT m.namespace), array_agg(DISTINCT m.bucket) INTO v_list_ns, v_buckets
      FROM jsonb_to_recordset(v_bucket_moves) AS m(namespace text, bucket timestamptz);
    DELETE FROM ext_storage_expiries
     WHERE tenant_id = p_tenant_id AND install_id = p_install_id AND namespace = ANY(v_list_ns) AND bucket = ANY(v_buckets) AND keys = 0;\n`,
    `    -- A bucket row is never at zero keys except when this call emptied it (by a negative move).
    IF jsonb_path_exists(v_bucket_moves, '$[*] ? (@.keys < 0)') THEN
    SELECT array_agg(DISTINCT m.namespace), array_agg(DISTINCT m.bucket) INTO v_list_ns, v_buckets
      FROM jsonb_to_recordset(v_bucket_moves) AS m(namespace text, bucket timestamptz);
    DELETE FROM ext_storage_expiries
     WHERE tenant_id = p_tenant_id AND install_id = p_install_id AND namespace = ANY(v_list_ns) AND bucket = ANY(v_buckets) AND keys = 0;
    END IF;\n`,
  );
  return text;
}
