import { sql, type Kysely } from 'kysely';
import { hasCitus } from '../src/db/citus.js';
import { BATCH_FUNCTION as BATCH_FUNCTION_007 } from './007_write_set_based.js';
import { WRITE_FUNCTION as WRITE_FUNCTION_009 } from './009_change_feed.js';

/**
 * A batch of combined writes runs as one write (issue 12; docs/write-combining.md, "Merged
 * batches"). Until now ext_storage_write_batch_v1 ran its requests one after another, each a whole
 * call of ext_storage_write_v1 (about 18 statements), so one busy install still wrote at the pace
 * of one call per request. Now the batch is taken in arrival order as runs of independent
 * requests, each run's ops go to the write function as one request, and the answer is split back
 * per request:
 *
 * - **Independent:** every request of a run is a plain write (no commit checks, no dry run, no
 *   probe or increment re-check, not refused by the schema stage, no restored records), they share
 *   one quota, and no record is named twice in the run (a request naming one the run already names
 *   starts the next run). Each op then meets the same stored target, revision check and schema
 *   check as it would one request at a time.
 * - **Quotas in arrival order:** a merged call also checks the usage with only the increases of
 *   its ops added (deletes and shrinking values ignored). If that is within every quota, so is the
 *   usage after any prefix of the run, and each request would have passed its own check; if not,
 *   the function answers `unmerged`.
 * - **Any refusal of the merged call** (a revision mismatch, a quota, a changed schema, a counter
 *   that is not a number, `unmerged`) is answered before anything is applied (I3), and that run
 *   then goes one request at a time, as before, so only the request at fault is refused.
 * - **Per request, as before:** its results; its audit events and changes carry its own actor,
 *   operation and request id (each op of a merged call brings them as `origin`); `seq` is the feed
 *   position just after its own changes (changes are numbered in op order); the first request of
 *   a run answers the run's sweep and usage move, the others none (quota-pressure metrics see the
 *   run's move once, as they would see its requests' moves one by one).
 *
 * The write function is migration 009's text with five edits, each made exactly once (a migration
 * is a snapshot: 009's text never changes, so neither does this).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql.raw(WRITE_FUNCTION()).execute(db);
  // CREATE OR REPLACE resets the function's settings: migration 007's generic plans again.
  if (!(await hasCitus(db))) await sql.raw(`ALTER FUNCTION ${ENTRY_POINT} SET plan_cache_mode = force_generic_plan`).execute(db);
  await sql.raw(BATCH_FUNCTION).execute(db);
}

/** Back to migrations 007's batch function and 009's write function (CREATE OR REPLACE keeps Citus's distribution). */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql.raw(BATCH_FUNCTION_007).execute(db);
  await sql.raw(WRITE_FUNCTION_009()).execute(db);
  if (!(await hasCitus(db))) await sql.raw(`ALTER FUNCTION ${ENTRY_POINT} SET plan_cache_mode = force_generic_plan`).execute(db);
}

const ENTRY_POINT = 'ext_storage_write_v1(uuid, uuid, jsonb)';

/** `text` with `from` replaced by `to`; `from` must occur exactly once. */
function edit(text: string, from: string, to: string): string {
  const at = text.indexOf(from);
  if (at < 0 || text.indexOf(from, at + 1) >= 0) throw new Error(`migration 010: the edit of ${JSON.stringify(from.slice(0, 60))} does not match once`);
  return text.slice(0, at) + to + text.slice(at + from.length);
}

/** The live target of an item, as migration 009 writes it. */
const TARGET = `v_targets->((e.op->>'namespace') || '/' || (e.op->>'key'))`;
const NEW_BYTES = `((e.op->>'valueBytes')::bigint + (e.op->>'metadataBytes')::bigint)`;

/** A merged call's quota check in arrival order (see the top comment). */
const MERGED_QUOTA_CHECK = `  -- A merged batch (ext_storage_write_batch_v1): each of its requests must pass its own quota check
  -- in arrival order. It does when the usage with only the increases added is within every quota;
  -- otherwise the run goes one request at a time.
  IF (p_request->>'merged')::boolean THEN
    SELECT count(*) FILTER (WHERE a.keys > 0),
           coalesce(bool_or(a.grown > 0 AND a.keys > (v_quota->>'keys')::bigint), false),
           coalesce(sum(a.bytes), 0)
      INTO v_live_grown, v_keys_over, v_bytes_grown
      FROM (SELECT n.ns, sum(n.keys) AS keys, sum(n.grown) AS grown, sum(n.bytes) AS bytes
              FROM (SELECT u.ns, coalesce((v_usage->u.ns->>0)::bigint, 0) AS keys, 0 AS grown, 0 AS bytes
                      FROM jsonb_object_keys(v_usage) AS u(ns)
                    UNION ALL
                    SELECT e.op->>'namespace', c.grown, c.grown,
                           greatest(CASE WHEN e.op->>'kind' = 'put' THEN ${NEW_BYTES} ELSE 0 END - coalesce((${TARGET}->>'bytes')::bigint, 0), 0)
                      FROM jsonb_array_elements(v_ops) AS e(op)
                     CROSS JOIN LATERAL (SELECT CASE WHEN e.op->>'kind' = 'put' AND ${TARGET} IS NULL THEN 1 ELSE 0 END AS grown) c) n
             GROUP BY n.ns) a;
    IF v_keys_over OR (v_bytes_grown > 0 AND v_bytes_before + v_bytes_grown > (v_quota->>'bytes')::bigint)
       OR (v_live_grown > v_live_before AND v_live_grown > (v_quota->>'namespaces')::bigint) THEN
      RETURN jsonb_build_object('error', 'unmerged');
    END IF;
  END IF;

`;

/** Migration 009's write function, with each op's `origin` (actor, operation, request id) and the merged quota check. */
export function WRITE_FUNCTION(): string {
  let text = WRITE_FUNCTION_009();
  text = edit(text, `  v_old timestamptz;\nBEGIN`, `  v_old timestamptz;\n  v_live_grown bigint;\n  v_keys_over boolean;\n  v_bytes_grown bigint;\nBEGIN`);
  text = edit(text, `  -- A dry run: every decision is made;`, `${MERGED_QUOTA_CHECK}  -- A dry run: every decision is made;`);
  // The audit events of the ops.
  text = edit(
    text,
    `e.op->>'key', p_request->>'operation',`,
    `e.op->>'key', coalesce(e.op->'origin'->>'operation', p_request->>'operation'),`,
  );
  text = edit(
    text,
    `         p_request->>'actor', p_request->>'requestId', v_now\n    FROM jsonb_array_elements(v_ops) WITH ORDINALITY AS e(op, n)`,
    `         coalesce(e.op->'origin'->>'actor', p_request->>'actor'),\n` +
      `         CASE WHEN e.op ? 'origin' THEN e.op->'origin'->>'requestId' ELSE p_request->>'requestId' END, v_now\n` +
      `    FROM jsonb_array_elements(v_ops) WITH ORDINALITY AS e(op, n)`,
  );
  // The changes of the ops.
  text = edit(
    text,
    `                 p_request->>'actor'\n            FROM jsonb_array_elements(v_ops) WITH ORDINALITY AS e(op, n)`,
    `                 coalesce(e.op->'origin'->>'actor', p_request->>'actor')\n            FROM jsonb_array_elements(v_ops) WITH ORDINALITY AS e(op, n)`,
  );
  return text;
}

/**
 * The batch, in arrival order, as runs of independent requests: a request joins the current run
 * when it is a plain write with the run's quota and names no record the run names; otherwise the
 * run goes (merged when it holds more than one request; one request at a time when the merged call
 * is refused) and the request starts the next run, or, when it is not a plain write, goes alone.
 * Only the batch's first request sweeps (migration 007). A merged answer is marked `merged` (tests
 * see it; the gateway reads nothing else from it).
 */
const BATCH_FUNCTION = `CREATE OR REPLACE FUNCTION ext_storage_write_batch_v1(p_tenant_id uuid, p_install_id uuid, p_requests jsonb) RETURNS jsonb
  LANGUAGE plpgsql AS $fn$
DECLARE
  v_answers jsonb := '[]';
  v_request jsonb;
  v_run jsonb := '[]';
  v_run_keys jsonb := '{}';
  v_keys jsonb;
  v_plain boolean;
  v_answer jsonb;
BEGIN
  -- One pass more than there are requests: the last (v_request null) sends the run left over.
  FOR i IN 0 .. jsonb_array_length(p_requests) LOOP
    v_request := p_requests->i;
    IF v_request IS NOT NULL THEN
      IF i > 0 THEN v_request := jsonb_set(v_request, '{sweep}', '0'); END IF;
      SELECT count(*) = count(DISTINCT o.k) AND NOT coalesce(bool_or(o.op ? 'restore'), false), coalesce(jsonb_object_agg(o.k, true), '{}')
        INTO v_plain, v_keys
        FROM (SELECT e.value AS op, (e.value->>'namespace') || '/' || (e.value->>'key') AS k FROM jsonb_array_elements(v_request->'ops') AS e) o;
      v_plain := v_plain AND jsonb_array_length(coalesce(v_request->'checks', '[]')) = 0 AND NOT coalesce((v_request->>'dryRun')::boolean, false)
                 AND NOT coalesce((v_request->>'probe')::boolean, false) AND NOT coalesce((v_request->>'invalid')::boolean, false)
                 AND NOT v_request ? 'seen';
      IF v_plain AND (jsonb_array_length(v_run) = 0
                      OR (v_request->'quota' = v_run->0->'quota' AND NOT v_run_keys ?| ARRAY(SELECT jsonb_object_keys(v_keys)))) THEN
        v_run := v_run || jsonb_build_array(v_request);
        v_run_keys := v_run_keys || v_keys;
        CONTINUE;
      END IF;
    END IF;
    -- The run goes: merged, or one request at a time.
    v_answer := NULL;
    IF jsonb_array_length(v_run) > 1 THEN
      v_answer := ext_storage_write_v1(p_tenant_id, p_install_id, (v_run->0) || jsonb_build_object(
        'merged', true,
        'ops', (SELECT coalesce(jsonb_agg(o.value || jsonb_build_object('origin', jsonb_build_object(
                         'actor', r.value->'actor', 'operation', r.value->'operation', 'requestId', r.value->'requestId')) ORDER BY r.n, o.n), '[]')
                  FROM jsonb_array_elements(v_run) WITH ORDINALITY AS r(value, n)
                 CROSS JOIN LATERAL jsonb_array_elements(r.value->'ops') WITH ORDINALITY AS o(value, n)),
        -- Each namespace's expected version once (the function reads the active version per entry).
        'schemas', (SELECT coalesce(jsonb_agg(DISTINCT s.value), '[]')
                      FROM jsonb_array_elements(v_run) AS r(value)
                     CROSS JOIN LATERAL jsonb_array_elements(coalesce(r.value->'schemas', '[]')) AS s(value))));
    END IF;
    IF (v_answer->>'ok')::boolean THEN
      -- Each request's slice of the results; its seq is the run's less the changes of the requests after it.
      v_answers := v_answers || (
        SELECT jsonb_agg(jsonb_build_object('ok', true, 'merged', true,
                 'swept', CASE WHEN p.n = 1 THEN v_answer->'swept' ELSE '0'::jsonb END,
                 'seq', (v_answer->>'seq')::bigint - p.later,
                 'results', p.results,
                 'usage', CASE WHEN p.n = 1 THEN v_answer->'usage'
                               ELSE jsonb_build_object('namespaces', jsonb_build_array(v_answer->'usage'->'namespaces'->1, v_answer->'usage'->'namespaces'->1),
                                                       'bytes', jsonb_build_array(v_answer->'usage'->'bytes'->1, v_answer->'usage'->'bytes'->1),
                                                       'keys', '{}'::jsonb) END)
                 ORDER BY p.n)
          FROM (SELECT q.n, q.results, coalesce(sum(q.changed) OVER (ORDER BY q.n ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0) AS later
                  FROM (SELECT r.n, coalesce(jsonb_agg(x.value ORDER BY x.n) FILTER (WHERE x.n IS NOT NULL), '[]') AS results,
                               count(x.n) FILTER (WHERE NOT (x.value ? 'deleted') OR (x.value->>'deleted')::boolean) AS changed
                          FROM (SELECT r.n, jsonb_array_length(r.value->'ops') AS len,
                                       sum(jsonb_array_length(r.value->'ops')) OVER (ORDER BY r.n) AS upto
                                  FROM jsonb_array_elements(v_run) WITH ORDINALITY AS r(value, n)) r
                          LEFT JOIN jsonb_array_elements(v_answer->'results') WITH ORDINALITY AS x(value, n)
                            ON x.n > r.upto - r.len AND x.n <= r.upto
                         GROUP BY r.n) q) p);
    ELSE
      FOR n IN 0 .. jsonb_array_length(v_run) - 1 LOOP
        v_answers := v_answers || jsonb_build_array(ext_storage_write_v1(p_tenant_id, p_install_id, v_run->n));
      END LOOP;
    END IF;
    v_run := '[]';
    v_run_keys := '{}';
    -- The request that ended the run starts the next one, or goes alone.
    IF v_request IS NOT NULL THEN
      IF v_plain THEN
        v_run := jsonb_build_array(v_request);
        v_run_keys := v_keys;
      ELSE
        v_answers := v_answers || jsonb_build_array(ext_storage_write_v1(p_tenant_id, p_install_id, v_request));
      END IF;
    END IF;
  END LOOP;
  RETURN v_answers;
END
$fn$`;
