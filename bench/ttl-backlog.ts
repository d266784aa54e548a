/**
 * The ttl-backlog scenario of npm run bench: put and usage latency on an install carrying a backlog
 * of expired, unswept records (install A) against an install without one (install B), same tenant,
 * same live content, through the gateway's GraphQL door only. The target (from the issue): A within
 * 1.5x of B.
 *
 * Seeding goes through the storage core's public API only (Storage: upsertInstall, bulkPutRecords),
 * in this process, with STORAGE_MIN_TTL_SECONDS=1 and STORAGE_TTL_SWEEP_BATCH=1 (the config refuses
 * 0). The measured gateway is a child process with the normal settings on the same database (its
 * own, created and dropped). The backlog is counted read-only on the records table
 * (`ttl_expires_at <= now()`), since usage never shows expired records. Planner statistics are
 * refreshed with a database-wide ANALYZE (no table named) during and after seeding, as autovacuum
 * would do in production: on a freshly filled table the write's key lookup otherwise scans whole
 * namespaces (stale estimates), which measures the seeding, not the backlog.
 *
 * Every write on A sweeps up to STORAGE_TTL_SWEEP_BATCH expired records, so A's puts run for a short
 * window and stop early once they could have swept half the backlog; the count before and after
 * says how much of it was left.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { mintToken } from '../src/auth/credentials.js';
import { openMigratedDatabase } from '../src/bootstrap.js';
import { loadConfig } from '../src/config.js';
import type { DatabaseHandle } from '../src/db/database.js';
import type { Caller } from '../src/storage/principal.js';
import { Storage } from '../src/storage/storage.js';
import {
  benchDatabase,
  freePort,
  gatewayEnv,
  gatewayNodeArgs,
  gatewayPlan,
  gqlHeaders,
  log,
  onInterrupt,
  round,
  serverCpu,
  sleep,
  startChild,
  table,
  type ChildServer,
  type RunResult,
} from './support.js';
import { jsonBody, jsonTexts, type Plan } from './wrk.js';

export const TTL_BACKLOG = {
  name: 'ttl-backlog',
  title: 'putRecord and usage on an install with an expired, unswept backlog (A) vs the same install without one (B)',
} as const;

/** run.ts's load(): the same load generator (wrk) as every other scenario. */
export type LoadFn = (server: ChildServer, plan: Plan, seconds: number, maxAnswers?: number) => Promise<RunResult>;

export interface TtlBacklogOptions {
  /** Expired records seeded on install A. */
  records: number;
  /** Seconds of puts per install. */
  putSeconds: number;
  /** Seconds of usage queries per install. */
  usageSeconds: number;
  warmupSeconds: number;
  connections: number;
  load: LoadFn;
}

interface Comparison {
  withoutBacklog: RunResult;
  withBacklog: RunResult;
  /** A / B latency (target ≤ 1.5) and requests per second. */
  p50Ratio: number | null;
  p99Ratio: number | null;
  rpsRatio: number | null;
}

interface UsageAnswer {
  namespaces: number;
  keys: number;
  bytes: number;
}

export interface TtlBacklogResult {
  records: number;
  liveRecords: number;
  connections: number;
  seeding: { seconds: number; bulkPuts: number; seededRecords: number; msPerLivePut: number; expiryWaitSeconds: number; sweepBatch: number };
  measuredGateway: { sweepBatch: number; maxPutsWithBacklog: number; pinnedCpu: number | null };
  /** Seconds waited after runs on A until PostgreSQL had no active statement of this database. */
  settledSeconds: { afterUsage: number; afterPuts: number };
  /** Expired records in the database (read-only count), at each step. */
  expired: { afterSeeding: number; beforePuts: number; afterPuts: number };
  /** What the usage query answered: A once its backlog had expired, B before its warm-up puts (the same live records; the backlog must not show). */
  usageSeen: { withBacklog: UsageAnswer; withoutBacklog: UsageAnswer };
  usage: Comparison;
  put: Comparison;
}

const LIVE_NS = 'live';
const LIVE_KEYS = 1000;
const BULK = 100;
/** The backlog is spread like a real install's caches: a few namespaces, not one. */
const BACKLOG_NAMESPACES = 4;
/** Room for the backlog and the live content on both installs (the defaults allow 5,120 keys per namespace). */
const QUOTA = { maxKeysPerNamespace: 1_000_000, maxBytes: 64 * 1024 ** 3 };
/** Puts on A stop once they could have swept this share of the backlog. */
const MAX_SWEPT_SHARE = 0.5;

const keyOf = (i: number) => `k${String(i).padStart(4, '0')}`;
// About 200 bytes, like the other scenarios' records.
const valueOf = (n: number) => ({ title: `item ${n}`, n, tags: ['bench', 'ttl'], body: 'x'.repeat(150) });

const USAGE_QUERY = 'query Usage { install { usage { namespaces keys bytes } } }';
const PUT_QUERY = `mutation Put($input: PutRecordInput!) { putRecord(input: $input) { __typename
  ... on PutRecordSuccess { record { key revision } } } }`;

// ---------------------------------------------------------------- seeding (storage core only)

interface Seeded {
  tokenA: string;
  tokenB: string;
  seconds: number;
  bulkPuts: number;
  /** Fewer than asked when seeding ran out of time (see seedBacklog). */
  seededRecords: number;
  msPerLivePut: number;
  /** Epoch ms by which every backlog record has expired. */
  expiresAt: number;
  /** The seeding Storage's sweep batch (as small as the config allows). */
  sweepBatch: number;
}

/** Both installs with the same live content, then the backlog on A; the seeding Storage is closed after. */
async function seed(databaseUrl: string, secret: string, records: number): Promise<Seeded> {
  // Short TTLs allowed; the sweep removes as little as the config allows (0 is refused: it must be >= 1).
  const config = loadConfig(gatewayEnv(databaseUrl, secret, { LOG_LEVEL: 'silent', STORAGE_MIN_TTL_SECONDS: '1', STORAGE_TTL_SWEEP_BATCH: '0' }));
  const database: DatabaseHandle = await openMigratedDatabase(config);
  try {
    const storage = new Storage(database.db, config);
    const tenantId = randomUUID();
    const admin: Caller = { principal: { kind: 'admin', tenantId, actor: 'bench' }, requestId: null };
    const [installA, installB] = [randomUUID(), randomUUID()];
    for (const id of [installA, installB]) {
      await storage.upsertInstall(admin, { id, extensionId: 'bench', enabled: true, canRead: true, canWrite: true, quota: QUOTA });
    }
    const msPerLivePut = await seedLive(storage, admin, [installA, installB]);
    log(`  seeding ${records.toLocaleString('en')} records on install A (bulk puts of ${BULK}, ${round(msPerLivePut, 1)} ms per live put)`);
    const backlog = await seedBacklog(storage, admin, installA, records, msPerLivePut, () => analyze(databaseUrl));
    await analyze(databaseUrl);
    const token = (iid: string) => mintToken(secret, { sub: 'bench-extension', tid: tenantId, role: 'extension', iid, scope: 'storage:read storage:write', expiresIn: '6h' });
    return { ...backlog, msPerLivePut, tokenA: await token(installA), tokenB: await token(installB), sweepBatch: config.limits.sweepBatch };
  } finally {
    await database.close();
  }
}

/** The same LIVE_KEYS records (no TTL) on every install; returns the median ms per bulk put (paces the backlog's TTL). */
async function seedLive(storage: Storage, admin: Caller, installIds: readonly string[]): Promise<number> {
  const times: number[] = [];
  for (const installId of installIds) {
    for (let start = 0; start < LIVE_KEYS; start += BULK) {
      const items = Array.from({ length: Math.min(BULK, LIVE_KEYS - start) }, (_, i) => ({ key: keyOf(start + i), value: valueOf(start + i) }));
      const started = performance.now();
      await storage.bulkPutRecords(admin, { installId, namespace: LIVE_NS, items });
      times.push(performance.now() - started);
    }
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/**
 * The backlog in bulk puts of 100, every batch's TTL aimed at one instant just after the last
 * write: a record expiring while seeding would send each later write down the locked, sweeping
 * path, which on the current code costs O(backlog) per write (ttlSeconds 1 everywhere: 7 s for
 * 20,000 records, 133 s for 100,000). If seeding falls that far behind, it stops short instead.
 */
async function seedBacklog(
  storage: Storage,
  admin: Caller,
  installId: string,
  records: number,
  msPerPut: number,
  refreshStatistics: () => Promise<void>,
): Promise<Pick<Seeded, 'seconds' | 'bulkPuts' | 'seededRecords' | 'expiresAt'>> {
  const started = Date.now();
  const batches = Math.ceil(records / BULK);
  // Twice the pace measured on the live content plus 3 s: a slower run still ends first, a normal one waits a few seconds.
  const expireAt = started + batches * msPerPut * 2 + 3000;
  let expiresAt = 0;
  let batch = 0;
  for (; batch < batches; batch++) {
    const ttlSeconds = Math.ceil((expireAt - Date.now()) / 1000);
    if (ttlSeconds < 2) {
      log(`  warning: seeding is slower than estimated; stopping at ${(batch * BULK).toLocaleString('en')} records (the rest would expire while seeding)`);
      break;
    }
    // Statistics once the backlog namespaces have some size, so the remaining writes get the plans production would.
    if (batch === Math.floor(batches / 10)) await refreshStatistics();
    const first = batch * BULK;
    const items = Array.from({ length: Math.min(BULK, records - first) }, (_, i) => ({ key: `e${first + i}`, value: valueOf(first + i), ttlSeconds }));
    await storage.bulkPutRecords(admin, { installId, namespace: `expiring${batch % BACKLOG_NAMESPACES}`, items });
    expiresAt = Math.max(expiresAt, Date.now() + ttlSeconds * 1000);
  }
  return { seconds: round((Date.now() - started) / 1000, 1), bulkPuts: batch, seededRecords: Math.min(records, batch * BULK), expiresAt };
}

/** Database-wide ANALYZE: planner statistics only, no table named (their layout is changing). */
async function analyze(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('ANALYZE');
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------- requests (GraphQL only)

function usagePlan(token: string): Plan {
  return gatewayPlan(token, jsonBody(() => ({ query: USAGE_QUERY })));
}

/** Unconditional puts cycling over the live keys (updates of about the same size; one value more than keys, so each round writes new values). */
function putPlan(token: string): Plan {
  const keys = jsonTexts(Array.from({ length: LIVE_KEYS }, (_, i) => keyOf(i)));
  const values = jsonTexts(Array.from({ length: LIVE_KEYS + 1 }, (_, i) => valueOf(i)));
  return gatewayPlan(
    token,
    jsonBody((slot) => ({ query: PUT_QUERY, variables: { input: { namespace: LIVE_NS, key: slot({ kind: 'cycle', items: keys }), value: slot({ kind: 'cycle', items: values }) } } })),
  );
}

async function fetchUsage(url: string, token: string): Promise<UsageAnswer> {
  const res = await fetch(`${url}/graphql`, { method: 'POST', headers: gqlHeaders(token), body: JSON.stringify({ query: USAGE_QUERY }) });
  const body = (await res.json()) as { data?: { install?: { usage?: UsageAnswer } }; errors?: unknown };
  const usage = body.data?.install?.usage;
  if (!usage) throw new Error(`ttl-backlog: usage query failed (${res.status}): ${JSON.stringify(body).slice(0, 300)}`);
  return usage;
}

/** Expired records in the database: read-only, on the one table and column that keep their layout. */
async function countExpired(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM ext_storage_records WHERE ttl_expires_at <= now()');
  return rows[0]!.n;
}

/**
 * Waits until no other statement runs in this database: requests a run abandoned at its end (slow
 * ones on A) still run in PostgreSQL and would slow the next run. Returns the seconds waited.
 */
async function settle(client: pg.Client, timeoutMs = 60_000): Promise<number> {
  const started = Date.now();
  const sql = "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()";
  while (Date.now() - started < timeoutMs) {
    const { rows } = await client.query<{ n: number }>(sql);
    if (rows[0]!.n === 0) break;
    await sleep(100);
  }
  return round((Date.now() - started) / 1000, 1);
}

function compare(withoutBacklog: RunResult, withBacklog: RunResult): Comparison {
  const ratio = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? null : round(a / b, 2));
  return {
    withoutBacklog,
    withBacklog,
    p50Ratio: ratio(withBacklog.p50, withoutBacklog.p50),
    p99Ratio: ratio(withBacklog.p99, withoutBacklog.p99),
    rpsRatio: ratio(withBacklog.rps, withoutBacklog.rps),
  };
}

// ---------------------------------------------------------------- the scenario

/** What the measuring phases share. */
interface Stage {
  opts: TtlBacklogOptions;
  gateway: ChildServer;
  counter: pg.Client;
  seeded: Seeded;
}

export async function runTtlBacklog(opts: TtlBacklogOptions): Promise<TtlBacklogResult> {
  const db = await benchDatabase('ext_storage_bench_ttl');
  let gateway: ChildServer | undefined;
  let counter: pg.Client | undefined;
  const cleanup = async () => {
    await gateway?.stop().catch(() => undefined);
    await counter?.end().catch(() => undefined);
    await db.drop().catch((e: unknown) => log(`could not drop the ttl-backlog database: ${String(e)}`));
  };
  const unregister = onInterrupt(cleanup);
  try {
    log(`  database: ${db.created ? 'created' : 'given (DATABASE_URL; the expired records count covers all of it)'} ${db.url.replace(/\/\/[^@]*@/, '//')}`);
    const secret = randomBytes(32).toString('hex');
    const seeded = await seed(db.url, secret, opts.records);
    log(`  seeded in ${seeded.seconds} s; starting the gateway (normal settings) while the backlog expires`);

    // Normal settings (TTL bounds, sweep batch); the rate limiter as in the other scenarios, far above the load.
    const env = gatewayEnv(db.url, secret, { STORAGE_DB_POOL_MAX: '20', STORAGE_RATE_LIMIT_PER_SECOND: '1000000', STORAGE_RATE_LIMIT_BURST: '1000000' });
    const sweepBatch = loadConfig(env).limits.sweepBatch;
    const cpu = serverCpu();
    gateway = await startChild({ name: 'gateway (ttl-backlog)', script: 'src/main.ts', port: await freePort(), readyPath: '/readyz', cpu, env, nodeArgs: gatewayNodeArgs() });
    counter = new pg.Client({ connectionString: db.url });
    await counter.connect();
    const stage: Stage = { opts, gateway, counter, seeded };

    // B's usage before its warm-up puts: they rewrite its values (one value more than keys), which
    // changes its bytes by a few, while A's live records stay as seeded, the same as B's were here.
    const liveUsage = await fetchUsage(gateway.url, seeded.tokenB);
    const waited = await warmUpUntilExpired(stage);
    const afterSeeding = await countExpired(counter);
    const usageSeen = { withBacklog: await fetchUsage(gateway.url, seeded.tokenA), withoutBacklog: liveUsage };
    log(`  expired records: ${afterSeeding.toLocaleString('en')}; usage A ${JSON.stringify(usageSeen.withBacklog)}, B ${JSON.stringify(usageSeen.withoutBacklog)}`);
    if (JSON.stringify(usageSeen.withBacklog) !== JSON.stringify(usageSeen.withoutBacklog)) log('  warning: usage of A and B differ (expired records must not count)');

    // Usage first: it is read-only, so the backlog is intact for both runs.
    const usage = await measureUsage(stage);
    const maxPutsWithBacklog = Math.max(1, Math.floor((seeded.seededRecords * MAX_SWEPT_SHARE) / sweepBatch));
    const puts = await measurePuts(stage, maxPutsWithBacklog);
    log(`  waited for abandoned requests to finish in PostgreSQL: ${usage.settled} s after usage A, ${puts.settled} s after put A`);

    return {
      records: opts.records,
      liveRecords: LIVE_KEYS,
      connections: opts.connections,
      seeding: {
        seconds: seeded.seconds,
        bulkPuts: seeded.bulkPuts,
        seededRecords: seeded.seededRecords,
        msPerLivePut: round(seeded.msPerLivePut, 2),
        expiryWaitSeconds: round(waited / 1000, 1),
        sweepBatch: seeded.sweepBatch,
      },
      measuredGateway: { sweepBatch, maxPutsWithBacklog, pinnedCpu: cpu },
      settledSeconds: { afterUsage: usage.settled, afterPuts: puts.settled },
      expired: { afterSeeding, beforePuts: puts.expiredBefore, afterPuts: puts.expiredAfter },
      usageSeen,
      usage: usage.comparison,
      put: puts.comparison,
    };
  } finally {
    unregister();
    await cleanup();
  }
}

async function warm(stage: Stage, plan: Plan): Promise<void> {
  if (stage.opts.warmupSeconds > 0) await stage.opts.load(stage.gateway, plan, stage.opts.warmupSeconds);
}

/** B's warm-ups (they need no backlog) fill the wait until every backlog record has expired; returns the ms still waited. */
async function warmUpUntilExpired(stage: Stage): Promise<number> {
  await warm(stage, putPlan(stage.seeded.tokenB));
  await warm(stage, usagePlan(stage.seeded.tokenB));
  const waited = Math.max(0, stage.seeded.expiresAt + 500 - Date.now());
  await sleep(waited);
  return waited;
}

async function measureUsage(stage: Stage): Promise<{ comparison: Comparison; settled: number }> {
  const { opts, gateway, seeded } = stage;
  await warm(stage, usagePlan(seeded.tokenA));
  const b = await opts.load(gateway, usagePlan(seeded.tokenB), opts.usageSeconds);
  const a = await opts.load(gateway, usagePlan(seeded.tokenA), opts.usageSeconds);
  const settled = await settle(stage.counter);
  logRun('usage B (no backlog)', b);
  logRun('usage A (backlog)', a);
  return { comparison: compare(b, a), settled };
}

/** Puts on A sweep the backlog: no warm-up there, and they stop after maxPuts answers. */
async function measurePuts(stage: Stage, maxPuts: number): Promise<{ comparison: Comparison; settled: number; expiredBefore: number; expiredAfter: number }> {
  const { opts, gateway, seeded, counter } = stage;
  const b = await opts.load(gateway, putPlan(seeded.tokenB), opts.putSeconds);
  const expiredBefore = await countExpired(counter);
  const a = await opts.load(gateway, putPlan(seeded.tokenA), opts.putSeconds, maxPuts);
  const settled = await settle(counter);
  const expiredAfter = await countExpired(counter);
  logRun('put B (no backlog)', b);
  logRun('put A (backlog)', a);
  log(`  expired records before the puts on A: ${expiredBefore.toLocaleString('en')}, after: ${expiredAfter.toLocaleString('en')}`);
  return { comparison: compare(b, a), settled, expiredBefore, expiredAfter };
}

function logRun(label: string, r: RunResult): void {
  const errs = Object.entries(r.errors).map(([k, v]) => `${k}=${v}`).join(' ');
  log(`  ${label.padEnd(22)} ${String(r.rps).padStart(6)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms  ${r.requests} answers${errs ? `  errors: ${errs}` : ''}`);
}

// ---------------------------------------------------------------- report

export function formatTtlBacklog(r: TtlBacklogResult): string[] {
  const ms = (v: number | null) => (v === null ? null : v.toFixed(2));
  const x = (v: number | null) => (v === null ? null : v.toFixed(2));
  const within = (c: Comparison) => (c.p50Ratio !== null && c.p99Ratio !== null && c.p50Ratio <= 1.5 && c.p99Ratio <= 1.5 ? 'yes' : 'no');
  const errors = (c: Comparison) => [c.withoutBacklog, c.withBacklog].reduce((s, run) => s + Object.values(run.errors).reduce((a, v) => a + v, 0), 0);
  const row = (name: string, c: Comparison) => [
    name,
    c.withoutBacklog.rps,
    ms(c.withoutBacklog.p50),
    ms(c.withoutBacklog.p99),
    c.withBacklog.rps,
    ms(c.withBacklog.p50),
    ms(c.withBacklog.p99),
    c.withBacklog.requests,
    x(c.p50Ratio),
    x(c.p99Ratio),
    x(c.rpsRatio),
    within(c),
    errors(c),
  ];
  const n = (v: number) => v.toLocaleString('en');
  return [
    '',
    `ttl-backlog: install A with ${n(r.records)} expired, unswept records vs install B without (same tenant, same ${n(r.liveRecords)} live records), ` +
      `${r.connections} connections, gateway ${r.measuredGateway.pinnedCpu !== null ? `pinned to CPU ${r.measuredGateway.pinnedCpu}` : 'not pinned'}`,
    `seeding (storage core, in process, sweep batch ${r.seeding.sweepBatch}): ${n(r.seeding.seededRecords)} of ${n(r.records)} records in ${n(r.seeding.bulkPuts)} bulk puts in ${r.seeding.seconds} s, ` +
      `then ${r.seeding.expiryWaitSeconds} s more until all had expired`,
    '',
    table(
      ['operation', 'B req/s', 'p50 ms', 'p99 ms', 'A req/s', 'p50 ms', 'p99 ms', 'A answers', 'A/B p50', 'A/B p99', 'A/B req/s', '≤ 1.5x', 'errors'],
      [row('usage', r.usage), row('put', r.put)],
    ),
    '',
    `expired records (read-only count): ${n(r.expired.afterSeeding)} after seeding, ${n(r.expired.beforePuts)} before the puts on A, ${n(r.expired.afterPuts)} after them ` +
      `(each write sweeps up to ${r.measuredGateway.sweepBatch}; A's puts stop at ${n(r.measuredGateway.maxPutsWithBacklog)} answers)`,
    `usage seen: A ${JSON.stringify(r.usageSeen.withBacklog)}, B ${JSON.stringify(r.usageSeen.withoutBacklog)}`,
    'usage = query { install { usage { namespaces keys bytes } } }; put = unconditional putRecord cycling over the live keys; usage ran first (read-only).',
    'Latency counts answered requests only: the ones still in flight when a window closes (the slowest, on A) are not in the percentiles.',
  ];
}
