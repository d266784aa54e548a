#!/usr/bin/env node
// npm test: runs every test file on PGlite and on PostgreSQL (TEST_DATABASE_URL, default
// postgres://root@127.0.0.1:5432/postgres). Without a reachable PostgreSQL it runs the PGlite
// half and says so loudly, unless CI or REQUIRE_POSTGRES is set, in which case it fails.
import { spawnSync } from 'node:child_process';
import pg from 'pg';

const url = process.env.TEST_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/postgres';
let postgres = true;
try {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  await client.connect();
  await client.end();
} catch (error) {
  postgres = false;
  const required = process.env.CI === 'true' || process.env.REQUIRE_POSTGRES === '1';
  process.stderr.write(`\n!! PostgreSQL at ${url} is not reachable (${error.message}).\n`);
  if (required) {
    process.stderr.write('!! CI/REQUIRE_POSTGRES is set: failing.\n');
    process.exit(1);
  }
  process.stderr.write('!! Running the PGlite half of the suite only. Set TEST_DATABASE_URL to run both.\n\n');
}
const args = ['vitest', 'run', '--project', 'pglite', ...(postgres ? ['--project', 'postgres'] : []), ...process.argv.slice(2)];
const result = spawnSync('npx', args, { stdio: 'inherit' });
process.exit(result.status ?? 1);
