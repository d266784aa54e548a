/**
 * On PostgreSQL every parameterised statement runs as a named prepared statement, parsed and
 * planned once per connection (src/db/database.ts). PGlite has no such client: skipped there.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backend, openTestDatabase, type TestDatabase } from '../support/db.js';

describe.skipIf(backend !== 'postgres')('named prepared statements on PostgreSQL', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    // One connection, so pg_prepared_statements (per session) sees everything this file sends.
    t = await openTestDatabase([], 1);
  });
  afterAll(async () => {
    await t?.dispose();
  });

  const prepared = async () => {
    const { rows } = await sql<{ name: string; statement: string }>`SELECT name, statement FROM pg_prepared_statements`.execute(t.handle.db);
    return rows;
  };

  it('names a parameterised statement once and reuses it; statements without parameters stay unnamed', async () => {
    const text = (n: number) => sql<{ v: number }>`SELECT ${n}::int + 1 AS v`;
    expect((await text(1).execute(t.handle.db)).rows).toEqual([{ v: 2 }]);
    expect((await text(41).execute(t.handle.db)).rows).toEqual([{ v: 42 }]);
    const ours = (await prepared()).filter((r) => r.statement.includes('::int + 1 AS v'));
    expect(ours).toHaveLength(1);
    expect(ours[0]!.name).toMatch(/^ext_storage_[A-Za-z0-9_-]+$/);
    await sql`SELECT 7 AS unparameterised_marker`.execute(t.handle.db);
    expect((await prepared()).some((r) => r.statement.includes('unparameterised_marker'))).toBe(false);
  });

  it('keeps answering correctly past the per-connection cap of named statements', async () => {
    for (let i = 0; i < 300; i++) {
      const { rows } = await sql<{ v: number }>`SELECT ${i}::int * ${sql.lit(3)} + ${sql.lit(i)} AS v`.execute(t.handle.db);
      expect(rows[0]!.v).toBe(i * 3 + i);
    }
    expect((await prepared()).length).toBeLessThanOrEqual(256);
  });

  it('a statement that fails keeps failing the same way, and the connection stays usable', async () => {
    const bad = () => sql`SELECT ${'x'}::int AS v`.execute(t.handle.db);
    await expect(bad()).rejects.toMatchObject({ code: '22P02' });
    await expect(bad()).rejects.toMatchObject({ code: '22P02' });
    expect((await sql<{ v: number }>`SELECT ${5}::int AS v`.execute(t.handle.db)).rows).toEqual([{ v: 5 }]);
  });
});
