import { sql, type Kysely } from 'kysely';
import { hasCitus } from '../src/db/citus.js';
import { BATCH_FUNCTION as BATCH_FUNCTION_007 } from './007_write_set_based.js';
import { WRITE_FUNCTION as WRITE_FUNCTION_009 } from './009_change_feed.js';

/**
 * A batch of combined writes runs as one write (issue 12; docs/write-combining.md, "Merged
 * batches"). Until now ext_storage_write_batch_v1 ran its requests one after another, each a whole
 * call of ext_storage_write_v1 (about 18 statements), so one busy install still wrote at the pace
 * of one call per request. Now, when the batch's requests are independent, their ops go to the
 * write function as one request, and the answer is split back per request:
 *
 * - **Independent:** every request is a plain write (no commit checks, no dry run, no probe or
 *   increment re-check, not refused by the schema stage, no restored records), they share one
 *   quota, and no record is named twice in the batch. Each op then meets the same stored target,
 *   revision check and schema check as it would one request at a time, whatever the order.
 * - **Quotas in arrival order:** a merged call also checks the usage with only the increases of
 *   its ops added (deletes and shrinking values ignored). If that is within every quota, so is the
 *   usage after any prefix of the batch, and each request would have passed its own check; if not,
 *   the function answers `unmerged`.
 * - **Any refusal of the merged call** (a revision mismatch, a quota, a changed schema, a counter
 *   that is not a number, `unmerged`) is answered before anything is applied (I3), and the batch
 *   then runs one request at a time, as before, so only the request at fault is refused.
 * - **Per request, as before:** its results; its audit events and changes carry its own actor,
 *   operation and request id (each op of a merged call brings them as `origin`); `seq` is the feed
 *   position just after its own changes (changes are numbered in op order); the first request
 *   answers the batch's sweep and usage move, the others none (quota-pressure metrics see the
 *   batch's move once, as they would see its requests' moves one by one).
 *
 * The write function is migration 009's text with four edits, each made exactly once (a migration
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
  -- otherwise the batch runs one request at a time.
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
 * The batch: merged when its requests are independent (top comment), else (or when the merged call
 * is refused) one request at a time, exactly as migration 007's. A merged answer is marked
 * `merged` (tests and metrics see it; the gateway reads nothing else from it).
 */
const BATCH_FUNCTION = `CREATE OR REPLACE FUNCTION ext_storage_write_batch_v1(p_tenant_id uuid, p_install_id uuid, p_requests jsonb) RETURNS jsonb
  LANGUAGE plpgsql AS $fn$
DECLARE
  v_answers jsonb := '[]';
  v_request jsonb;
  v_n bigint;
  v_answer jsonb;
BEGIN
  IF jsonb_array_length(p_requests) > 1
     AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p_requests) AS r(value)
                      WHERE jsonb_array_length(coalesce(r.value->'checks', '[]')) > 0 OR coalesce((r.value->>'dryRun')::boolean, false)
                         OR coalesce((r.value->>'probe')::boolean, false) OR coalesce((r.value->>'invalid')::boolean, false)
                         OR r.value ? 'seen' OR r.value->'quota' IS DISTINCT FROM p_requests->0->'quota')
     AND (SELECT count(*) = count(DISTINCT (o.value->>'namespace') || '/' || (o.value->>'key')) AND NOT coalesce(bool_or(o.value ? 'restore'), false)
            FROM jsonb_array_elements(p_requests) AS r(value) CROSS JOIN LATERAL jsonb_array_elements(r.value->'ops') AS o(value)) THEN
    v_answer := ext_storage_write_v1(p_tenant_id, p_install_id, (p_requests->0) || jsonb_build_object(
      'merged', true,
      'ops', (SELECT coalesce(jsonb_agg(o.value || jsonb_build_object('origin', jsonb_build_object(
                       'actor', r.value->'actor', 'operation', r.value->'operation', 'requestId', r.value->'requestId')) ORDER BY r.n, o.n), '[]')
                FROM jsonb_array_elements(p_requests) WITH ORDINALITY AS r(value, n)
               CROSS JOIN LATERAL jsonb_array_elements(r.value->'ops') WITH ORDINALITY AS o(value, n)),
      'schemas', (SELECT coalesce(jsonb_agg(s.value), '[]')
                    FROM jsonb_array_elements(p_requests) AS r(value)
                   CROSS JOIN LATERAL jsonb_array_elements(coalesce(r.value->'schemas', '[]')) AS s(value))));
    IF (v_answer->>'ok')::boolean THEN
      -- Each request's slice of the results; its seq is the batch's less the changes of the requests after it.
      RETURN (SELECT jsonb_agg(jsonb_build_object('ok', true, 'merged', true,
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
                                FROM jsonb_array_elements(p_requests) WITH ORDINALITY AS r(value, n)) r
                        LEFT JOIN jsonb_array_elements(v_answer->'results') WITH ORDINALITY AS x(value, n)
                          ON x.n > r.upto - r.len AND x.n <= r.upto
                       GROUP BY r.n) q) p);
    END IF;
  END IF;
  FOR v_request, v_n IN SELECT r.value, r.n FROM jsonb_array_elements(p_requests) WITH ORDINALITY AS r(value, n) ORDER BY r.n LOOP
    IF v_n > 1 THEN v_request := jsonb_set(v_request, '{sweep}', '0'); END IF;
    v_answers := v_answers || jsonb_build_array(ext_storage_write_v1(p_tenant_id, p_install_id, v_request));
  END LOOP;
  RETURN v_answers;
END
$fn$`;
