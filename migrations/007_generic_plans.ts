import { sql, type Kysely } from 'kysely';
import { hasCitus } from '../src/db/citus.js';

/**
 * The write and usage functions plan their statements once per session (issue 12). PL/pgSQL
 * statements with parameters are planned again on every call while PostgreSQL judges a custom plan
 * cheaper than the generic one, and for these statements it always does: planning was about two
 * thirds of a put's database time (777 µs per put, 240 µs with generic plans: a DO loop of 1,000
 * puts on an install of 20,000 records). Every statement here is keyed by tenant and install and
 * looks rows up by primary key or by the expiry index, so one plan fits every call. The setting
 * holds for the call and the functions it calls.
 *
 * Not on Citus: its planner builds no distributed plan for a generic plan of these statements
 * ("could not create distributed plan"; it defers pruning only for simple router queries), so
 * there every call is planned, as before.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  if (await hasCitus(db)) return;
  for (const fn of FUNCTIONS) await sql.raw(`ALTER FUNCTION ${fn} SET plan_cache_mode = force_generic_plan`).execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  if (await hasCitus(db)) return;
  for (const fn of FUNCTIONS) await sql.raw(`ALTER FUNCTION ${fn} RESET plan_cache_mode`).execute(db);
}

const FUNCTIONS = [
  'ext_storage_write_v1(uuid, uuid, jsonb)',
  'ext_storage_write_batch_v1(uuid, uuid, jsonb)',
  'ext_storage_usage_v1(uuid, uuid)',
  'ext_storage_live_usage(uuid, uuid, timestamptz)',
];
