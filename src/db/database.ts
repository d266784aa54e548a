/** The Kysely instance over pg (DATABASE_URL) or embedded PGlite; nothing else knows which. */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { Kysely, PostgresDialect, sql, type LogEvent } from 'kysely';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { PGliteDialect } from 'kysely-pglite-dialect';
import type { Config } from '../config.js';
import { tracing } from '../tracing/index.js';
import type { Database } from './tables.js';
import { parseUtcTimestamp } from './timestamps.js';

export type Db = Kysely<Database>;

export interface DatabaseHandle {
  db: Db;
  kind: 'postgres' | 'pglite';
  /** Pool figures for the metrics gauges (PGlite has one connection). */
  poolStats(): { total: number; idle: number; waiting: number };
  ping(): Promise<void>;
  close(): Promise<void>;
  /**
   * PostgreSQL: where a dedicated connection (the change feed's LISTEN, src/storage/feed-notifier.ts)
   * connects: DATABASE_DIRECT_URL, else DATABASE_URL. Never a transaction pooler.
   */
  connectionString?: string;
  /**
   * Runs work that needs one session across statements (migrations: a session-level lock): on the
   * pool, or over one connection to DATABASE_DIRECT_URL when the pool is transaction-pooled.
   */
  withSession<T>(run: (db: Db) => Promise<T>): Promise<T>;
}

export type QueryObserver = (event: LogEvent) => void;

const INT8_OID = 20;
const NUMERIC_OID = 1700;
const TIMESTAMPTZ_OID = 1184;
/** timestamptz: the common UTC form read directly, anything else by pg's own parser (src/db/timestamps.ts). */
const parseTimestamptz = parseUtcTimestamp(pg.types.getTypeParser(TIMESTAMPTZ_OID, 'text') as (text: string) => unknown);

/** Named statements one connection keeps at most; further texts run unnamed (parsed each time). */
const MAX_PREPARED_PER_CONNECTION = 256;

/**
 * A pg client that runs every parameterised statement as a named prepared statement (named by a
 * hash of its text), so PostgreSQL parses and plans each text once per connection instead of on
 * every call: the data layer's statements are fixed texts with bound parameters, and the write
 * statement is a large CTE whose parse and plan cost more than its execution. Statements without
 * parameters (BEGIN, COMMIT, DDL, migrations) stay unnamed.
 */
class PreparingClient extends pg.Client {
  private readonly prepared = new Map<string, string>();

  // pg's overloads are many; Kysely calls query(text, values), the only form named here.
  override query(...args: any[]): any {
    const [text, values] = args;
    if (typeof text === 'string' && Array.isArray(values) && values.length > 0 && args.length === 2) {
      let name = this.prepared.get(text);
      if (name === undefined && this.prepared.size < MAX_PREPARED_PER_CONNECTION) {
        name = `ext_storage_${createHash('sha1').update(text).digest('base64url')}`;
        this.prepared.set(text, name);
      }
      if (name !== undefined) return super.query({ name, text, values });
    }
    return (super.query as (...a: any[]) => any)(...args);
  }
}

/** What openDatabase reads of the configuration (poolMode defaults to session, the direct URL to DATABASE_URL). */
export interface DatabaseSettings {
  databaseUrl: string | undefined;
  databaseDirectUrl?: string | undefined;
  pgliteDir: string;
  db: Omit<Config['db'], 'poolMode'> & { poolMode?: Config['db']['poolMode'] };
}

function createPool(connectionString: string, db: DatabaseSettings['db'], transactionPooled: boolean, max: number): pg.Pool {
  const pool = new pg.Pool({
    // Behind a transaction-pooling PgBouncer consecutive statements of one client may reach different
    // server connections: a statement prepared on one is missing (or already present) on another,
    // so every statement runs unnamed there (parsed and planned on each call).
    Client: transactionPooled ? pg.Client : PreparingClient,
    connectionString,
    max,
    connectionTimeoutMillis: db.connectionTimeoutMs || undefined,
    // A startup parameter: PgBouncer 1.18 refuses unknown ones and would not keep it per client
    // anyway. In transaction mode the timeout is the server's (docs/operations.md, "Deployment":
    // ALTER ROLE … SET statement_timeout, or PgBouncer's connect_query); the gateway sets none.
    statement_timeout: (!transactionPooled && db.statementTimeoutMs) || undefined,
    idleTimeoutMillis: 30_000,
    // Byte counts are bigint but always below 2^53: read them as numbers on both backends.
    types: {
      getTypeParser: ((oid: number, format?: string) =>
        oid === INT8_OID || oid === NUMERIC_OID
          ? (v: string) => Number(v)
          : oid === TIMESTAMPTZ_OID && format !== 'binary'
            ? parseTimestamptz
            : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client losing its server (restart) must not crash the process.
  pool.on('error', () => undefined);
  // Nor a checked-out one (between two statements of a transaction the pool has no listener on
  // it): the error reaches the next query, and the pool drops the dead client on release.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

export async function openDatabase(config: DatabaseSettings, observers: QueryObserver[] = []): Promise<DatabaseHandle> {
  const log = observers.length > 0 ? (event: LogEvent) => observers.forEach((o) => o(event)) : undefined;
  if (config.databaseUrl) {
    const transactionPooled = config.db.poolMode === 'transaction';
    const directUrl = config.databaseDirectUrl ?? config.databaseUrl;
    const pool = createPool(config.databaseUrl, config.db, transactionPooled, config.db.poolMax);
    const dialect = new PostgresDialect({ pool });
    // A span per statement when tracing is on (src/tracing); otherwise the dialect as it is.
    const db = new Kysely<Database>({ dialect: tracing()?.wrapDialect(dialect) ?? dialect, log });
    return {
      db,
      kind: 'postgres',
      connectionString: directUrl,
      poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
      ping: () => ping(db),
      close: () => db.destroy(),
      async withSession(run) {
        if (!transactionPooled) return run(db);
        // Kysely's migrator holds a session-level advisory lock around its transaction: through a
        // transaction pooler the lock, the transaction and the unlock could land on three server
        // connections, and the lock would stay behind. One connection to PostgreSQL itself instead.
        const direct = new Kysely<Database>({ dialect: new PostgresDialect({ pool: createPool(directUrl, config.db, false, 1) }), log });
        try {
          return await run(direct);
        } finally {
          await direct.destroy();
        }
      },
    };
  }
  const dir = config.pgliteDir;
  if (!dir.startsWith('memory://')) await mkdir(dir, { recursive: true });
  const client = await PGlite.create(dir.startsWith('memory://') ? undefined : dir, {
    parsers: { [INT8_OID]: (v: string) => Number(v), [NUMERIC_OID]: (v: string) => Number(v) },
  });
  const dialect = new PGliteDialect(client);
  const db = new Kysely<Database>({ dialect: tracing()?.wrapDialect(dialect) ?? dialect, log });
  return {
    db,
    kind: 'pglite',
    poolStats: () => ({ total: 1, idle: 1, waiting: 0 }),
    ping: () => ping(db),
    close: () => db.destroy(),
    withSession: (run) => run(db),
  };
}

export async function ping(db: Db): Promise<void> {
  await sql`select 1`.execute(db);
}
