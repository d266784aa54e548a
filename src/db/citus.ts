import { sql, type Kysely } from 'kysely';

export async function hasCitus(db: Kysely<unknown>): Promise<boolean> {
  const { rows } = await sql<{ present: boolean }>`
    SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') AS present`.execute(db);
  return rows[0]?.present === true;
}
