/**
 * The pool's timestamptz parser (src/db/timestamps.ts) gives exactly what pg's general parser
 * gives, for every value: the common UTC form is read directly, anything else is passed on.
 */
import { createRequire } from 'node:module';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseUtcTimestamp } from '../../src/db/timestamps.js';
import { backend, openTestDatabase, type TestDatabase } from '../support/db.js';

const general = pg.types.getTypeParser(1184, 'text') as (text: string) => unknown;
const fast = parseUtcTimestamp(general);
// pg's own parser, by its package name: the general one must be the one pg really uses.
const postgresDate = createRequire(import.meta.url)('postgres-date') as (text: string) => unknown;

const same = (text: string) => {
  const want = general(text);
  const got = fast(text);
  expect(got instanceof Date ? got.getTime() : got, text).toEqual(want instanceof Date ? want.getTime() : want);
  expect(typeof got).toBe(typeof want);
};

describe('the timestamptz parser', () => {
  it('pg parses timestamptz with postgres-date (the parser this one must match)', () => {
    expect(general('2026-11-30 09:50:12.5+00')).toEqual(postgresDate('2026-11-30 09:50:12.5+00'));
  });

  it('every fraction of 1 to 3 digits, and none', () => {
    same('2026-11-30 09:50:12+00');
    for (let digits = 1; digits <= 3; digits++) {
      for (let f = 0; f < 10 ** digits; f++) same(`2026-11-30 09:50:12.${String(f).padStart(digits, '0')}+00`);
    }
  });

  it('random instants with 4 to 6 fraction digits, across years 1000-9999', () => {
    for (let i = 0; i < 20_000; i++) {
      const at = new Date(Date.UTC(1000, 0, 1) + Math.floor(Math.random() * (Date.UTC(9999, 11, 31) - Date.UTC(1000, 0, 1))));
      const digits = 4 + (i % 3);
      const fraction = String(Math.floor(Math.random() * 10 ** digits)).padStart(digits, '0');
      same(`${at.toISOString().slice(0, 10)} ${at.toISOString().slice(11, 19)}.${fraction}+00`);
    }
  });

  it('anything else goes to the general parser: other zones, BC, infinity, short years, malformed text', () => {
    for (const text of [
      '2026-11-30 09:50:12.123456+02',
      '2026-11-30 09:50:12-07',
      '2026-11-30 09:50:12.5+05:30',
      '0999-01-01 00:00:00+00',
      '0044-03-15 12:00:00+00',
      '0044-03-15 12:00:00+00 BC',
      'infinity',
      '-infinity',
      '12026-11-30 09:50:12+00',
      '2026-11-30T09:50:12+00',
      '2026-11-30 09:50:12.+00',
      '2026-11-30 09:5x:12+00',
    ]) {
      same(text);
    }
  });
});

describe.runIf(backend === 'postgres')('on the pool', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await openTestDatabase();
  });
  afterAll(async () => {
    await t?.dispose();
  });

  it('timestamps read through the pool are the instants PostgreSQL holds, in any session zone', async () => {
    const db = t.handle.db;
    const { rows } = await sql<{ at: Date; ms: string }>`
      SELECT x AS at, (extract(epoch FROM x) * 1000)::numeric(20,3)::text AS ms
        FROM (VALUES (timestamptz '2026-11-30 09:50:12.123456+00'), (timestamptz '1999-12-31 23:59:59+00'),
                     (timestamptz '2026-06-01 00:00:00.5+03')) AS v(x)`.execute(db);
    for (const r of rows) expect(r.at.getTime()).toBe(Math.trunc(Number(r.ms)));
    // Another session zone: the text is no longer '+00', and the general parser reads it.
    await db.connection().execute(async (c) => {
      await sql`SET TIME ZONE 'Asia/Kolkata'`.execute(c);
      try {
        const { rows: zoned } = await sql<{ at: Date; text: string }>`
          SELECT timestamptz '2026-11-30 09:50:12.123+00' AS at, timestamptz '2026-11-30 09:50:12.123+00'::text AS text`.execute(c);
        expect(zoned[0]!.text).toBe('2026-11-30 15:20:12.123+05:30');
        expect(zoned[0]!.at.toISOString()).toBe('2026-11-30T09:50:12.123Z');
      } finally {
        await sql`RESET TIME ZONE`.execute(c);
      }
    });
  });
});
